"""The gateway's API keys: ``/api/v1/api-keys/`` — a user's own keys (a manager's too: their own).

``POST`` makes one and answers its ``key`` this once (only its digest is kept); ``GET`` lists them with their
prefix, scope, expiry and last use; ``DELETE /api-keys/<id>/`` revokes (the row stays, for its usage).
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.response import Response

from clusters.models import Project
from endpoints.models import ApiKey
from endpoints.services import api_key_create, api_key_revoke
from tasks.models import Task

from .fields import TextField


class ApiKeySerializer(serializers.ModelSerializer):
    name = TextField(max_length=100)
    project = serializers.PrimaryKeyRelatedField(
        queryset=Project.objects.all(), allow_null=True, required=False, default=None,
        help_text=_("Only this project's tasks (blank: every task its user may call)."),
    )
    tasks = serializers.PrimaryKeyRelatedField(
        queryset=Task.objects.all(), many=True, required=False, default=list,
        help_text=_("Only these tasks (blank: no narrower than the project)."),
    )
    prefix = serializers.SerializerMethodField(help_text=_("How the key begins, to tell it apart."))
    key = serializers.SerializerMethodField(help_text=_("The key itself: answered once, when it is made."))

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "key", "project", "tasks", "expires_at", "rate_limit", "created_at",
                  "last_used_at", "revoked_at"]
        read_only_fields = ["created_at", "last_used_at", "revoked_at"]

    def get_prefix(self, api_key) -> str:
        return f"dpk_{api_key.prefix}_"

    def get_key(self, api_key) -> str | None:
        return self.context.get("made_key")


@extend_schema_view(
    list=extend_schema(summary=_("Your API keys for the gateway")),
    create=extend_schema(summary=_("Make an API key (answered once)")),
    retrieve=extend_schema(summary=_("One of your API keys")),
    destroy=extend_schema(summary=_("Revoke an API key")),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()  # for the schema; each request reads the user's own (get_queryset)
    permission_classes = [permissions.IsAuthenticated]
    filter_backends = []

    def get_queryset(self):
        return ApiKey.objects.filter(user=self.request.user).select_related("project").prefetch_related("tasks")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, key = api_key_create(user=request.user, **serializer.validated_data)
        answer = ApiKeySerializer(api_key, context={**self.get_serializer_context(), "made_key": key})
        return Response(answer.data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        api_key_revoke(api_key=instance, user=self.request.user)


def register(router):
    router.register("api-keys", ApiKeyViewSet, basename="api-key")
