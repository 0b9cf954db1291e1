"""Evaluation API: thin edges over ``evaluations.services``; invisible tasks and runs answer 404."""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from tasks.models import Task

from ..models import Evaluation
from ..services import evaluation_create
from .serializers import EvaluationParametersSerializer, EvaluationSerializer

REFUSED = OpenApiResponse(description=_("The task is not running, has no endpoint, or is being evaluated."))


@extend_schema_view(
    get=extend_schema(summary=_("Evaluation runs of a task"), responses=EvaluationSerializer(many=True)),
    post=extend_schema(
        summary=_("Evaluate a running task"),
        request=EvaluationParametersSerializer,
        responses={201: EvaluationSerializer, 409: REFUSED},
    ),
)
class TaskEvaluationList(generics.ListCreateAPIView):
    serializer_class = EvaluationSerializer
    queryset = Evaluation.objects.none()  # for the schema; get_queryset scopes to the task

    def get_task(self):
        return get_object_or_404(Task.objects.visible_to(self.request.user), pk=self.kwargs["task_id"])

    def get_queryset(self):
        return self.get_task().evaluations.select_related("task", "created_by")

    def create(self, request, *args, **kwargs):
        task = self.get_task()
        parameters = EvaluationParametersSerializer(data=request.data)
        parameters.is_valid(raise_exception=True)
        evaluation = evaluation_create(task=task, user=request.user, parameters=dict(parameters.validated_data))
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)


@extend_schema(summary=_("One evaluation run with its results"))
class EvaluationDetail(generics.RetrieveAPIView):
    serializer_class = EvaluationSerializer

    def get_queryset(self):
        return Evaluation.objects.visible_to(self.request.user).select_related("task", "created_by")
