"""Quotas and priority classes: ``/api/v1/quotas/`` and ``/api/v1/priority-classes/``.

Everyone reads what concerns them (the quotas of the VCs they may see, the priority classes they may use);
managers with the model permissions (``clusters.add_projectquota`` …) write them. A quota written re-runs
its VC's scheduling pass: a task it lets start, starts.
"""

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, serializers, status, viewsets

from clusters.models import PriorityClass, Project, ProjectQuota, VirtualCluster
from scheduler.scheduling import schedule_virtual_cluster

from .scoping import ScopedViewMixin


class ManagersWrite(permissions.DjangoModelPermissions):
    """Reading needs a login; writing the model's add / change / delete permission."""

    perms_map = {**permissions.DjangoModelPermissions.perms_map, "GET": [], "OPTIONS": [], "HEAD": []}


WRITE_METHODS = ["get", "post", "patch", "delete", "head", "options"]


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT


class ProjectQuotaSerializer(serializers.ModelSerializer):
    virtual_cluster = serializers.PrimaryKeyRelatedField(queryset=VirtualCluster.objects.all())
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    project_name = serializers.CharField(source="project.name", read_only=True)

    class Meta:
        model = ProjectQuota
        fields = ["id", "virtual_cluster", "project", "project_name", "guaranteed_skus", "borrowing_limit"]


class PriorityClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriorityClass
        fields = ["id", "name", "value", "description"]


@extend_schema_view(
    list=extend_schema(summary=_("Project quotas of the virtual clusters the user may see")),
    create=extend_schema(summary=_("Give a project a guaranteed quota in a virtual cluster (managers)")),
)
class ProjectQuotaViewSet(ScopedViewMixin, viewsets.ModelViewSet):
    serializer_class = ProjectQuotaSerializer
    queryset = ProjectQuota.objects.select_related("project").order_by("virtual_cluster", "project__name")
    scope = "visible_to"
    permission_classes = [permissions.IsAuthenticated, ManagersWrite]
    filter_backends = []
    http_method_names = WRITE_METHODS

    def _rescheduled(self, save, virtual_cluster_ids):
        with transaction.atomic():
            result = save()
            for vc_id in sorted(virtual_cluster_ids):
                schedule_virtual_cluster(virtual_cluster_id=vc_id)
        return result

    def perform_create(self, serializer):
        self._rescheduled(serializer.save, {serializer.validated_data["virtual_cluster"].pk})

    def perform_update(self, serializer):
        vc_ids = {serializer.instance.virtual_cluster_id, serializer.validated_data.get(
            "virtual_cluster", serializer.instance.virtual_cluster).pk}
        self._rescheduled(serializer.save, vc_ids)

    def perform_destroy(self, instance):
        self._rescheduled(instance.delete, {instance.virtual_cluster_id})


@extend_schema_view(list=extend_schema(summary=_("Priority classes the user may give a task")))
class PriorityClassViewSet(ScopedViewMixin, viewsets.ModelViewSet):
    serializer_class = PriorityClassSerializer
    queryset, scope = PriorityClass.objects.all(), "usable_by"
    permission_classes = [permissions.IsAuthenticated, ManagersWrite]
    filter_backends = []
    http_method_names = WRITE_METHODS

    def perform_destroy(self, instance):
        if instance.tasks.exists():
            raise Conflict(
                _("Priority class “%(name)s” is given to tasks; give them another class first.") % {"name": instance.name}
            )
        instance.delete()


def register(router):
    router.register("quotas", ProjectQuotaViewSet, basename="quota")
    router.register("priority-classes", PriorityClassViewSet, basename="priority-class")
