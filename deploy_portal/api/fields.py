"""Fields the API's serializers share."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from deploy_portal.messages import render


class SentenceField(serializers.CharField):
    """A stored message (``deploy_portal.messages.Sentence``), said in the language of the request."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("help_text", _("In the language of the request."))
        super().__init__(**kwargs)

    def to_representation(self, value):
        return render(value)


class TextField(serializers.CharField):
    """A string, and only a string: DRF's CharField turns ``123`` into ``"123"``; here a number is refused."""

    default_error_messages = {"invalid": _("Not a valid string.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
