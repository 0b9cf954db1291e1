"""The task list's filters, shared by the API and the portal's list page.

Choices for project and virtual cluster are scoped to what the requesting user may
see, so filtering by an unseen one answers like filtering by a missing one.
"""

import django_filters
from django import forms
from django.db.models import Q
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clusters.models import Project, VirtualCluster
from clusters.permissions import is_manager

from .models import Task, TaskType
from .states import Status


def visible_projects(request):
    """Projects whose tasks the user sees: every project for managers, else their own."""
    user = getattr(request, "user", None)
    if is_manager(user):
        return Project.objects.all()
    return Project.objects.of_member(user)


def visible_virtual_clusters(request):
    return VirtualCluster.objects.visible_to(getattr(request, "user", None))


def _descending(label):
    return gettext("%(field)s (descending)") % {"field": label}


_descending_lazy = lazy(_descending, str)


class IdOrNameField(forms.ModelChoiceField):
    """One of the queryset's objects named by its id or by its name (``name_field``); the id wins a tie."""

    def __init__(self, *args, name_field="name", **kwargs):
        super().__init__(*args, **kwargs)
        self.name_field = name_field

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        by_name = Q(**{self.name_field: text})
        is_id = text.isascii() and text.isdigit()  # "²".isdigit() is True, and int("²") raises
        matches = self.queryset.filter(by_name | Q(pk=int(text)) if is_id else by_name)
        found = sorted(matches[:2], key=lambda obj: str(obj.pk) != text)
        if not found:
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return found[0]


class IdOrNameFilter(django_filters.ModelChoiceFilter):
    field_class = IdOrNameField


class CommaSeparatedChoiceField(forms.MultipleChoiceField):
    """Several choices, repeated (``status=a&status=b``) or comma-separated (``status=a,b``) alike."""

    def to_python(self, value):
        words = [word.strip() for item in super().to_python(value) for word in str(item).split(",")]
        return [word for word in words if word]


class CommaSeparatedChoiceFilter(django_filters.MultipleChoiceFilter):
    field_class = CommaSeparatedChoiceField


class StableOrderingFilter(django_filters.OrderingFilter):
    """Ordering with the id as the last key, so that pages never repeat or skip a task; labels in our words."""

    def build_choices(self, fields, labels):
        choices = []
        for field, param in fields.items():
            label = labels.get(field, param)
            choices += [(param, label), (f"-{param}", _descending_lazy(label))]
        return choices

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value and not {"id", "-id"} & set(value):
            qs = qs.order_by(*qs.query.order_by, "-id")
        return qs


class TaskFilterSet(django_filters.FilterSet):
    status = CommaSeparatedChoiceFilter(choices=Status.choices, label=_("status"))
    project = IdOrNameFilter(queryset=visible_projects, label=_("project"), empty_label=_("All"))
    virtual_cluster = IdOrNameFilter(
        queryset=visible_virtual_clusters, label=_("virtual cluster"), empty_label=_("All")
    )
    task_type = django_filters.ChoiceFilter(choices=TaskType.choices, label=_("task type"), empty_label=_("All"))
    owner = django_filters.CharFilter(method="filter_owner", label=_("owner (username or id)"))
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("name contains"))
    ordering = StableOrderingFilter(
        fields=(
            ("created_at", "created_at"),
            ("name", "name"),
            ("status", "status"),
            ("queued_at", "queued_at"),
            ("started_at", "started_at"),
            ("id", "id"),
        ),
        field_labels={
            "created_at": _("Created at"), "name": _("Name"), "status": _("Status"),
            "queued_at": _("Queued at"), "started_at": _("Started at"), "id": _("Id"),
        },
        label=_("ordering"),
        empty_label=_("Newest first"),
    )

    def filter_owner(self, queryset, name, value):
        """The owner by username or by id, like ``project=``."""
        text = value.strip()
        match = Q(owner__username=text) | Q(owner_id=int(text)) if text.isdigit() else Q(owner__username=text)
        return queryset.filter(match)

    class Meta:
        model = Task
        fields = ["status", "project", "virtual_cluster", "task_type", "owner", "search"]
