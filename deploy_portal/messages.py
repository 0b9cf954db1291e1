"""Sentences written now and read later, each time in the reader's language.

A task's timeline, its status message and its instances' messages are written by whoever acts:
a web request in its user's language, a Celery worker in the site's default one. Storing the
words would show a Chinese reader English and an English reader Chinese. So the rows keep what
was said — the message id and its parameters — and the words are chosen when the row is read::

    Sentence(N_("Killed to make room for “%(task)s”, force-started by %(manager)s."), task=name, manager=who)

``N_`` only marks the id for ``makemessages`` (as ``gettext_noop`` does); a plural is marked
with ``NP_(singular, plural)`` and names the parameter that counts: ``number="count"``. The
project's ``makemessages`` knows both markers. Parameters are plain values (names, numbers,
text from outside such as a Kubernetes event) or sentences themselves.

``render()`` says a sentence in the active language. Readers call it explicitly: the API's
``SentenceField`` serializer field, the portal's ``said`` template filter and the admin. ``str()``
is the same words, for logs. ``SentenceField`` stores a sentence (or plain text) as JSON.
"""

import json

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext

__all__ = ["CLAUSES", "N_", "NP_", "Sentence", "SentenceField", "joined", "render"]


def N_(msgid):
    """Marks a message id for ``makemessages``; translates nothing."""
    return msgid


def NP_(singular, plural):
    """Marks a plural pair of message ids for ``makemessages``; translates nothing."""
    return (singular, plural)


# The separator of clauses said in one breath ("needs 4 SKUs; 3 tasks ahead"): a message id, so that each
# language uses its own ("；" in Chinese). A separator that is only spaces is said as written.
CLAUSES = N_("; ")


class Sentence:
    """A message id and its parameters, rendered in the reader's language by ``render()``."""

    def __init__(self, msgid, /, *, number=None, **params):
        if isinstance(msgid, Promise):
            raise TypeError("Sentence takes the untranslated message id (mark it with N_), not a translation")
        if isinstance(msgid, (tuple, list)) != (number is not None):
            raise TypeError("a plural (NP_) names its counting parameter with number=, and only a plural does")
        self.msgid = tuple(msgid) if isinstance(msgid, (tuple, list)) else msgid
        self.number = number
        self.params = params

    def render(self):
        """The sentence in the active language."""
        if self.number is not None:
            text = ngettext(*self.msgid, self.params[self.number])
        else:
            text = gettext(self.msgid)
        return text % {name: render(value) for name, value in self.params.items()} if self.params else text

    def __str__(self):
        return self.render()

    def __repr__(self):
        return f"Sentence({self.msgid!r}, **{self.params!r})"

    def __eq__(self, other):
        if isinstance(other, Sentence):
            return self.to_data() == other.to_data()
        return NotImplemented

    def __hash__(self):
        return hash(json.dumps(self.to_data(), sort_keys=True, default=str))

    def to_data(self):
        data = {"msgid": self.msgid, "params": {name: _data(value) for name, value in self.params.items()}}
        if self.number is not None:
            data["msgid"], data["number"] = list(self.msgid), self.number
        return data

    @staticmethod
    def from_data(data):
        """The inverse of ``to_data``: text becomes a ``Literal`` (empty text stays ``""``), numbers stay numbers."""
        if isinstance(data, str):
            return Literal(data) if data else data
        if not isinstance(data, dict):
            return data
        if "join" in data:
            return Joined([Sentence.from_data(part) for part in data["join"]], data.get("sep", " "))
        params = {name: Sentence.from_data(value) for name, value in data.get("params", {}).items()}
        return Sentence(data["msgid"], number=data.get("number"), **params)


class Joined(Sentence):
    """Sentences said one after the other, ``sep`` between them (empty ones left out); ``sep`` is a message
    id (``CLAUSES``) said in the reader's language, unless it is only spaces."""

    def __init__(self, parts, sep=" "):
        self.parts, self.sep = list(parts), sep
        self.msgid, self.number, self.params = "", None, {}

    def render(self):
        sep = gettext(self.sep) if self.sep.strip() else self.sep
        return sep.join(text for text in map(render, self.parts) if text)

    def __repr__(self):
        return f"Joined({self.parts!r}, {self.sep!r})"

    def to_data(self):
        return {"join": [_data(part) for part in self.parts], "sep": self.sep}


class Literal(Sentence):
    """Text said as it was written (stored before sentences, or from outside): no translation."""

    def __init__(self, text):
        self.text = text
        self.msgid, self.number, self.params = "", None, {}

    def render(self):
        return self.text

    def __repr__(self):
        return f"Literal({self.text!r})"

    def to_data(self):
        return self.text


def joined(*parts, sep=" "):
    return Joined(parts, sep)


def render(value):
    """A stored message (a ``Sentence``, plain text, ``""``) or a lazy translation in the active language."""
    if isinstance(value, (Sentence, Promise)):
        return str(value)
    return value


def _data(value):
    if isinstance(value, Sentence):
        return value.to_data()
    if isinstance(value, Promise):  # a translation would be frozen in one language: refuse it loudly
        raise TypeError(f"a translated string cannot be stored in a Sentence; pass Sentence(N_(...)): {value!r}")
    return value


def _storable(data):
    """``data`` with NUL (which no PostgreSQL text or JSON value can hold) said as U+FFFD: text from outside (a
    log's last lines in a failure message) may carry any byte."""
    if isinstance(data, str):
        return data.replace("\x00", "\ufffd")
    if isinstance(data, dict):
        return {key: _storable(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_storable(value) for value in data]
    return data


class SentenceField(models.JSONField):
    """A ``Sentence`` (or plain text) stored as JSON, read back as a ``Sentence`` (or ``""``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", str)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return Sentence.from_data(super().from_db_value(value, expression, connection))

    def get_prep_value(self, value):
        if isinstance(value, Sentence):
            value = value.to_data()
        elif isinstance(value, Promise):
            value = str(value)
        return super().get_prep_value(_storable(value))

    def to_python(self, value):
        return Sentence.from_data(value)
