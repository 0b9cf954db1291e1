"""``GET /api/v1/gpu-hours/`` (chargeback) and ``GET /api/v1/virtual-clusters/{id}/utilisation/``, from the history."""

from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import Project, VirtualCluster
from clusters.permissions import is_manager
from observability import selectors

from .schema import DETAIL, FIELD_ERRORS


class GpuHoursQuerySerializer(serializers.Serializer):
    since = serializers.DateField(help_text=_("The first day of the period."))
    until = serializers.DateField(help_text=_("The last day of the period (included)."))
    by = serializers.ChoiceField(choices=[("project", _("per project")), ("owner", _("per user"))], default="project")
    virtual_cluster = serializers.IntegerField(required=False, help_text=_("Only this virtual cluster."))

    def validate(self, data):
        if data["until"] < data["since"]:
            raise serializers.ValidationError({"until": [_("The end of the period is before its start.")]})
        return data


class GpuHoursSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The project's or the user's id."))
    name = serializers.CharField()
    virtual_cluster = serializers.CharField()
    gpu_hours = serializers.FloatField()


class GpuHoursView(APIView):
    @extend_schema(
        summary=_("GPU-hours per project or per user over a period"),
        description=_(
            "From the allocation samples: managers see every project, others the projects they are members of. "
            "One row per project (or user) and virtual cluster, most first."
        ),
        parameters=[GpuHoursQuerySerializer],
        responses={200: GpuHoursSerializer(many=True), 400: FIELD_ERRORS},
    )
    def get(self, request):
        query = GpuHoursQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        start, end = selectors.day_period(data["since"], data["until"])
        project_ids = None if is_manager(request.user) else Project.objects.of_member(request.user).values_list("pk", flat=True)
        vc_ids = None
        if "virtual_cluster" in data:
            vc_ids = VirtualCluster.objects.visible_to(request.user).filter(pk=data["virtual_cluster"]).values_list("pk", flat=True)
        rows = selectors.gpu_hours(
            since=start, until=end, by=data["by"], project_ids=project_ids, virtual_cluster_ids=vc_ids,
        )
        return Response(GpuHoursSerializer(rows, many=True).data)


class UtilisationQuerySerializer(serializers.Serializer):
    range = serializers.ChoiceField(choices=list(selectors.RANGES), default="24h")


class PointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    total_gpus = serializers.FloatField()
    allocated_gpus = serializers.FloatField()
    queued_tasks = serializers.FloatField()


class UtilisationSerializer(serializers.Serializer):
    virtual_cluster = serializers.IntegerField()
    range = serializers.CharField()
    points = PointSerializer(many=True, help_text=_("Averages per step; a step nothing was sampled in is left out."))
    wait_seconds = serializers.ListField(child=serializers.FloatField(), help_text=_("Each wait of the range."))


class UtilisationView(APIView):
    @extend_schema(
        summary=_("A virtual cluster's allocated and total GPUs and its queue over 24 h, 7 d or 30 d"),
        parameters=[UtilisationQuerySerializer],
        responses={
            200: UtilisationSerializer, 400: FIELD_ERRORS,
            404: OpenApiResponse(DETAIL, description=_("No such virtual cluster, or one the user may not see.")),
        },
    )
    def get(self, request, pk):
        query = UtilisationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        vc = get_object_or_404(VirtualCluster.objects.visible_to(request.user), pk=pk)
        range_name, now = query.validated_data["range"], timezone.now()
        points = selectors.utilisation(virtual_cluster_id=vc.pk, until=now, range_name=range_name)
        waits = selectors.wait_seconds(virtual_cluster_id=vc.pk, until=now, range_name=range_name)
        data = {"virtual_cluster": vc.pk, "range": range_name, "points": points, "wait_seconds": sorted(waits)}
        return Response(UtilisationSerializer(data).data)


urlpatterns = [
    path("gpu-hours/", GpuHoursView.as_view(), name="gpu-hours"),
    path("virtual-clusters/<int:pk>/utilisation/", UtilisationView.as_view(), name="virtual-cluster-utilisation"),
]
