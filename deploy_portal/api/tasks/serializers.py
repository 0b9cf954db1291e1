"""Tasks in and out of the API.

Input is only converted — relations to instances through querysets scoped to the user,
lists to lists — into the data dict ``tasks.services`` take; the services hold the rules
and raise ``ValidationError({field: [messages]})`` for bad input.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.models import PriorityClass, Project, Storage, VirtualCluster
from endpoints.paths import gateway_url
from tasks.access import allowed_actions
from tasks.models import InstanceStatus, RunOutcome, TaskEvent, TaskInstance, TaskRun, TaskType
from tasks.secrets import env_item_public
from tasks.states import Action, Status
from tasks.validation import NOT_GRANTED

from ..fields import SentenceField, TextField
from ..representation import PlannedRepresentation


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A relation given by id, looked up only among the objects the requesting user may use."""

    def __init__(self, *, scope, not_found, **kwargs):
        self.scope = scope
        messages = {"does_not_exist": not_found, "incorrect_type": not_found}
        super().__init__(error_messages=messages, **kwargs)

    def get_queryset(self):
        # An edit is checked against the grants of whoever the service checks it for (tasks.services.grants_holder).
        user = self.context.get("grants_holder") or self.context["request"].user
        return getattr(super().get_queryset(), self.scope)(user)


class EnvVarSerializer(PlannedRepresentation, serializers.Serializer):
    """One variable; a secret's value is write-only (``tasks.secrets``): answered as ``MASK``."""

    name = TextField(allow_blank=True, trim_whitespace=False)
    value = TextField(
        allow_blank=True, trim_whitespace=False, default="",
        help_text=_("A secret's value is answered as “••••”; sent as “••••”, empty or left out, the saved value is "
                    "kept."),
    )
    secret = serializers.BooleanField(
        default=False,
        help_text=_("Write-only value, stored encrypted, given to the containers through a Kubernetes Secret."),
    )

    def to_representation(self, instance):
        return super().to_representation(env_item_public(instance))


# Where the task views put each task's mounts, read with the page in one query (``Prefetch(to_attr=...)``): a plain
# list, where ``task.mounts.all()`` would build a queryset per task even from the prefetch cache.
MOUNTS_READ = "mounts_read"


class MountListSerializer(serializers.ListSerializer):
    def get_attribute(self, instance):
        read = getattr(instance, MOUNTS_READ, None)
        return read if read is not None else super().get_attribute(instance)


class MountSerializer(PlannedRepresentation, serializers.Serializer):
    storage = ScopedPrimaryKeyRelatedField(
        queryset=Storage.objects.all(), scope="mountable_by", not_found=NOT_GRANTED["storage"]
    )
    mount_path = TextField(max_length=500, trim_whitespace=False)

    class Meta:
        list_serializer_class = MountListSerializer


class TaskSerializer(PlannedRepresentation, serializers.Serializer):
    """A task as SPEC reads it; the configuration fields are also the create / edit / copy body."""

    id = serializers.IntegerField(read_only=True)
    name = TextField(max_length=100)
    project = ScopedPrimaryKeyRelatedField(
        queryset=Project.objects.all(), scope="of_member", not_found=NOT_GRANTED["project"]
    )
    project_name = serializers.CharField(source="project.name", read_only=True)
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.INFERENCE)
    image = TextField(trim_whitespace=False)
    virtual_cluster = ScopedPrimaryKeyRelatedField(
        queryset=VirtualCluster.objects.all(), scope="usable_by", not_found=NOT_GRANTED["virtual_cluster"]
    )
    virtual_cluster_name = serializers.CharField(source="virtual_cluster.name", read_only=True)
    sku_count = serializers.IntegerField(default=1)
    replicas = serializers.IntegerField(default=1)
    priority_class = ScopedPrimaryKeyRelatedField(
        queryset=PriorityClass.objects.all(), scope="usable_by", not_found=NOT_GRANTED["priority_class"],
        allow_null=True, default=None, help_text=_("Null: the default priority (0). Orders the queue before arrival."),
    )
    expose_port = serializers.BooleanField(default=True)
    container_port = serializers.IntegerField(allow_null=True, default=8000)
    external_port = serializers.IntegerField(
        allow_null=True, default=None, help_text=_("Leave blank to let the system pick a free one.")
    )
    description = TextField(allow_blank=True, default="")
    public_endpoint = serializers.BooleanField(
        default=False, help_text=_("The gateway answers anyone, without an API key. Only the owner sets it."),
    )
    env = EnvVarSerializer(many=True, default=list)
    mounts = MountSerializer(many=True, default=list)
    command = serializers.ListField(child=TextField(allow_blank=True, trim_whitespace=False), default=list)
    args = serializers.ListField(child=TextField(allow_blank=True, trim_whitespace=False), default=list)

    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    status_display = serializers.SerializerMethodField()
    pinned = serializers.BooleanField(read_only=True)
    queue_position = serializers.SerializerMethodField()
    pending_reason = serializers.SerializerMethodField()
    endpoint = serializers.URLField(read_only=True, allow_null=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    queued_at = serializers.DateTimeField(read_only=True, allow_null=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    allowed_actions = serializers.SerializerMethodField()
    gateway_url = serializers.SerializerMethodField(
        help_text=_("The task's stable URL through the gateway (calls need an API key unless it is public); null "
                    "when no gateway is configured. `endpoint` is the raw address of the current run, for debugging."),
    )

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_gateway_url(self, task):
        return gateway_url(task, self.context.get("shared_names", set()))

    def _queue_info(self, task):
        return self.context.get("queue_info", {}).get(task.pk)

    @extend_schema_field({"type": "integer", "nullable": True, "description": "1 is the head of the queue"})
    def get_queue_position(self, task):
        info = self._queue_info(task)
        return info[0] if info else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_pending_reason(self, task):
        info = self._queue_info(task)
        return str(info[1]) if info else None

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=Action.choices)))
    def get_allowed_actions(self, task):
        """From ``tasks.access``, once per (status, pinned) in a serialization: nothing else decides them."""
        cache = self.context.setdefault("allowed_actions", {})
        key = (task.status, task.pinned)
        if key not in cache:
            cache[key] = allowed_actions(task, self.context["request"].user)
        return list(cache[key])

    @extend_schema_field(serializers.CharField())
    def get_status_display(self, task):
        """Translated once per (answer, status), in the request's language."""
        labels = self.context.get("status_labels")
        if labels is None:
            labels = self.context["status_labels"] = {value: str(label) for value, label in Status.choices}
        return labels[task.status]

    def to_internal_value(self, data):
        """The services' data dict: plain dicts and lists, relations as instances."""
        value = super().to_internal_value(data)
        for field in ("env", "mounts"):
            if field in value:
                value[field] = [dict(item) for item in value[field]]
        return dict(value)


class ForceStartVictimSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    status = serializers.ChoiceField(choices=Status.choices)
    started_at = serializers.DateTimeField(allow_null=True)


class ForceStartPreviewSerializer(serializers.Serializer):
    fits = serializers.BooleanField(help_text=_("Whether the task fits once the victims are killed."))
    victims = ForceStartVictimSerializer(many=True)
    reason = serializers.CharField(allow_blank=True)


class ForceStartSerializer(serializers.Serializer):
    victims = serializers.ListField(
        child=serializers.IntegerField(), required=False, max_length=10_000,
        help_text=_("The ids of the victims the preview showed: if the force start would now kill others, it answers "
                    "409 with the new list and kills nothing."),
    )


class TaskEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True, default=None)
    message = SentenceField()

    class Meta:
        model = TaskEvent
        fields = ["id", "created_at", "operation", "from_status", "to_status", "actor", "message"]


class TaskInstanceSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=InstanceStatus.choices, read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    message = SentenceField()

    class Meta:
        model = TaskInstance
        fields = [
            "id", "task", "run", "index", "node_name", "gpu_type", "gpu_count", "gpu_indices", "sku_count",
            "status", "status_display", "restarts", "message", "created_at", "ready_at", "finished_at",
        ]
        read_only_fields = fields


class TaskRunSerializer(serializers.ModelSerializer):
    """One start of a task: when it queued, was placed, ran and ended, how it ended, what it ran with."""

    started_by = serializers.CharField(source="started_by.username", read_only=True, allow_null=True, default=None)
    killed_by = serializers.CharField(source="killed_by.username", read_only=True, allow_null=True, default=None)
    killed_for = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    outcome = serializers.ChoiceField(choices=RunOutcome.choices, read_only=True, allow_blank=True)
    reason = SentenceField()
    duration_seconds = serializers.SerializerMethodField()
    gpu_count = serializers.SerializerMethodField()
    instances = TaskInstanceSerializer(many=True, read_only=True)

    class Meta:
        model = TaskRun
        fields = [
            "id", "task", "number", "started_by", "queued_at", "placed_at", "running_at", "ended_at", "outcome",
            "reason", "killed_by", "killed_for", "config", "archive_error", "duration_seconds", "gpu_count",
            "instances",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, run) -> float | None:
        return None if run.duration is None else round(run.duration.total_seconds(), 3)

    def get_gpu_count(self, run) -> int:
        return sum(instance.gpu_count for instance in run.instances.all())


class LogQuerySerializer(serializers.Serializer):
    tail = serializers.IntegerField(min_value=1, required=False, help_text=_("Only the last N lines."))
    download = serializers.BooleanField(default=False, help_text=_("Answer the log as an attachment."))


class RefusalSerializer(serializers.Serializer):
    """A 409: the operation is not allowed now."""

    detail = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices, allow_null=True)
    victims = ForceStartVictimSerializer(
        many=True, required=False, help_text=_("A force start whose victims changed: the ones it would kill now.")
    )


class UsageQuerySerializer(serializers.Serializer):
    hours = serializers.IntegerField(min_value=1, max_value=720, default=24)


class TaskUsageSerializer(serializers.Serializer):
    hour = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    latency_ms_mean = serializers.FloatField(allow_null=True)
    latency_ms_max = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
