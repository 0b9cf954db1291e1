from rest_framework import serializers

from ..models import Evaluation
from ..services import PARAMETER_FIELDS


class EvaluationParametersSerializer(serializers.ModelSerializer):
    """The body of ``POST tasks/{id}/evaluations/``: the run's parameters, every one optional."""

    class Meta:
        model = Evaluation
        fields = PARAMETER_FIELDS


class EvaluationSerializer(serializers.ModelSerializer):
    """One run as it now is: its parameters, what was evaluated, its status and results."""

    task_name = serializers.CharField(source="task.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    status_message = serializers.CharField(read_only=True)

    class Meta:
        model = Evaluation
        fields = (
            "id", "task", "task_name", "created_by", "created_at", "started_at", "finished_at",
            *PARAMETER_FIELDS, "endpoint", "task_config", "status", "status_display", "requests_done", "failure_reason",
            "failure_detail", "status_message", "results",
        )
        read_only_fields = fields
