"""The task API: thin edges that look up through the scoped querysets, ask ``tasks.access``, call one service.

Every answer that carries a task carries it as it now is, with ``allowed_actions`` and,
while it is queued, its ``queue_position`` and ``pending_reason``.
"""

from django.conf import settings
from django.db.models import Prefetch
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from endpoints.paths import shared_names
from endpoints.selectors import task_usage
from scheduler.force_start import task_force_start_preview
from scheduler.logs import instance_log_attachment, instance_log_chunks, instance_log_text
from scheduler.selectors import queue_info_for
from scheduler.services import perform
from tasks import services
from tasks.access import check_action
from tasks.exceptions import OperationRefused
from tasks.filtersets import TaskFilterSet
from tasks.models import Task, TaskInstance, TaskRun
from tasks.states import Action, Status

from ..renderers import PlainTextRenderer
from ..schema import DETAIL
from ..scoping import ScopedViewMixin
from .serializers import (
    MOUNTS_READ,
    ForceStartPreviewSerializer,
    ForceStartSerializer,
    LogQuerySerializer,
    RefusalSerializer,
    TaskEventSerializer,
    TaskInstanceSerializer,
    TaskRunSerializer,
    TaskSerializer,
    TaskUsageSerializer,
    UsageQuerySerializer,
)

REFUSED = OpenApiResponse(RefusalSerializer, description=_("The task's state does not allow this now."))
MANAGERS_ONLY = OpenApiResponse(DETAIL, description=_("Only managers may do this."))
# env and mounts are lists of objects, which form encodings cannot say: the schema offers JSON bodies.
JSON_TASK = {"application/json": TaskSerializer}
JSON_PARTIAL_TASK = {"application/json": TaskSerializer(partial=True)}
CREATE_EXAMPLE = OpenApiExample(
    "A vLLM deployment",
    request_only=True,
    value={
        "name": "qwen-7b", "project": 1, "task_type": "inference", "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": 1, "sku_count": 2, "replicas": 1, "expose_port": True, "container_port": 8000,
        "external_port": None, "description": "", "env": [
            {"name": "SHM_SIZE", "value": "60G"}, {"name": "HF_TOKEN", "value": "hf_…", "secret": True},
        ],
        "mounts": [{"storage": 1, "mount_path": "/models"}], "command": [], "args": ["--model", "/models/qwen-7b"],
    },
)


def operation_schema(summary, *, managers=False, body=None, answer=TaskSerializer, code=200, methods=None):
    responses = {code: answer, 409: REFUSED}
    if managers:
        responses[403] = MANAGERS_ONLY
    return extend_schema(summary=summary, request=body, responses=responses, methods=methods)


@extend_schema_view(
    list=extend_schema(summary=_("Tasks the user may see")),
    retrieve=extend_schema(summary=_("One task")),
    create=extend_schema(summary=_("Create a task (not deployed)"), request=JSON_TASK, examples=[CREATE_EXAMPLE]),
    partial_update=extend_schema(
        summary=_("Edit a task's configuration"),
        request=JSON_PARTIAL_TASK,
        description=_("Only while the task holds nothing and is not queued."),
        responses={200: TaskSerializer, 409: REFUSED},
    ),
    destroy=extend_schema(
        summary=_("Delete a task"),
        description=_("Only while the task holds nothing and is not queued."),
        responses={204: None, 409: REFUSED},
    ),
)
class TaskViewSet(ScopedViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TaskFilterSet
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        tasks = super().get_queryset()
        if self.action in ("events", "instances", "runs", "usage"):
            return tasks
        return tasks.select_related("owner", "project", "virtual_cluster").prefetch_related(
            Prefetch("mounts", to_attr=MOUNTS_READ)
        )

    def filter_queryset(self, queryset):
        # No filter asked for: the filterset would change nothing, but building its form scopes its choices first.
        if not self.request.query_params.keys() & self.filterset_class.base_filters.keys():
            return queryset
        return super().filter_queryset(queryset)

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("context", self.get_serializer_context())
        tasks = args[0] if args else kwargs.get("instance")
        if tasks is not None:
            batch = tasks if kwargs.get("many") else [tasks]
            kwargs["context"]["queue_info"] = self._queue_info(batch, self.request.user)
            kwargs["context"]["shared_names"] = shared_names(batch) if settings.GATEWAY_URL else set()
        return super().get_serializer(*args, **kwargs)

    @staticmethod
    def _queue_info(tasks, user):
        """Positions and reasons of the queued ones, in one batch, as ``user`` may read them."""
        queued = [task for task in tasks if task.status == Status.QUEUED]
        return queue_info_for(queued, user=user) if queued else {}

    def _input(self, *, partial, grants_holder=None):
        context = {**self.get_serializer_context(), "grants_holder": grants_holder}
        serializer = self.get_serializer(data=self.request.data, partial=partial, context=context)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _answer(self, task, code=status.HTTP_200_OK):
        """The task as it now is, read the way the list reads it."""
        task = self.get_queryset().get(pk=task.pk)
        return Response(self.get_serializer(task).data, status=code)

    def create(self, request):
        task = services.task_create(user=request.user, data=self._input(partial=False))
        return self._answer(task, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        task = self.get_object()
        holder = services.grants_holder(task=task, user=request.user)
        task = services.task_update(task=task, user=request.user, data=self._input(partial=True, grants_holder=holder))
        return self._answer(task)

    def destroy(self, request, pk=None):
        services.task_delete(task=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _operate(self, action, **options):
        task = self.get_object()
        check_action(task=task, user=self.request.user, action=action)
        try:
            task = perform(action, task=task, user=self.request.user, **options)
        except OperationRefused as refusal:
            # Refusals for other reasons than the state ("can never fit") still name the state in the 409.
            refusal.task = getattr(refusal, "task", task)
            raise
        return self._answer(task)

    @operation_schema(_("Start: deploy now, or join the queue"))
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._operate(Action.START)

    @operation_schema(_("Stop: leave the queue, or tear the instances down"))
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._operate(Action.STOP)

    @operation_schema(_("Pin a queued task to the head of its queue (managers)"), managers=True)
    @action(detail=True, methods=["post"])
    def pin(self, request, pk=None):
        return self._operate(Action.PIN)

    @operation_schema(_("Unpin a pinned task (managers)"), managers=True)
    @action(detail=True, methods=["post"])
    def unpin(self, request, pk=None):
        return self._operate(Action.UNPIN)

    @extend_schema(
        methods=["GET"],
        summary=_("Preview a force start: which running tasks would be killed (managers)"),
        responses={200: ForceStartPreviewSerializer, 403: MANAGERS_ONLY, 409: REFUSED},
    )
    @operation_schema(
        _("Force-start the pinned task, killing the previewed victims (managers)"), managers=True, methods=["POST"],
        body={"application/json": ForceStartSerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="force-start", url_name="force-start")
    def force_start(self, request, pk=None):
        if request.method == "POST":
            body = ForceStartSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            return self._operate(Action.FORCE_START, expected_victims=body.validated_data.get("victims"))
        task = self.get_object()
        check_action(task=task, user=request.user, action=Action.FORCE_START)
        preview = task_force_start_preview(task=task, user=request.user)
        return Response(ForceStartPreviewSerializer(preview).data)

    @operation_schema(
        _("Copy: a new not-deployed task from this one"),
        body=JSON_PARTIAL_TASK,
        code=201,
    )
    @action(detail=True, methods=["post"])
    def copy(self, request, pk=None):
        source = self.get_object()
        check_action(task=source, user=request.user, action=Action.COPY)
        new = services.task_copy(task=source, user=request.user, overrides=self._input(partial=True))
        return self._answer(new, status.HTTP_201_CREATED)

    def _page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    @extend_schema(summary=_("The task's timeline"), responses=TaskEventSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def events(self, request, pk=None):
        return self._page(self.get_object().events.select_related("actor"), TaskEventSerializer)

    @extend_schema(
        summary=_("The instances of the task's current run"), responses=TaskInstanceSerializer(many=True), filters=False
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def instances(self, request, pk=None):
        task = self.get_object()
        return self._page(TaskInstance.objects.filter(run_id=task.current_run_id).order_by("index"), TaskInstanceSerializer)

    @extend_schema(
        summary=_("What the gateway answered for the task, per hour"),
        description=_("The last 24 hours (`?hours=` up to 720), every hour listed: requests, errors (5xx), mean and "
                      "longest latency, prompt and completion tokens, summed over keys and gateways."),
        responses=TaskUsageSerializer(many=True), filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def usage(self, request, pk=None):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = task_usage(self.get_object(), hours=query.validated_data["hours"])
        return Response(TaskUsageSerializer(rows, many=True).data)

    @extend_schema(summary=_("The task's runs, newest first"), responses=TaskRunSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def runs(self, request, pk=None):
        runs = self.get_object().runs.select_related("started_by", "killed_by", "killed_for").prefetch_related("instances")
        return self._page(runs.order_by("-number"), TaskRunSerializer)


@extend_schema_view(retrieve=extend_schema(summary=_("One run of a task, with its instances")))
class RunViewSet(ScopedViewMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = TaskRun.objects.select_related("task", "started_by", "killed_by", "killed_for").prefetch_related("instances")
    serializer_class = TaskRunSerializer
    filter_backends = []


class InstanceViewSet(ScopedViewMixin, viewsets.GenericViewSet):
    """Instances are read through their task; this answers their logs."""

    queryset = TaskInstance.objects.select_related("task")
    serializer_class = TaskInstanceSerializer
    filter_backends = []
    pagination_class = None
    renderer_classes = [JSONRenderer, PlainTextRenderer]

    @extend_schema(
        summary=_("An instance's log"),
        description=_(
            "The log as plain text: live while the instance runs, else the archived one. "
            "`?tail=N` answers the last N lines; `?download=1` answers it as an attachment."
        ),
        parameters=[LogQuerySerializer],
        responses={(200, "text/plain"): OpenApiTypes.STR, 400: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        instance = self.get_object()
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        content_type = "text/plain; charset=utf-8"
        tail = query.validated_data.get("tail")
        if tail is not None and not query.validated_data["download"]:
            return HttpResponse(instance_log_text(instance, tail=tail), content_type=content_type)
        # The whole log is streamed as it is read: flat memory, whatever its size.
        response = StreamingHttpResponse(instance_log_chunks(instance), content_type=content_type)
        if query.validated_data["download"]:
            response["Content-Disposition"] = instance_log_attachment(instance)
        return response


def register(router):
    router.register("tasks", TaskViewSet, basename="task")
    router.register("runs", RunViewSet, basename="run")
    router.register("instances", InstanceViewSet, basename="instance")
