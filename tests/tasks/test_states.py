"""Every (state × operation) pair, allowed or refused exactly as SPEC lists them."""

import pytest
from django.core.exceptions import PermissionDenied

from deploy_portal.messages import render
from tasks.access import allowed_actions, check_action
from tasks.exceptions import InvalidTransition
from tasks.services import task_transition
from tasks.states import TRANSITIONS, Action, Status, state_allows
from tests.factories import TaskFactory

S = Status
# Written from SPEC's "Operations offered per state, exactly", independently of tasks/states.py.
EXPECTED = {
    Action.START: {S.NOT_DEPLOYED, S.STOPPED, S.KILLED},
    Action.STOP: {S.QUEUED, S.DEPLOYING, S.RUNNING, S.FAILED},
    Action.EVALUATE: {S.RUNNING},
    Action.PIN: {S.QUEUED},
    Action.EDIT: {S.NOT_DEPLOYED, S.FAILED, S.STOPPED, S.KILLED},
    Action.DELETE: {S.NOT_DEPLOYED, S.FAILED, S.STOPPED, S.KILLED},
    Action.COPY: set(S),
}
# SPEC's transition table: (from, transition) -> to.
EXPECTED_TRANSITIONS = {
    "deploy": ({S.NOT_DEPLOYED, S.STOPPED, S.KILLED}, S.DEPLOYING),
    "enqueue": ({S.NOT_DEPLOYED, S.STOPPED, S.KILLED}, S.QUEUED),
    "place": ({S.QUEUED}, S.DEPLOYING),
    "ready": ({S.DEPLOYING}, S.RUNNING),
    "fail": ({S.DEPLOYING, S.RUNNING}, S.FAILED),
    "stop": ({S.QUEUED, S.DEPLOYING, S.RUNNING, S.FAILED}, S.STOPPED),
    "kill": ({S.DEPLOYING, S.RUNNING}, S.KILLED),
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", list(EXPECTED))
def test_operation_offered_exactly_from_spec_states(action, status):
    assert state_allows(action, status) == (status in EXPECTED[action])


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("pinned", [False, True])
def test_pin_unpin_force_start_depend_on_pinned(status, pinned):
    queued = status == S.QUEUED
    assert state_allows(Action.PIN, status, pinned) == (queued and not pinned)
    assert state_allows(Action.UNPIN, status, pinned) == (queued and pinned)
    assert state_allows(Action.FORCE_START, status, pinned) == (queued and pinned)


def test_transition_table_is_spec():
    assert {name: (set(t.sources), t.target) for name, t in TRANSITIONS.items()} == EXPECTED_TRANSITIONS


@pytest.mark.django_db
@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("transition", list(EXPECTED_TRANSITIONS))
def test_transition_primitive_every_state(status, transition):
    task = TaskFactory(status=status)
    sources, target = EXPECTED_TRANSITIONS[transition]
    if status in sources:
        task_transition(task=task, transition=transition, message="because")
        task.refresh_from_db()
        assert task.status == target
        event = task.events.get()
        assert (event.from_status, event.to_status, event.operation, render(event.message)) == (status, target, transition, "because")
    else:
        with pytest.raises(InvalidTransition) as refused:
            task_transition(task=task, transition=transition)
        assert str(Status(status).label).lower() in str(refused.value)
        task.refresh_from_db()
        assert task.status == status
        assert not task.events.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status", list(S))
def test_refusal_names_the_current_state(status):
    task = TaskFactory(status=status, name="llama")
    for action in (Action.START, Action.STOP, Action.EVALUATE, Action.EDIT, Action.DELETE):
        if status in EXPECTED[action]:
            check_action(task=task, user=task.owner, action=action)
        else:
            with pytest.raises(InvalidTransition, match=f"llama.*{str(Status(status).label).lower()}"):
                check_action(task=task, user=task.owner, action=action)


@pytest.mark.django_db
def test_manager_operations_need_the_permission(manager):
    task = TaskFactory(status=S.QUEUED)
    for action in (Action.PIN, Action.FORCE_START):
        with pytest.raises(PermissionDenied):
            check_action(task=task, user=task.owner, action=action)
    check_action(task=task, user=manager, action=Action.PIN)
    assert Action.PIN not in allowed_actions(task, task.owner)
    assert Action.PIN in allowed_actions(task, manager)
    assert Action.STOP in allowed_actions(task, task.owner)
    assert Action.START not in allowed_actions(task, task.owner)
