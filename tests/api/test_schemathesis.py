"""Schemathesis against the live schema at /api/v1/schema/, through the WSGI app: no 500, every answer as documented
(status code, content type and body against the response schema), as the project's member and as a manager.

Generated ids mostly miss; half of them are pointed at real tasks and instances in every state, so the
operations answer 2xx and 409 too, not only 404.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from evaluations.models import Evaluation, EvaluationStatus, FailureReason
from tasks.states import Status
from tests.api.conftest import holding_task, world_task

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def same_connection():
    """Keep the test's connection (and its transaction) across WSGI requests, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def real_ids(world, people):
    running = holding_task(world)
    tasks = [
        world_task(world, name="idle"),
        running,
        world_task(world, name="queued", status=Status.QUEUED, queued_at=timezone.now()),
        world_task(world, name="pinned", status=Status.QUEUED, pinned=True, queued_at=timezone.now()),
        world_task(world, name="stopped", status=Status.STOPPED),
    ]
    # A run under way has no failure reason yet (""), one that failed has one: both must match the schema.
    evaluations = [
        Evaluation.objects.create(task=running, created_by=world.member, status=EvaluationStatus.RUNNING),
        Evaluation.objects.create(
            task=tasks[4], created_by=world.member, status=EvaluationStatus.FAILED,
            failure_reason=FailureReason.TASK_STOPPED, finished_at=timezone.now(),
        ),
    ]
    return {
        "tasks": [t.pk for t in tasks],
        "instances": [running.instances.get().pk],
        "evaluations": [e.pk for e in evaluations],
    }


@pytest.fixture(params=["member", "manager"])
def token(request, people):
    """The project's member (sees its own tasks, may not pin) and a manager (sees and may do everything)."""
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=getattr(people, request.param)).key


def live_schema():
    # Loaded at collection, from the app itself (the schema view reads no database).
    from deploy_portal.wsgi import application

    config = SchemathesisConfig()
    config.projects.default.generation.update(modes=[GenerationMode.POSITIVE], max_examples=EXAMPLES_PER_OPERATION)
    return schemathesis.openapi.from_wsgi("/api/v1/schema/", application, config=config)


schema = live_schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_its_schema_says(case, same_connection, real_ids, token):
    collection = case.path.split("/")[3]
    generated = case.path_parameters.get("id") if case.path_parameters else None
    if isinstance(generated, int) and generated % 2 == 0 and real_ids.get(collection):
        ids = real_ids[collection]
        case.path_parameters["id"] = ids[generated // 2 % len(ids)]

    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
