"""API keys as text: their format, their digest, and what a key allows. Pure: no model, no database.

A key reads ``dpk_<prefix>_<secret>``: the prefix (8 characters) names it in lists and logs, the secret
(43 url-safe characters, 256 bits) is shown once and never stored; the database keeps the SHA-256 of the whole
key. A plain hash is the right tool for a random 256-bit secret (GitHub and Stripe keys are kept so): there is
nothing to guess, so no slow hash is needed, and the gateway can look a key up in a dict without a query.
"""

import hashlib
import secrets
from dataclasses import dataclass, field

PREFIX = "dpk_"


def key_make():
    """A new key: ``(key, prefix, digest)``."""
    prefix = secrets.token_hex(4)
    key = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, key_digest(key)


def key_digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(header):
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(PREFIX):
        return None
    return value


@dataclass(frozen=True)
class KeyGrant:
    """What the gateway knows of one usable key (read with the routing table)."""

    key_id: int
    user_id: int
    manager: bool
    projects: frozenset  # the projects its user is a member of
    scope_project: int | None = None
    scope_tasks: frozenset = field(default_factory=frozenset)
    expires_at: object = None  # an aware datetime, or None
    rate_limit: int | None = None  # requests per minute


def key_allows(grant, *, task_id, project_id, now):
    """Whether ``grant`` may call the task: its user may see the task (a member of its project, or a manager), the
    key has not expired, and the task is inside the key's scope (its project, or its tasks) when it has one."""
    if grant is None or (grant.expires_at is not None and grant.expires_at <= now):
        return False
    if not (grant.manager or project_id in grant.projects):
        return False
    if grant.scope_tasks:
        return task_id in grant.scope_tasks
    return grant.scope_project is None or grant.scope_project == project_id
