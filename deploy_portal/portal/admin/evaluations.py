from django.contrib import admin

from evaluations.models import Evaluation


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    """Runs are read here; they are started from the portal or the API, and only a worker changes them."""

    list_display = ("id", "task", "status", "endpoint_kind", "request_count", "concurrency", "created_by", "created_at")
    list_filter = ("status", "endpoint_kind")
    search_fields = ("task__name",)
    list_select_related = ("task", "created_by")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
