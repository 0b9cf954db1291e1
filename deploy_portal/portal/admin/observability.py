from functools import partial

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from observability.models import Delivery, NotificationEvent, Webhook


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label=_("events"), choices=NotificationEvent.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("For a project's webhook: the events of the project's tasks it is told."),
    )

    class Meta:
        model = Webhook
        fields = ("name", "kind", "url", "secret", "project", "events", "owner", "enabled")
        field_classes = {"url": partial(forms.URLField, assume_scheme="https")}


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Managers set a project's webhooks here; users keep their own on the portal's notifications page."""

    form = WebhookForm
    list_display = ("name", "kind", "project", "owner", "enabled", "consecutive_failures", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "url", "project__name", "owner__username")
    list_select_related = ("project", "owner")

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """What was sent, to whom, and why it did not arrive: read here, written by the workers."""

    list_display = ("id", "event", "task", "email", "webhook", "status", "attempts", "error", "created_at", "sent_at")
    list_filter = ("status", "event")
    search_fields = ("task__name", "email", "webhook__name")
    list_select_related = ("task", "webhook")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
