"""Test-wide setup: the suite runs on PostgreSQL, and Celery messages go nowhere unless a test says so."""

import os

# Concurrency and locking matter here, so tests use PostgreSQL unless told otherwise.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/deploy_portal")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("DEPLOY_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-output", "var"))
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")


import pytest  # noqa: E402

pytest_plugins = ["tests.browser"]


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def manager(db):
    from tests.factories import ManagerFactory

    return ManagerFactory()


@pytest.fixture
def anyone_sets_commands(settings):
    """Members may override the image's command, as on Kubernetes (the local runtime's default is managers only)."""
    settings.COMMAND_OVERRIDE = "everyone"


@pytest.fixture
def world(db):
    """A small GPU world: one project with a member, one granted VC of two 8-SKU machines, one storage."""
    from tests.factories import make_world

    return make_world()


def pytest_configure(config):
    from django.conf import settings

    # PBKDF2's real cost is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
