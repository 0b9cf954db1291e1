"""``bench_runtime`` measures start → apply through a real worker of its own and prints one JSON line."""

import io
import json

import pytest
from django.core.management import call_command

from tests.live import _database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_bench_runtime_prints_the_latency(live_stack, monkeypatch):
    # The bench's worker inherits this environment: the test database and the live stack's broker.
    monkeypatch.setenv("DATABASE_URL", _database_url())
    out = io.StringIO()
    call_command("bench_runtime", runs=3, stdout=out)
    result = json.loads(out.getvalue())
    assert result["benchmark"] == "start_to_runtime_apply" and result["runs"] == 3
    assert result["broker"] == "redis" and result["database"] == "postgresql"
    # Event-driven: the worker runs no beat, so an apply only happens because start sent it.
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["max_ms"] < 1000
