"""Django's ``makemessages``, knowing the project's markers for stored sentences (deploy_portal.messages)."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_", "--keyword=NP_:1,2"]
