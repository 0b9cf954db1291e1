"""``GET /api/v1/queue/``: the live queue of every virtual cluster the user may see."""

from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import QueuePolicy
from scheduler.selectors import queue_status

from .pagination import PageNumberPagination
from .representation import PlannedRepresentation
from .schema import DETAIL, FIELD_ERRORS

FIRST_ENTRIES = 20


class QueueEntrySerializer(PlannedRepresentation, serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(allow_null=True, help_text=_("None for a task of another project."))
    pinned = serializers.BooleanField()
    sku_count = serializers.IntegerField()
    replicas = serializers.IntegerField()
    priority = serializers.IntegerField(help_text=_("Its priority class's value when it was queued; higher goes first."))
    position = serializers.IntegerField(help_text=_("1 is the head of the queue."))
    reason_code = serializers.CharField()
    reason = serializers.CharField(help_text=_("Why it waits, in words."))


class QuotaUsageSerializer(serializers.Serializer):
    project = serializers.CharField()
    used = serializers.IntegerField(help_text=_("SKUs its deploying and running tasks hold here."))
    guaranteed = serializers.IntegerField()
    borrowing_limit = serializers.IntegerField(allow_null=True, help_text=_("Null: no limit."))


class PinnedTaskSerializer(PlannedRepresentation, serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class QueueSerializer(PlannedRepresentation, serializers.Serializer):
    """One virtual cluster's queue, as ``scheduler.selectors.queue_status`` reads it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    gpu_type = serializers.CharField()
    queue_policy = serializers.ChoiceField(choices=QueuePolicy.choices)
    total_skus = serializers.IntegerField()
    free_skus = serializers.IntegerField()
    total_gpus = serializers.IntegerField()
    free_gpus = serializers.IntegerField()
    unschedulable_skus = serializers.IntegerField(
        help_text=_("SKUs on machines taken out of scheduling (in no count above).")
    )
    queued_count = serializers.IntegerField()
    reclaim = serializers.BooleanField(help_text=_("Whether borrowed SKUs are reclaimed for a project under its guarantee."))
    quotas = QuotaUsageSerializer(many=True)
    pinned = PinnedTaskSerializer(allow_null=True)
    queue = QueueEntrySerializer(many=True, help_text=_("The queue in order, pinned first: one page of it."))
    queue_next = serializers.URLField(allow_null=True, help_text=_("The next page of this queue, if any."))
    queue_previous = serializers.URLField(allow_null=True, help_text=_("The previous page of this queue, if any."))
    mine = QueueEntrySerializer(many=True, help_text=_("The user's own queued tasks."))


class QueueQuerySerializer(serializers.Serializer):
    virtual_cluster = serializers.IntegerField(
        required=False, help_text=_("Only this virtual cluster, its whole queue paged by page and page_size.")
    )
    page = serializers.IntegerField(
        required=False, min_value=1, help_text=_("With virtual_cluster: a page of its queue.")
    )
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=settings.API_MAX_PAGE_SIZE,
        help_text=_("With virtual_cluster: entries per page."),
    )


class QueueView(APIView):
    @extend_schema(
        summary=_("The queues of the virtual clusters the user may see"),
        description=_(
            "Per virtual cluster: free and total SKUs and GPUs, the queued count, the pinned task, the first "
            "20 queued tasks in order (pinned first) with position and reason, and the user's own queued tasks. "
            "`?virtual_cluster=ID` answers that cluster alone, its whole queue paged by `page` and `page_size`."
        ),
        parameters=[QueueQuerySerializer],
        responses={
            200: QueueSerializer(many=True),
            400: FIELD_ERRORS,
            404: OpenApiResponse(DETAIL, description=_("No such virtual cluster, or a page past the end.")),
        },
    )
    def get(self, request):
        query = QueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        vc_id = query.validated_data.get("virtual_cluster")
        if vc_id is None:
            queues = queue_status(user=request.user, limit=FIRST_ENTRIES)
            for queue in queues:
                queue["queue_next"] = self._first_pages_next(queue)
                queue["queue_previous"] = None
        else:
            queues = queue_status(user=request.user, virtual_cluster_id=vc_id, limit=None)
            if not queues:
                raise Http404
            self._page(queues[0])
        return Response(QueueSerializer(queues, many=True).data)

    def _first_pages_next(self, queue):
        if queue["queued_count"] <= FIRST_ENTRIES:
            return None
        query = urlencode({"virtual_cluster": queue["id"], "page": 2, "page_size": FIRST_ENTRIES})
        return self.request.build_absolute_uri(f"{self.request.path}?{query}")

    def _page(self, queue):
        """One page of the VC's whole order, with links to the pages around it."""
        paginator = PageNumberPagination()
        paginator.page_size = FIRST_ENTRIES
        queue["queue"] = paginator.paginate_queryset(queue["queue"], self.request, view=self)
        queue["queue_next"] = paginator.get_next_link()
        queue["queue_previous"] = paginator.get_previous_link()


urlpatterns = [path("queue/", QueueView.as_view(), name="queue")]
