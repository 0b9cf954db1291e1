"""The user's gateway keys: list them (prefix, scope, expiry, last use), make one (shown once), revoke one.

A key made here is shown on the answer to its POST alone, never stored in the clear (``endpoints.keys``).
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from clusters.models import Project
from endpoints.models import ApiKey
from endpoints.services import api_key_create, api_key_revoke

from .live import login_required


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), required=False, max_length=200)
    project = forms.ModelChoiceField(
        Project.objects.none(), label=gettext_lazy("Project"), required=False,
        empty_label=gettext_lazy("Every project of mine"),
    )
    expires_at = forms.DateTimeField(
        label=gettext_lazy("Expires"), required=False, help_text=gettext_lazy("Blank: never."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    rate_limit = forms.IntegerField(
        label=gettext_lazy("Requests per minute"), required=False, help_text=gettext_lazy("Blank: no limit."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.of_member(user)


@require_http_methods(["GET", "POST"])
@login_required
def api_keys(request):
    form = ApiKeyForm(request.POST or None, user=request.user)
    made = None
    if request.method == "POST" and form.is_valid():
        try:
            api_key, made = api_key_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Key “%(name)s” made. Copy it now: it is not shown again.") % {"name": api_key.name})
            form = ApiKeyForm(user=request.user)
    keys = ApiKey.objects.filter(user=request.user).select_related("project")
    return render(request, "portal/api_keys.html", {"form": form, "keys": keys, "made": made})


@require_POST
@login_required
def api_key_revoke_view(request, pk):
    api_key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_key_revoke(api_key=api_key, user=request.user)
    messages.success(request, _("Key “%(name)s” revoked: the gateway refuses it within seconds.") % {"name": api_key.name})
    return redirect("portal:api-keys")
