"""The gateway's ASGI application: ``uvicorn deploy_portal.gateway.asgi:app`` (``manage.py run_gateway`` runs it)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_portal.settings")
django.setup()

from .app import make_app  # noqa: E402 - Django is set up first

app = make_app()
