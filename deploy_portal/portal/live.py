"""What every portal page shares: its login gate, the scoping of what it reads, and live regions.

Live regions are the parts htmx polls (the queue status under the navigation, a task's state, the
list's rows, the instances): the server answers 204 while nothing changed, so the page is swapped only
when something did.
"""

import hashlib
import re
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def login_required(view):
    """Like Django's, but a poll from htmx after the session ended sends the whole page to the login form."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            return HttpResponseClientRedirect(reverse("login"))
        return redirect_to_login(request.get_full_path())

    return wrapper


def visible_or_404(request, queryset, pk, scope="visible_to"):
    """The object ``pk`` among those of ``queryset`` the user may see (``scope``), else 404: every page reads through here."""
    return get_object_or_404(getattr(queryset, scope)(request.user), pk=pk)


def live_region(request, *, template, context, url, element_id, every="3s"):
    """The HTML of a region that polls ``url`` every ``every`` and its digest."""
    body = render_to_string(template, context, request=request)
    # The CSRF token is masked afresh on every render; it must not count as a change.
    digest = hashlib.blake2s(_CSRF_INPUT.sub("", body).encode(), digest_size=8).hexdigest()
    html = render_to_string(
        "portal/_live.html", {"body": body, "digest": digest, "url": url, "element_id": element_id, "every": every},
    )
    return digest, html


def live_response(request, **region):
    digest, html = live_region(request, **region)
    if request.GET.get("v") == digest:
        return HttpResponse(status=204)
    return HttpResponse(html)
