"""Evaluation API: thin edges over ``evaluations.services``; invisible tasks and runs answer 404."""

from django.db import models
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from evaluations.models import Evaluation, FailureReason
from evaluations.services import PARAMETER_FIELDS, evaluation_create
from tasks.models import Task

from .fields import TextField
from .scoping import ScopedViewMixin


class EvaluationParametersSerializer(serializers.ModelSerializer):
    """The body of ``POST tasks/{id}/evaluations/``: the run's parameters, every one optional."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: TextField,
        models.TextField: TextField,
    }

    class Meta:
        model = Evaluation
        fields = PARAMETER_FIELDS


class EvaluationSerializer(serializers.ModelSerializer):
    """One run as it now is: its parameters, what was evaluated, its status and results."""

    task_name = serializers.CharField(source="task.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    status_message = serializers.CharField(read_only=True)
    # Blank until the run fails: declared, since a read-only model field's schema would leave "" out of the enum.
    failure_reason = serializers.ChoiceField(choices=FailureReason.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Evaluation
        fields = (
            "id", "task", "task_name", "created_by", "created_at", "started_at", "finished_at",
            *PARAMETER_FIELDS, "endpoint", "task_config", "status", "status_display", "requests_done", "failure_reason",
            "failure_detail", "status_message", "results",
        )
        read_only_fields = fields


REFUSED = OpenApiResponse(description=_("The task is not running, has no endpoint, or is being evaluated."))


@extend_schema_view(
    get=extend_schema(summary=_("Evaluation runs of a task"), responses=EvaluationSerializer(many=True)),
    post=extend_schema(
        summary=_("Evaluate a running task"),
        request=EvaluationParametersSerializer,
        responses={201: EvaluationSerializer, 409: REFUSED},
    ),
)
class TaskEvaluationList(ScopedViewMixin, generics.ListCreateAPIView):
    """A task's runs: the task is looked up among those the user may see, its runs through it."""

    serializer_class = EvaluationSerializer
    queryset = Task.objects.all()

    def get_task(self):
        return get_object_or_404(self.queryset, pk=self.kwargs["task_id"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema asks for the model only
            return Evaluation.objects.none()
        return self.get_task().evaluations.select_related("task", "created_by")

    def create(self, request, *args, **kwargs):
        task = self.get_task()
        parameters = EvaluationParametersSerializer(data=request.data)
        parameters.is_valid(raise_exception=True)
        evaluation = evaluation_create(task=task, user=request.user, parameters=dict(parameters.validated_data))
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)


@extend_schema(summary=_("One evaluation run with its results"))
class EvaluationDetail(ScopedViewMixin, generics.RetrieveAPIView):
    serializer_class = EvaluationSerializer
    queryset = Evaluation.objects.select_related("task", "created_by")


urlpatterns = [
    path("tasks/<int:task_id>/evaluations/", TaskEvaluationList.as_view(), name="api-task-evaluations"),
    path("evaluations/<int:pk>/", EvaluationDetail.as_view(), name="api-evaluation-detail"),
]
