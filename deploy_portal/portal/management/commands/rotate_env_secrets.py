"""``manage.py rotate_env_secrets``: seal every saved secret env var again with the first of ``ENV_SECRET_KEYS``.

Rotation: put the new key first in ``ENV_SECRET_KEYS`` (the old one after it), run this, then drop the old key.
It exits 1 when some task holds a secret no configured key opens (its owner must enter it again).
"""

from django.core.management.base import BaseCommand, CommandError

from tasks.services import env_secrets_rotate


class Command(BaseCommand):
    help = "Seal every saved secret environment variable again with the first configured key."

    def handle(self, *args, **options):
        changed, unreadable = env_secrets_rotate()
        self.stdout.write(f"sealed again: the secrets of {changed} task(s)")
        if unreadable:
            raise CommandError(
                f"no configured key opens the secrets of task(s) {', '.join(map(str, unreadable))}: "
                "add the old key to ENV_SECRET_KEYS (or SECRET_KEY_FALLBACKS) and run this again, or have "
                "their owners enter the values again"
            )
