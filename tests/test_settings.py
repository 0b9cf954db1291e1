"""Safe defaults (issue 14): DEBUG is off unless asked for; off, the site does not start without a key of its own
or with any Host allowed; the production settings the README shows pass ``manage.py check --deploy``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {  # README: "Production settings"
    "DEBUG": "false",
    "SECRET_KEY": "9vX2pQ7rT4sW8yB1nM5kL3hJ6gF0dS9aZ2xC7vB4nM8qW1eR5tY3uI6oP0aS4dF7",
    "ALLOWED_HOSTS": "portal.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://portal.example.com",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def manage(*args, **env):
    # The suite's own switches (DJANGO_ALLOW_ASYNC_UNSAFE, set for Playwright) are not the site's settings.
    dropped = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean["DJANGO_SETTINGS_MODULE"] = "deploy_portal.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_debug_is_off_by_default():
    result = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", SECRET_KEY="k" * 60)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


@pytest.mark.parametrize(
    "env, words",
    [({}, "SECRET_KEY is not set and DEBUG is off"),
     ({"SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS=* with DEBUG off")],
    ids=["no secret key", "any host"],
)
def test_with_debug_off_an_unsafe_start_stops_with_a_clear_message(env, words):
    result = manage("check", **env)
    assert result.returncode != 0
    assert words in result.stderr


def test_debug_on_still_starts_with_the_development_defaults():
    assert manage("check", DEBUG="true").returncode == 0


def test_the_readme_production_settings_pass_check_deploy():
    readme = (ROOT / "README.md").read_text()
    assert all(f"{name}=" in readme for name in PRODUCTION), "the README shows these settings"
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
