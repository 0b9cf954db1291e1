"""What a user may use: their projects, the virtual clusters granted to them, the storages they may mount."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from clusters.models import Project, QueuePolicy, Storage, StorageKind, VirtualCluster
from scheduler.selectors import virtual_cluster_capacity

from .scoping import ScopedViewMixin


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description"]


class SkuBundleSerializer(serializers.Serializer):
    gpus = serializers.IntegerField(source="sku_gpus")
    cpus = serializers.IntegerField(source="sku_cpus")
    memory_gib = serializers.IntegerField(source="sku_memory_gib")
    description = serializers.CharField(source="sku_description")


class VirtualClusterSerializer(serializers.ModelSerializer):
    """A VC with its SKU bundle and what its schedulable machines have free now (``context["capacity"]``)."""

    sku = SkuBundleSerializer(source="*")
    queue_policy = serializers.ChoiceField(choices=QueuePolicy.choices)
    total_skus = serializers.SerializerMethodField(help_text=_("SKUs of the schedulable machines."))
    free_skus = serializers.SerializerMethodField(help_text=_("SKUs not held by deploying or running tasks."))
    total_gpus = serializers.SerializerMethodField()
    free_gpus = serializers.SerializerMethodField()

    class Meta:
        model = VirtualCluster
        fields = [
            "id", "name", "gpu_type", "sku", "queue_policy", "total_skus", "free_skus", "total_gpus", "free_gpus",
        ]

    def _capacity(self, vc, key):
        return self.context["capacity"][vc.pk][key]

    def get_total_skus(self, vc) -> int:
        return self._capacity(vc, "total_skus")

    def get_free_skus(self, vc) -> int:
        return self._capacity(vc, "free_skus")

    def get_total_gpus(self, vc) -> int:
        return self._capacity(vc, "total_gpus")

    def get_free_gpus(self, vc) -> int:
        return self._capacity(vc, "free_gpus")


class StorageSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=StorageKind.choices)

    class Meta:
        model = Storage
        fields = ["id", "name", "kind", "source", "read_only"]


class ReadOnlyListViewSet(ScopedViewMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    filter_backends = []


@extend_schema_view(list=extend_schema(summary=_("Projects the user is a member of")))
class ProjectViewSet(ReadOnlyListViewSet):
    serializer_class = ProjectSerializer
    queryset, scope = Project.objects.all(), "of_member"


@extend_schema_view(
    list=extend_schema(
        summary=_("Virtual clusters granted to the user, with their free and total SKUs and GPUs"),
        description=_("Only the ones the user may deploy to, managers included; every queue is at `queue/`."),
    )
)
class VirtualClusterViewSet(ReadOnlyListViewSet):
    serializer_class = VirtualClusterSerializer
    queryset, scope = VirtualCluster.objects.all(), "usable_by"

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("context", self.get_serializer_context())
        if args:
            clusters = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"]["capacity"] = virtual_cluster_capacity(virtual_cluster_ids=[vc.pk for vc in clusters])
        return super().get_serializer(*args, **kwargs)


@extend_schema_view(list=extend_schema(summary=_("Storages the user may mount")))
class StorageViewSet(ReadOnlyListViewSet):
    serializer_class = StorageSerializer
    queryset, scope = Storage.objects.all(), "mountable_by"


def register(router):
    router.register("projects", ProjectViewSet, basename="project")
    router.register("virtual-clusters", VirtualClusterViewSet, basename="virtual-cluster")
    router.register("storages", StorageViewSet, basename="storage")
