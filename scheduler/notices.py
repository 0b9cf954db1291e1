"""The mail a task's owner gets when the scheduler kills the task: by a force start, or by reclaim.

Sent after commit, as a courtesy: a broken mail server never undoes the decision.
"""

import logging

from django.core.mail import send_mass_mail
from django.db import transaction
from django.utils.translation import gettext as _

from deploy_portal.messages import render

logger = logging.getLogger(__name__)


def send_after_commit(messages, what):
    """``messages`` for ``send_mass_mail``, sent once the transaction commits; ``what`` names them in the log."""

    def send():
        try:
            send_mass_mail(messages)
        except Exception:  # mail is a courtesy: a broken mail server must not undo the decision
            logger.exception("Could not mail the owners of %s", what)

    if messages:
        transaction.on_commit(send)


def mail_killed(victim, why):
    """Tell ``victim``'s owner (loaded with it) that it was killed, and ``why`` (a Sentence)."""
    if not victim.owner.email:
        return
    subject = _("Your task “%(task)s” was killed") % {"task": victim.name}
    body = _("%(why)s\nStart it again when you are ready; it will queue until GPUs are free.") % {"why": render(why)}
    send_after_commit([(subject, body, None, [victim.owner.email])], f"task {victim.pk}")
