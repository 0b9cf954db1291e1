"""DRF's ``to_representation``, with the per-field work planned once per serializer instead of once per object.

A list of 50 tasks asks every one of ~30 fields, for every task, the same questions DRF asks each time
(``_readable_fields`` as a generator, ``Field.get_attribute``'s layers, its exception handling). The plan
keeps the declared fields as they are — ONE field list, nothing hand-written beside it — and only takes the
short way for a plain attribute: a field that does not override ``get_attribute``, read from a model instance
(or, with a one-part source, from a dict that has the key), whose value is not callable. Everything else
(relations with their pk-only shortcut, method fields, ``source="*"``, dotted sources into dicts, defaults, a
missing attribute or key) goes through DRF's own ``get_attribute``, so the output is DRF's, byte for byte
(``tests/api/test_representation.py`` compares both on every serializer).
"""

from collections.abc import Mapping
from operator import attrgetter

from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject


def _plan(serializer):
    plan = []
    for field in serializer._readable_fields:
        plain = type(field).get_attribute is Field.get_attribute and field.source_attrs
        fast = attrgetter(".".join(field.source_attrs)) if plain else None
        key = field.source_attrs[0] if plain and len(field.source_attrs) == 1 else None
        plan.append((field.field_name, field, fast, key))
    return plan


class PlannedRepresentation:
    """Mix into a ``Serializer`` before it: the same representation, planned once per serializer instance."""

    def to_representation(self, instance):
        plan = self.__dict__.get("_representation_plan")
        if plan is None:
            plan = self.__dict__["_representation_plan"] = _plan(self)
        by_attribute = not isinstance(instance, Mapping)
        ret = {}
        for name, field, fast, key in plan:
            try:
                if fast is not None and by_attribute:
                    try:
                        attribute = fast(instance)
                    except Exception:  # noqa: BLE001 - DRF's own path decides what a failure means
                        attribute = field.get_attribute(instance)
                    else:
                        if callable(attribute):
                            attribute = field.get_attribute(instance)
                elif key is not None and not by_attribute and key in instance:
                    attribute = instance[key]
                    if callable(attribute):
                        attribute = field.get_attribute(instance)
                else:
                    attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[name] = None if check is None else field.to_representation(attribute)
        return ret
