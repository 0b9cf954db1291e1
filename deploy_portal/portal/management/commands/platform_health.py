"""``manage.py platform_health [--require ROLE …]``: the platform's health as one JSON line, for a container's
health check or a shell; exits 1 when a required role (deploy_worker, evaluations_worker, beat) has no
process seen within HEALTH_STALE_SECONDS, or the database does not answer."""

import json

from django.core.management.base import BaseCommand

from observability.health import BEAT, DEPLOY_WORKER, EVALUATIONS_WORKER, database_answers, platform_health


class Command(BaseCommand):
    help = "Print the platform's health as JSON; exit 1 when a required role is down."

    def add_arguments(self, parser):
        parser.add_argument("--require", action="append", default=[], choices=(DEPLOY_WORKER, EVALUATIONS_WORKER, BEAT))

    def handle(self, *args, require, **options):
        error = database_answers()
        if error is not None:
            self.stdout.write(json.dumps({"database": {"ok": False, "error": error}}))
            raise SystemExit(1)
        health = platform_health()
        self.stdout.write(json.dumps({
            component.role: {
                "ok": component.up,
                "last_seen": component.last_seen.isoformat() if component.last_seen else None,
                "processes": [process.name for process in component.processes],
            }
            for component in health.components
        }))
        if any(not health[role].up for role in require):
            raise SystemExit(1)
