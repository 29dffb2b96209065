"""The plain JSON form of a value: every field under its own name. One implementation of the ``to_json``
that only lists a dataclass's fields (a hand-written copy can miss a field that the schema requires)."""

from __future__ import annotations

import dataclasses
from typing import Any, cast


class FieldsJson:
    """Mixin for a dataclass whose JSON form is each field, in declaration order, under its own name, the
    value as it is (scalars, None, lists and tuples of them). A field's name is then public interface:
    the JSON outputs' schemas name it; rename one only as the schema allows (add, never rename)."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(cast(Any, self))}
