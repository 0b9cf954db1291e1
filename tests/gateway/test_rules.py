"""The gateway's pure rules: which replica, what a key allows, tokens read from answers."""

from datetime import UTC, datetime, timedelta

from endpoints.balancing import Balancer
from endpoints.keys import KeyGrant, bearer_key, key_allows, key_digest, key_make
from endpoints.usage import tokens_of_json, tokens_of_stream

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def test_the_least_outstanding_replica_takes_the_request_and_ties_go_in_turn():
    clock = [0.0]
    balancer = Balancer(eject_seconds=5, clock=lambda: clock[0])
    pool = ("a", "b", "c")
    picks = [balancer.pick(pool) for _ in range(6)]
    assert sorted(picks) == ["a", "a", "b", "b", "c", "c"]
    balancer.started("a")
    balancer.started("b")
    assert balancer.pick(pool) == "c"
    balancer.finished("a")
    balancer.finished("b")
    balancer.eject("c")
    assert {balancer.pick(pool) for _ in range(4)} == {"a", "b"}
    assert balancer.pick(pool, exclude={"a", "b"}) == "c"  # ejected, but the only one left: still tried
    clock[0] = 6.0
    assert "c" in {balancer.pick(pool) for _ in range(6)}  # back after the ejection
    assert balancer.pick(pool, exclude=set(pool)) is None


def test_a_key_allows_what_its_user_may_see_narrowed_by_its_scope():
    grant = KeyGrant(key_id=1, user_id=1, manager=False, projects=frozenset({10}))
    assert key_allows(grant, task_id=5, project_id=10, now=NOW)
    assert not key_allows(grant, task_id=5, project_id=11, now=NOW)
    manager = KeyGrant(key_id=2, user_id=2, manager=True, projects=frozenset())
    assert key_allows(manager, task_id=5, project_id=11, now=NOW)
    scoped = KeyGrant(key_id=3, user_id=1, manager=False, projects=frozenset({10, 11}), scope_project=10)
    assert key_allows(scoped, task_id=5, project_id=10, now=NOW) and not key_allows(scoped, task_id=6, project_id=11, now=NOW)
    tasks = KeyGrant(key_id=4, user_id=1, manager=False, projects=frozenset({10}), scope_tasks=frozenset({5}))
    assert key_allows(tasks, task_id=5, project_id=10, now=NOW) and not key_allows(tasks, task_id=6, project_id=10, now=NOW)
    expired = KeyGrant(key_id=5, user_id=1, manager=False, projects=frozenset({10}), expires_at=NOW - timedelta(seconds=1))
    assert not key_allows(expired, task_id=5, project_id=10, now=NOW) and not key_allows(None, task_id=5, project_id=10, now=NOW)


def test_a_key_is_read_from_a_bearer_header_only():
    key, prefix, digest = key_make()
    assert key.startswith(f"dpk_{prefix}_") and digest == key_digest(key) and len(digest) == 64
    assert bearer_key(f"Bearer {key}") == key and bearer_key(f"bearer  {key} ") == key
    assert bearer_key(f"Token {key}") is None and bearer_key("Bearer sk-other") is None and bearer_key(None) is None


def test_tokens_are_read_from_a_json_answer_and_from_a_streams_last_usage():
    assert tokens_of_json(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 7}}') == (3, 7)
    for odd in (b"not json", b"[" * 5000, b'{"usage": {"prompt_tokens": true, "completion_tokens": 1}}', b'{"usage": 1}'):
        assert tokens_of_json(odd) is None
    stream = (b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
              b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 4}}\n\ndata: [DONE]\n\n')
    assert tokens_of_stream(stream) == (2, 4)
    assert tokens_of_stream(b'data: {"choices": []}\n\ndata: [DONE]\n\n') is None
