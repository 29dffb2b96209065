"""The JSON Schemas flashdoctor ships (flashdoctor/schemas/*.json): its outputs' documents and its
knowledge files. Loaded here, in one place, for validation at run time and in tests."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("flashdoctor").joinpath("schemas", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_validator(name: str, pointer: str = "") -> Any:
    """A jsonschema validator for one of the shipped schemas (or the part of it at the JSON pointer
    ``pointer``, e.g. "/$defs/input"), able to resolve the others by file name."""
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
    root = load_schema(name)
    schema = {"$schema": root["$schema"], "$ref": f"{name}#{pointer}"} if pointer else root
    return Draft202012Validator(schema, registry=registry)


@cache
def _cached_validator(name: str, pointer: str) -> Any:
    return schema_validator(name, pointer)


# -- untrusted documents checked against a schema: the first error, worded for users ------------------
def first_error(name: str, doc: Any, pointer: str = "") -> Any | None:
    """The most relevant validation error of `doc` (jsonschema's best match), or None where it is valid.
    An error that holds only because of another field's value (an if/then rule) comes after the errors
    of the fields themselves: a bad "variant" is named before the wheel its action would need.
    Raises RecursionError for a document nested too deeply to check."""
    from jsonschema.exceptions import best_match, relevance

    def key(error: Any) -> tuple[bool, Any]:
        return "then" not in error.relative_schema_path, relevance(error)

    return best_match(_cached_validator(name, pointer).iter_errors(doc), key=key)


def error_key(error: Any) -> str:
    """Where the error is, as a user writes it: ["gpus", 0, "capability"] -> "gpus[0].capability"."""
    text = ""
    for p in error.absolute_path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text


def error_expect(error: Any, word: str = "x-expect") -> str | None:
    """The schema's wording (`x-expect`, or another such keyword) of the node that failed, or of the
    nearest enclosing one (a branch of ``oneOf`` reports through its parent)."""
    e = error
    while e is not None:
        if isinstance(e.schema, dict) and word in e.schema:
            return str(e.schema[word])
        e = e.parent
    return None


def missing_property(error: Any) -> str | None:
    """For a ``required`` error, the first property missing (else None)."""
    if error.validator != "required" or not isinstance(error.instance, dict):
        return None
    return next((str(n) for n in error.validator_value if n not in error.instance), None)
