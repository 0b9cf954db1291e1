from django import template

from evaluations.selectors import task_evaluations

register = template.Library()

PANEL_RUNS = 5


@register.simple_tag
def latest_evaluations(task):
    """The task's latest runs, for its panel."""
    return list(task_evaluations(task=task, limit=PANEL_RUNS))
