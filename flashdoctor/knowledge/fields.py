"""The plain JSON form of a value: every field under its own name. One implementation of the ``to_json``
that only lists a dataclass's fields (a hand-written copy can miss a field that the schema requires). It
lives in knowledge, the layer every other one (the runtime too) may import; model.fields names it for
the model's values."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, cast


def json_value(value: Any) -> Any:
    """``value`` as JSON holds it: a value with its own ``to_json`` in that form, an enum as its value,
    a tuple or list as a list, a mapping as a dict (each item likewise); a scalar or None as it is."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in value.items()}
    return value


class FieldsJson:
    """Mixin for a dataclass whose JSON form is each field, in declaration order, under its own name, the
    value as :func:`json_value` writes it. A field's name is then public interface: the JSON outputs'
    schemas name it; rename one only as the schema allows (add, never rename).

    ``JSON_AFTER`` adds derived members (properties) to the form: field name -> the property that
    follows it, under the property's own name."""

    JSON_AFTER: ClassVar[Mapping[str, str]] = {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cast(Any, self)):
            out[f.name] = json_value(getattr(self, f.name))
            after = self.JSON_AFTER.get(f.name)
            if after is not None:
                out[after] = json_value(getattr(self, after))
        return out
