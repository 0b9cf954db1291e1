"""The user's own API token: see it, create (or replace) it, revoke it — no password in a script.

The API reads the token as ``Authorization: Token <key>`` (DRF's authtoken: one token per user).
"""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from .live import login_required


@require_GET
@login_required
def token_page(request):
    token = Token.objects.filter(user=request.user).first()
    api = request.build_absolute_uri("/api/v1/")
    return render(request, "portal/token.html", {"token": token, "api": api})


@require_POST
@login_required
def token_create(request):
    """A new token; one the user had stops working at once."""
    Token.objects.filter(user=request.user).delete()
    Token.objects.create(user=request.user)
    messages.success(request, _("A new API token was created; the previous one no longer works."))
    return redirect("portal:token")


@require_POST
@login_required
def token_revoke(request):
    deleted, _rows = Token.objects.filter(user=request.user).delete()
    if deleted:
        messages.success(request, _("Your API token was revoked."))
    return redirect("portal:token")
