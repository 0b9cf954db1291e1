"""The names the browsable API gives its pages, in the request's language (DRF's default is the class name).

A view of a model is named after the model (plural for a list, singular for one object); an operation of
the catalogue after its label; another view by its ``title``. ``REST_FRAMEWORK["VIEW_NAME_FUNCTION"]``.
"""

from django.utils.text import capfirst
from django.utils.translation import gettext as _
from rest_framework.views import get_view_name as drf_view_name

from tasks.states import Action

EVENTS = "events"
INSTANCES = "instances"


def view_name(view):
    action = getattr(view, "action", None)
    if action in Action.values:
        return str(Action(action).label)
    if action == EVENTS:
        return _("Timeline")
    if action == INSTANCES:
        return _("Instances")
    title = getattr(view, "title", None)
    if title:
        return str(title)
    model = getattr(getattr(view, "queryset", None), "model", None)
    if model is not None:
        one = getattr(view, "detail", None) or getattr(view, "suffix", None) == "Instance"
        return capfirst(str(model._meta.verbose_name if one else model._meta.verbose_name_plural))
    return drf_view_name(view)
