"""Two concurrent transitions of one task cannot both win (PostgreSQL, two real connections)."""

import threading

import pytest
from django.db import connection, connections, transaction

from tasks.exceptions import InvalidTransition
from tasks.models import TaskEvent
from tasks.services import task_transition
from tasks.states import Status
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_suite_runs_on_postgresql():
    assert connection.vendor == "postgresql"


# Pairs where whichever wins, the other is no longer allowed (fail then stop would be a legal sequence).
@pytest.mark.parametrize("first,second", [("stop", "kill"), ("kill", "fail"), ("fail", "fail"), ("stop", "stop")])
def test_concurrent_transitions_one_winner(first, second):
    task = TaskFactory(status=Status.RUNNING)
    barrier = threading.Barrier(2)
    outcomes = {}

    def attempt(transition):
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                task_transition(task=type(task).objects.get(pk=task.pk), transition=transition)
            outcomes[transition + str(threading.get_ident())] = "won"
        except InvalidTransition:
            outcomes[transition + str(threading.get_ident())] = "refused"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(name,)) for name in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["refused", "won"]
    assert TaskEvent.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert task.status in {Status.STOPPED, Status.FAILED, Status.KILLED}
