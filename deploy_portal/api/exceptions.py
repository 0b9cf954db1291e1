"""The API's one exception handler: the services' Django exceptions become SPEC's answers.

- ``django.core.exceptions.ValidationError`` → 400 ``{field: [messages]}``
- ``tasks.exceptions.OperationRefused`` (and ``InvalidTransition``) → 409 ``{detail, status}``
- ``PermissionDenied`` → 403, ``Http404`` / ``ObjectDoesNotExist`` → 404 (``{detail}``)
"""

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from tasks.exceptions import OperationRefused

from .tasks.serializers import ForceStartVictimSerializer


def validation_detail(error):
    """A Django ValidationError as DRF's ``{field: [messages]}``; errors without a field go under non_field_errors."""
    if hasattr(error, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
            for field, messages in error.message_dict.items()
        }
    return {api_settings.NON_FIELD_ERRORS_KEY: error.messages}


def refusal_status(exc):
    """The task's current status, when the refusal knows it."""
    status_ = getattr(exc, "status", None)
    if status_ is None and getattr(exc, "task", None) is not None:
        status_ = exc.task.status
    return str(status_) if status_ is not None else None


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_detail(exc))
    elif isinstance(exc, (ObjectDoesNotExist, Http404)):
        # DRF would repeat Django's English "No Task matches the given query."; say it in the request's language.
        exc = exceptions.NotFound()
    elif isinstance(exc, OperationRefused):
        set_rollback()
        body = {"detail": str(exc.message), "status": refusal_status(exc)}
        if getattr(exc, "victims", None) is not None:  # a force start whose victims changed since the preview
            body["victims"] = ForceStartVictimSerializer(exc.victims, many=True).data
        return Response(body, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
