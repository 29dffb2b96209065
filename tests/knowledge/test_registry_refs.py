"""No second list of variants: the schemas refer to variants.schema.json, and the data files that name a
variant (attention_backends.json, cluster_drift.json, smoke.json) are checked against the registry here
instead of by an enum of their own (docs/variants.md "Adding a variant")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any, get_args

from flashdoctor.decide.cluster import drift_fields
from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.backends import NAMES, SMOKE_BACKENDS, backend, smoke_facts, variant_imports
from flashdoctor.knowledge.profiles import BuildVariant
from flashdoctor.knowledge.schemas import load_schema
from flashdoctor.knowledge.variants import VARIANT_DIST, VARIANTS, variant_info

REF = "variants.schema.json#/$defs/name"


def _schemas() -> list[str]:
    return sorted(
        p.name
        for p in resources.files("flashdoctor").joinpath("schemas").iterdir()
        if p.name.endswith(".json")
    )


def _enums(node: Any, path: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "enum" and isinstance(v, list):
                yield path, v
            else:
                yield from _enums(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _enums(v, f"{path}/{i}")


def test_only_the_registry_schema_enumerates_the_variants() -> None:
    """A variant name in an enum anywhere else is a second list that a new variant would have to find."""
    for name in _schemas():
        for path, values in _enums(load_schema(name)):
            named = set(values) & set(VARIANTS)
            if not named or name == "variants.schema.json":
                continue
            # The build report's variants are the build systems written in code (knowledge.profiles).
            assert name == "build-report.schema.json" and set(values) == set(get_args(BuildVariant)), (
                name,
                path,
                values,
            )


def test_the_output_schemas_refer_to_the_registry() -> None:
    for name in (
        "bench-report.schema.json",
        "check-report.schema.json",
        "cluster-report.schema.json",
        "coverage.schema.json",
        "install-result.schema.json",
        "lock.schema.json",
        "plan.schema.json",
        "smoke-report.schema.json",
        "wheels.schema.json",
    ):
        assert REF in json.dumps(load_schema(name)), name


def test_runtime_backends_name_registry_variants() -> None:
    data = load_data("attention_backends")
    runtime = data["backends"]
    for name, raw in runtime.items():
        if raw["kind"] == "flash-attn":
            assert raw["variant"] in VARIANTS, name
            assert name in variant_info(raw["variant"]).backends, name
        else:
            assert "variant" not in raw, name
    for v in VARIANTS:
        assert set(variant_info(v).backends) <= set(runtime), v
    for rule in data["order"]:
        assert set(rule["order"]) <= set(runtime), rule["order"]


def test_every_variant_is_a_backend_name_the_smoke_runs() -> None:
    assert NAMES[: len(VARIANTS)] == VARIANTS
    assert SMOKE_BACKENDS[-len(VARIANTS) :] == VARIANTS
    assert not set(load_data("attention_backends")["vocabulary"]["names"]) & set(VARIANTS)
    assert set(variant_imports()) == set(VARIANTS)
    for v in VARIANTS:
        info = variant_info(v)
        word = backend(v)
        assert (word.kind, word.variant, word.short) == ("variant", v, info.short)
        assert word.title == f"{info.short} {info.modules[0]}"
        facts = smoke_facts(v)
        assert facts["aot"] == bool(info.extensions), v  # compiled ahead of time = has extension modules
        assert facts["head_dims"]["max"] == info.max_head_dim, v


def test_the_smoke_knowledge_names_no_variant() -> None:
    smoke = load_data("smoke")
    assert not set(smoke["backends"]) & set(VARIANTS)
    assert "head_dims" not in smoke


def test_the_cluster_compares_every_variant_build() -> None:
    fields = load_data("cluster_drift")["fields"]
    assert sum(1 for f in fields if f.get("variants")) == 1
    assert not {f.get("field") for f in fields} & set(VARIANT_DIST.values())
    names = [f.field for f in drift_fields()]
    assert [n for n in names if n in VARIANT_DIST.values()] == [VARIANT_DIST[v] for v in VARIANTS]
