"""``manage.py run_gateway [--host 127.0.0.1] [--port 8001]``: serve the endpoint gateway with uvicorn.

One process with uvloop and httptools; it keeps no state that matters across processes (keys and routes are
read from the database, counts are added to it), so more of them behind a load balancer scale it.
"""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the endpoint gateway (one stable, authenticated URL per task)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)

    def handle(self, *args, host, port, **options):
        uvicorn.run(
            "deploy_portal.gateway.asgi:app", host=host, port=port, loop="uvloop", http="httptools",
            lifespan="on", access_log=False, proxy_headers=True, timeout_graceful_shutdown=10,
        )
