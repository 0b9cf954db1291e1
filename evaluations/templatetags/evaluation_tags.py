from django import template

from tasks.access import allowed_actions
from tasks.states import Action

from ..selectors import task_evaluations

register = template.Library()

PANEL_RUNS = 5


@register.simple_tag
def evaluation_panel(task, user):
    """What the task panel shows: whether to offer the evaluate button, and the task's latest runs."""
    can_evaluate = Action.EVALUATE.value in allowed_actions(task, user) and task.endpoint is not None
    return {"can_evaluate": can_evaluate, "runs": list(task_evaluations(task=task, limit=PANEL_RUNS))}

