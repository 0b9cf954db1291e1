"""``GET /api/v1/queue/``: the live queue of every virtual cluster the user may see."""

from urllib.parse import urlencode

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from deploy_portal.api_schema import DETAIL, FIELD_ERRORS
from deploy_portal.pagination import PageNumberPagination
from scheduler.selectors import queue_status

from .serializers import QueueQuerySerializer, QueueSerializer

FIRST_ENTRIES = 20


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
