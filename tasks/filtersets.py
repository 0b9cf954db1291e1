"""The task list's filters, shared by the API and the portal's list page.

Choices for project and virtual cluster are scoped to what the requesting user may
see, so filtering by an unseen one answers like filtering by a missing one.
"""

import django_filters
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


class StableOrderingFilter(django_filters.OrderingFilter):
    """Ordering with the id as the last key, so that pages never repeat or skip a task."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value and not {"id", "-id"} & set(value):
            qs = qs.order_by(*qs.query.order_by, "-id")
        return qs


class TaskFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, label=_("status"))
    project = django_filters.ModelChoiceFilter(queryset=visible_projects, label=_("project"))
    virtual_cluster = django_filters.ModelChoiceFilter(
        queryset=visible_virtual_clusters, label=_("virtual cluster")
    )
    task_type = django_filters.ChoiceFilter(choices=TaskType.choices, label=_("task type"))
    owner = django_filters.CharFilter(field_name="owner__username", label=_("owner (username)"))
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
        label=_("ordering"),
    )

    class Meta:
        model = Task
        fields = ["status", "project", "virtual_cluster", "task_type", "owner", "search"]
