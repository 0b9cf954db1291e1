"""The Celery app: workers drive the runtimes, beat runs the safety-net passes."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_portal.settings")

app = Celery("deploy_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add("observability.heartbeats:HeartbeatStep")
