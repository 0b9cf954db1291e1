"""What a user may use: their projects, the virtual clusters granted to them, the storages they may mount."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from clusters.models import Project, Storage, VirtualCluster
from scheduler.selectors import virtual_cluster_capacity

from .serializers import ProjectSerializer, StorageSerializer, VirtualClusterSerializer


class ReadOnlyListViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    filter_backends = []


@extend_schema_view(list=extend_schema(summary=_("Projects the user is a member of")))
class ProjectViewSet(ReadOnlyListViewSet):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return Project.objects.of_member(self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary=_("Virtual clusters granted to the user, with their free and total SKUs and GPUs"),
        description=_("Only the ones the user may deploy to, managers included; every queue is at `queue/`."),
    )
)
class VirtualClusterViewSet(ReadOnlyListViewSet):
    serializer_class = VirtualClusterSerializer

    def get_queryset(self):
        return VirtualCluster.objects.usable_by(self.request.user)

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("context", self.get_serializer_context())
        if args:
            clusters = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"]["capacity"] = virtual_cluster_capacity(virtual_cluster_ids=[vc.pk for vc in clusters])
        return super().get_serializer(*args, **kwargs)


@extend_schema_view(list=extend_schema(summary=_("Storages the user may mount")))
class StorageViewSet(ReadOnlyListViewSet):
    serializer_class = StorageSerializer

    def get_queryset(self):
        return Storage.objects.mountable_by(self.request.user)
