"""Secret environment variables: sealed at rest, shown as ••••, opened only for the runtime that starts them.

A task's ``env`` holds two kinds of item:

- plain: ``{"name": "HF_HOME", "value": "/models"}``;
- secret: ``{"name": "HF_TOKEN", "secret": true, "sealed": "<Fernet token>"}`` — the value never rests in the
  database in the clear.

What comes in (the API, the portal's form, a copy, the admin) is *resolved* first: a secret sent without a value,
or with ``MASK``, keeps the value saved under its name (an edit, a copy: "keep or re-enter"). Validation then
reads the open values; the services seal them on save. Readers outside the runtimes only ever see
``env_public`` (secrets as ``MASK``); the runtimes call ``env_open``.

The key: ``ENV_SECRET_KEYS`` (Fernet keys, the first one seals, every one opens: rotation), else one derived
from ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS``) with HKDF. ``manage.py rotate_env_secrets`` seals every
saved secret again with the first key.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core import checks

MASK = "••••"
_INFO = b"deploy-portal: secret environment variables"


class SecretUnreadable(ValueError):
    """A sealed value no configured key opens (the key changed and the old one is gone)."""


def _derived_key(secret):
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(key)


@lru_cache(maxsize=8)
def _fernet(keys, derived_from):
    fernets = [Fernet(key) for key in keys] + [Fernet(_derived_key(secret)) for secret in derived_from]
    return MultiFernet(fernets)


def fernet():
    """The configured keys, the first one sealing: ``ENV_SECRET_KEYS``, else derived from the secret keys."""
    keys = tuple(settings.ENV_SECRET_KEYS)
    derived = () if keys else (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    return _fernet(keys, tuple(secret for secret in derived if secret))


def check_keys(app_configs=None, **kwargs):
    """A system check: each of ``ENV_SECRET_KEYS`` is a Fernet key (found at start, not at the first deploy)."""
    errors = []
    for position, key in enumerate(settings.ENV_SECRET_KEYS, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(
                checks.Error(
                    f"ENV_SECRET_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded bytes).",
                    hint="Make one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="tasks.E001",
                )
            )
    return errors


def seal(value):
    return fernet().encrypt(value.encode()).decode()


def unseal(token):
    try:
        return fernet().decrypt(str(token).encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable("no configured key opens this value") from exc


def is_secret(item):
    return isinstance(item, dict) and item.get("secret") is True


def env_resolve(env, previous=()):
    """Incoming items (plain, secret, or as saved) as open items ``{name, value, secret}``.

    A secret without a value, or with ``MASK``, takes the value saved under its name in ``previous`` (the task
    being edited or copied). Nothing to keep leaves the value empty, with ``missing`` (nothing saved) or
    ``unreadable`` (no key opens it) for validation to say so; a saved secret sent as plain without a value is
    ``unmarked`` (refused: it would empty it). What is not a dict is passed on for validation.
    """
    saved = {item.get("name"): item for item in previous or () if is_secret(item)}
    opened = []
    for item in env:
        if not isinstance(item, dict):
            opened.append(item)
            continue
        if not isinstance(item.get("secret", False), bool):  # validation says so
            opened.append(dict(item))
            continue
        if not is_secret(item):
            plain = {"name": item.get("name", ""), "value": item.get("value", ""), "secret": False}
            if plain["value"] in ("", MASK) and plain["name"] in saved:
                plain["unmarked"] = True  # a saved secret made plain without its value: refused, not emptied
            opened.append(plain)
            continue
        name = item.get("name", "")
        value = item.get("value")
        if "sealed" in item and not value:  # as saved (a copy, an edit that leaves env alone)
            source = item
        elif value in (None, "", MASK):
            source = saved.get(name)
        else:
            opened.append({"name": name, "value": value, "secret": True})
            continue
        resolved = {"name": name, "value": "", "secret": True}
        if source is None:
            resolved["missing"] = True
        else:
            try:
                resolved["value"] = unseal(source.get("sealed", ""))
            except SecretUnreadable:
                resolved["unreadable"] = True
        opened.append(resolved)
    return opened


def env_seal(opened):
    """Open items (validated) as they are saved: secrets sealed, their clear value dropped."""
    return [
        {"name": item["name"], "secret": True, "sealed": seal(item["value"])}
        if item.get("secret")
        else {"name": item["name"], "value": item.get("value") or ""}
        for item in opened
    ]


def env_item_public(item):
    """One saved item as anyone may read it: a secret's value is ``MASK``."""
    if is_secret(item):
        return {"name": item.get("name", ""), "value": MASK, "secret": True}
    return {"name": item.get("name", ""), "value": item.get("value", ""), "secret": False}


def env_public(env):
    return [env_item_public(item) for item in env or () if isinstance(item, dict)]


def env_open(env):
    """The saved items with their values, for the runtime that starts the task: ``[(name, value, secret)]``.

    Raises ``SecretUnreadable`` when a secret can no longer be opened (the deploy fails and says so).
    """
    return [
        (str(item["name"]), unseal(item["sealed"]) if is_secret(item) else str(item.get("value", "")), is_secret(item))
        for item in env or ()
    ]


def env_reseal(env):
    """The saved items with every secret sealed again by the first key (``MultiFernet.rotate``); raises
    ``SecretUnreadable`` when no key opens one."""
    try:
        return [
            {**item, "sealed": fernet().rotate(str(item["sealed"]).encode()).decode()} if is_secret(item) else item
            for item in env or ()
        ]
    except (InvalidToken, KeyError) as exc:
        raise SecretUnreadable("no configured key opens a saved value") from exc
