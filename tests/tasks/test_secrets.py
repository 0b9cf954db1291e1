"""Secret environment variables: sealed at rest, kept by an edit or a copy that does not re-enter them, shown as
••••, opened only for the runtime, readable after a key rotation and refused in words when no key opens them."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from scheduler.runtimes.base import RuntimeFailure, task_env
from tasks import secrets
from tasks.models import Task
from tasks.secrets import MASK, env_open, env_public
from tasks.services import task_copy, task_create, task_update
from tests.factories import task_data

pytestmark = pytest.mark.django_db
TOKEN = "hf_s3cr3t-value-that-must-never-show"


def _stored_text(task):
    """The env column as the database holds it, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT env::text FROM {Task._meta.db_table} WHERE id = %s", [task.pk])
        return cursor.fetchone()[0]


def _secret_task(world, **overrides):
    env = [{"name": "SHM_SIZE", "value": "1Gi"}, {"name": "HF_TOKEN", "value": TOKEN, "secret": True}]
    return task_create(user=world.member, data=task_data(world, env=env, **overrides))


def _opened(task):
    task.refresh_from_db()
    return {name: (value, secret) for name, value, secret in env_open(task.env)}


def test_a_secret_is_sealed_at_rest_and_shown_as_a_mask(world):
    task = _secret_task(world)
    stored = _stored_text(task)
    assert TOKEN not in stored and "sealed" in stored
    assert env_public(task.env) == [
        {"name": "SHM_SIZE", "value": "1Gi", "secret": False}, {"name": "HF_TOKEN", "value": MASK, "secret": True},
    ]
    assert _opened(task)["HF_TOKEN"] == (TOKEN, True)
    # Never in the timeline or the run's record either.
    assert not any(TOKEN in str(event.message) for event in task.events.all())


@pytest.mark.parametrize("sent", [{"value": MASK}, {"value": ""}, {}], ids=["mask", "blank", "left-out"])
def test_an_edit_that_sends_a_secret_without_its_value_keeps_it(world, sent):
    task = _secret_task(world)
    env = [{"name": "SHM_SIZE", "value": "2Gi"}, {"name": "HF_TOKEN", "secret": True, **sent}]
    task_update(task=task, user=world.member, data={"env": env})
    assert _opened(task) == {"SHM_SIZE": ("2Gi", False), "HF_TOKEN": (TOKEN, True)}


def test_an_edit_of_other_fields_keeps_the_secret_and_a_new_value_replaces_it(world):
    task = _secret_task(world)
    task_update(task=task, user=world.member, data={"description": "renamed"})
    assert _opened(task)["HF_TOKEN"] == (TOKEN, True)
    task_update(task=task, user=world.member, data={"env": [{"name": "HF_TOKEN", "value": "new", "secret": True}]})
    assert _opened(task) == {"HF_TOKEN": ("new", True)}


def test_a_copy_keeps_the_sources_secrets_or_takes_new_ones(world):
    source = _secret_task(world)
    kept = task_copy(task=source, user=world.member)
    assert _opened(kept)["HF_TOKEN"] == (TOKEN, True)
    assert TOKEN not in _stored_text(kept) and _stored_text(kept) != _stored_text(source)  # sealed anew
    masked = task_copy(task=source, user=world.member, overrides={"env": env_public(source.env)})
    assert _opened(masked)["HF_TOKEN"] == (TOKEN, True)
    other = task_copy(
        task=source, user=world.member, overrides={"env": [{"name": "HF_TOKEN", "value": "other", "secret": True}]},
    )
    assert _opened(other) == {"HF_TOKEN": ("other", True)}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "HF_TOKEN", "value": "", "secret": True}], "The secret HF_TOKEN needs a value: none is saved to keep."),
        ([{"name": "HF_TOKEN", "value": MASK, "secret": True}], "The secret HF_TOKEN needs a value: none is saved to keep."),
        ([{"name": "SHM_SIZE", "value": "1Gi", "secret": True}], "SHM_SIZE sizes /dev/shm and is read by the platform: it cannot be secret."),
        ([{"name": "HF_TOKEN", "value": "x", "secret": "yes"}], "Whether HF_TOKEN is secret must be true or false."),
        ([{"name": "HF_TOKEN", "value": "x\x00y", "secret": True}], "The value of HF_TOKEN must not contain NUL characters (\\x00)."),
    ],
    ids=["blank", "mask", "shm-size", "not-a-boolean", "nul"],
)
def test_a_secret_that_cannot_be_saved_is_refused_on_the_field(world, env, message):
    with pytest.raises(ValidationError) as refused:
        task_create(user=world.member, data=task_data(world, env=env))
    assert refused.value.message_dict["env"] == [message]
    assert not Task.objects.exists()


@pytest.mark.parametrize("value", ["", MASK])
def test_a_saved_secret_made_plain_without_its_value_is_refused_not_emptied(world, value):
    task = _secret_task(world)
    with pytest.raises(ValidationError) as refused:
        task_update(task=task, user=world.member, data={"env": [{"name": "HF_TOKEN", "value": value, "secret": False}]})
    assert refused.value.message_dict["env"] == [
        "HF_TOKEN is saved as a secret: enter its value to make it plain, or keep it secret."
    ]
    assert _opened(task)["HF_TOKEN"] == (TOKEN, True)
    task_update(task=task, user=world.member, data={"env": [{"name": "HF_TOKEN", "value": "plain now"}]})
    assert _opened(task) == {"HF_TOKEN": ("plain now", False)}
    assert "plain now" in _stored_text(task)


def test_the_default_key_comes_from_secret_key_and_its_fallbacks_open_what_it_sealed(world, settings):
    settings.ENV_SECRET_KEYS = []
    task = _secret_task(world)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-site-key", [settings.SECRET_KEY]
    assert _opened(task)["HF_TOKEN"] == (TOKEN, True)
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(secrets.SecretUnreadable):
        _opened(task)


def test_rotation_seals_again_with_the_first_key_and_the_old_key_can_go(world, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENV_SECRET_KEYS = [old]
    task = _secret_task(world)
    plain = task_create(user=world.member, data=task_data(world, name="plain"))
    sealed_before, plain_before = _stored_text(task), _stored_text(plain)
    settings.ENV_SECRET_KEYS = [new, old]
    call_command("rotate_env_secrets")
    assert _stored_text(task) != sealed_before and _stored_text(plain) == plain_before
    settings.ENV_SECRET_KEYS = [new]
    assert _opened(task)["HF_TOKEN"] == (TOKEN, True)


def test_a_secret_no_key_opens_fails_the_deploy_and_the_edit_says_to_enter_it_again(world, settings):
    settings.ENV_SECRET_KEYS = [Fernet.generate_key().decode()]
    task = _secret_task(world)
    settings.ENV_SECRET_KEYS = [Fernet.generate_key().decode()]
    task.refresh_from_db()
    with pytest.raises(RuntimeFailure) as failed:
        task_env(task)
    assert "can no longer be read" in str(failed.value)
    with pytest.raises(ValidationError) as refused:
        task_update(task=task, user=world.member, data={"description": "x"})
    assert refused.value.message_dict["env"] == [
        "The saved value of the secret HF_TOKEN can no longer be read (its key changed): enter it again."
    ]
    with pytest.raises(CommandError, match=f"task\\(s\\) {task.pk}"):
        call_command("rotate_env_secrets")
    task_update(task=task, user=world.member, data={"env": [{"name": "HF_TOKEN", "value": "again", "secret": True}]})
    assert _opened(task)["HF_TOKEN"] == ("again", True)


def test_a_key_that_is_not_a_fernet_key_stops_the_checks(settings):
    settings.ENV_SECRET_KEYS = [Fernet.generate_key().decode(), "not-a-key"]
    errors = secrets.check_keys()
    assert [error.id for error in errors] == ["tasks.E001"] and "key 2" in errors[0].msg
