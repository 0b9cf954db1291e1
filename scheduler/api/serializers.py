from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from clusters.models import QueuePolicy


class QueueEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField()
    pinned = serializers.BooleanField()
    sku_count = serializers.IntegerField()
    replicas = serializers.IntegerField()
    position = serializers.IntegerField(help_text=_("1 is the head of the queue."))
    reason_code = serializers.CharField()
    reason = serializers.CharField(help_text=_("Why it waits, in words."))


class PinnedTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    """One virtual cluster's queue, as ``scheduler.selectors.queue_status`` reads it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    gpu_type = serializers.CharField()
    queue_policy = serializers.ChoiceField(choices=QueuePolicy.choices)
    total_skus = serializers.IntegerField()
    free_skus = serializers.IntegerField()
    total_gpus = serializers.IntegerField()
    free_gpus = serializers.IntegerField()
    queued_count = serializers.IntegerField()
    pinned = PinnedTaskSerializer(allow_null=True)
    queue = QueueEntrySerializer(many=True, help_text=_("The queue in order, pinned first: one page of it."))
    queue_next = serializers.URLField(allow_null=True, help_text=_("The next page of this queue, if any."))
    queue_previous = serializers.URLField(allow_null=True, help_text=_("The previous page of this queue, if any."))
    mine = QueueEntrySerializer(many=True, help_text=_("The user's own queued tasks."))


class QueueQuerySerializer(serializers.Serializer):
    virtual_cluster = serializers.IntegerField(
        required=False, help_text=_("Only this virtual cluster, its whole queue paged by page and page_size.")
    )
    page = serializers.IntegerField(required=False, help_text=_("With virtual_cluster: a page of its queue."))
    page_size = serializers.IntegerField(required=False, help_text=_("With virtual_cluster: entries per page."))
