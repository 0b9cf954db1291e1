"""The exception handler turns the services' Django exceptions into SPEC's answers."""

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.utils.translation import override

from deploy_portal.api.exceptions import exception_handler
from tasks.exceptions import InvalidTransition, OperationRefused
from tasks.models import Task
from tasks.states import Status


@pytest.mark.parametrize(
    "error, code, data",
    [
        (ValidationError({"image": ["bad"], NON_FIELD_ERRORS: ["whole"]}), 400,
         {"image": ["bad"], "non_field_errors": ["whole"]}),
        (ValidationError("no field"), 400, {"non_field_errors": ["no field"]}),
        (OperationRefused("it can never fit"), 409, {"detail": "it can never fit", "status": None}),
        (lambda: InvalidTransition(task=Task(name="t", status=Status.RUNNING), action="start"), 409,
         {"detail": "Cannot start task “t”: it is running.", "status": "running"}),
        (PermissionDenied("managers only"), 403, {"detail": "managers only"}),
        (Http404(), 404, None),
        (ObjectDoesNotExist(), 404, None),
    ],
    ids=["field errors", "no field", "refused", "transition", "denied", "404", "does not exist"],
)
def test_answers(error, code, data):
    with override("en"):
        response = exception_handler(error() if callable(error) else error, {})

    assert response.status_code == code
    if data is not None:
        assert response.data == data


def test_anything_else_is_left_to_django():
    assert exception_handler(RuntimeError("boom"), {}) is None


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_paths_answer_json_404_even_for_a_post(member_api, method):
    member_api.handler.enforce_csrf_checks = True  # token clients send no CSRF token
    response = getattr(member_api, method)("/api/v1/tasks/-3/evaluations/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}
