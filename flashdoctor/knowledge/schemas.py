"""The JSON Schemas flashdoctor ships (flashdoctor/schemas/*.json): its outputs' documents and its
knowledge files. Loaded here, in one place, for validation at run time and in tests."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("flashdoctor").joinpath("schemas", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_validator(name: str) -> Any:
    """A jsonschema validator for one of the shipped schemas, able to resolve the others by file name."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    names = [
        p.name
        for p in resources.files("flashdoctor").joinpath("schemas").iterdir()
        if p.name.endswith(".json")
    ]
    registry: Registry = Registry()
    for n in names:
        schema = load_schema(n)
        res = Resource.from_contents(schema)
        registry = registry.with_resource(n, res).with_resource(schema.get("$id", n), res)
    return Draft202012Validator(load_schema(name), registry=registry)
