"""JSON form of a check report. The document is versioned: ``schema`` changes when a field's meaning
changes; fields are only ever added. Its JSON Schema ships as flashdoctor/schemas/check-report.schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from flashdoctor import __version__
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.findings import CheckReport

CHECK_SCHEMA_ID = "flashdoctor/check/1"


def report_to_json(
    report: CheckReport, strict: bool = False, require: Iterable[Variant] = ()
) -> dict[str, Any]:
    env = report.environment
    return {
        "schema": CHECK_SCHEMA_ID,
        "flashdoctor": __version__,
        "source": report.source,
        "environment": env.to_target(),
        "unknown": sorted(env.unknown),
        "notes": list(env.notes),
        "findings": [f.to_json() for f in report.findings],
        "verdicts": {v: vv.to_json() for v, vv in report.verdicts.items()},
        "summary": report.summary(),
        "exit_code": report.exit_code(strict=strict, require=require),
        **report.extra,
    }


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
