"""The API's JSON parser: DRF's, with a body nested too deeply to parse answered 400 like any other bad JSON.

Python's ``json`` decodes arrays and objects recursively; ``"[" * 2000`` (4 KB) exhausts the stack and
raises ``RecursionError``, which DRF does not expect from a parser. Refused here, where the body is read
(before authentication, so ``auth/token/`` is covered too), rather than in the exception handler, which
would also catch a RecursionError that is a bug of ours.
"""

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - the body is nested too deeply.")) from None


PARSERS = (JSONParser, parsers.FormParser, parsers.MultiPartParser)
