"""The gateway's ASGI application: ``uvicorn deploy_portal.gateway.asgi:app`` (``manage.py run_gateway`` runs it)."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_portal.settings")
django.setup()

from .app import make_app  # noqa: E402 - Django is set up first

app = make_app()
# What setup imported lives as long as the process: out of the collector's sight, full collections stay short.
gc.freeze()
