"""The Chinese catalogue is complete, and the compiled one the site loads says the same as the source."""

import ast
import gettext
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parents[1] / "locale" / "zh_Hans" / "LC_MESSAGES"


def entries():
    """(flags, msgid, msgid_plural, [msgstr…]) for each live entry of django.po (obsolete ones skipped)."""
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if not line.startswith("#~")]
        flags = " ".join(line for line in lines if line.startswith("#,"))
        fields, current = {}, None
        for line in lines:
            if line.startswith("#") or not line.strip():
                continue
            if not line.startswith('"'):
                current, _, line = line.partition(" ")
                fields[current] = ""
            fields[current] += ast.literal_eval(line)
        if "msgid" in fields and fields["msgid"]:
            strings = [value for key, value in sorted(fields.items()) if key.startswith("msgstr")]
            yield flags, fields["msgid"], fields.get("msgid_plural"), strings


def test_every_message_is_translated_and_none_is_fuzzy():
    found = list(entries())
    assert len(found) > 300
    assert [msgid for flags, msgid, _plural, strings in found if "fuzzy" in flags] == []
    assert [msgid for _flags, msgid, _plural, strings in found if not all(strings)] == []


def test_the_compiled_catalogue_matches_the_source():
    with (LOCALE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    for _flags, msgid, plural, strings in entries():
        if plural is None:
            assert catalogue.gettext(msgid) == strings[0], msgid
        else:
            assert catalogue.ngettext(msgid, plural, 1) == strings[0], msgid
