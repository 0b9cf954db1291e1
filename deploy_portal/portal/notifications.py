"""The notifications page: what each user is told, by e-mail or webhook; their webhooks; what was sent lately."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from observability import notifications
from observability.models import Delivery, NotificationEvent, NotificationPreference, Webhook

from .forms import NotificationPreferencesForm, WebhookForm
from .live import login_required


def _preferences_form(request, data=None):
    return NotificationPreferencesForm(
        data, user=request.user, events=NotificationEvent.choices,
        preferences=list(NotificationPreference.objects.filter(user=request.user)),
    )


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    form = _preferences_form(request, request.POST if "save_preferences" in request.POST else None)
    webhook_form = WebhookForm(request.POST if "add_webhook" in request.POST else None)
    if form.is_bound and form.is_valid():
        notifications.preferences_save(
            user=request.user, choices=form.choices(), queued_minutes=form.cleaned_data["queued_minutes"],
        )
        messages.success(request, _("Your notification choices were saved."))
        return redirect("portal:notifications")
    if webhook_form.is_bound and webhook_form.is_valid():
        notifications.webhook_create(user=request.user, **webhook_form.cleaned_data)
        messages.success(request, _("Webhook “%(name)s” added.") % {"name": webhook_form.cleaned_data["name"]})
        return redirect("portal:notifications")
    context = {
        "form": form, "webhook_form": webhook_form,
        "webhooks": Webhook.objects.filter(owner=request.user, project__isnull=True),
        "deliveries": Delivery.objects.filter(task__owner=request.user).select_related("task", "webhook")[:20],
    }
    return render(request, "portal/notifications.html", context)


@login_required
@require_POST
def webhook_toggle(request, pk):
    webhook = get_object_or_404(Webhook, pk=pk, owner=request.user, project__isnull=True)
    notifications.webhook_set_enabled(webhook=webhook, enabled=not webhook.enabled)
    return redirect("portal:notifications")
