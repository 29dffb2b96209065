"""The plain JSON form of the model's values: flashdoctor.knowledge.fields (one implementation, in the
lowest layer so that the runtime and the knowledge registries use it too)."""

from __future__ import annotations

from flashdoctor.knowledge.fields import FieldsJson, json_value

__all__ = ["FieldsJson", "json_value"]
