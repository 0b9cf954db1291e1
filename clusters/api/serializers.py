from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from clusters.models import Project, QueuePolicy, Storage, StorageKind, VirtualCluster


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
