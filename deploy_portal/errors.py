"""The site's error pages: JSON under ``/api/``, Django's own pages elsewhere.

Django answers some requests before any view runs or after one has crashed — a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` or too many fields (400), a CSRF refusal (403), an unexpected error (500).
An API client reads ``{"detail": ...}`` for those too.
"""

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure

API_PREFIX = "/api/"


def _is_api(request):
    return request.path.startswith(API_PREFIX)


def bad_request(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": _("Bad request: %(reason)s") % {"reason": exception}}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": str(exception) or _("You do not have permission to do this.")}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": _("Internal server error: the error is logged.")}, status=500)
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if _is_api(request):
        return JsonResponse({"detail": _("CSRF check failed: %(reason)s") % {"reason": reason}}, status=403)
    return django_csrf_failure(request, reason)
