"""The variant registry (data/variants.json): one entry per variant declares everything the rest of
flashdoctor reads about it; the file matches its schema and agrees with the tables derived from it."""

from __future__ import annotations

from typing import get_args

import pytest
from packaging.utils import canonicalize_name

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.knowledge.variants import (
    DEFAULT_VARIANT,
    DIST_VARIANT,
    VARIANT_DIST,
    VARIANTS,
    Variant,
    script_tables,
    variant_for_flag,
    variant_info,
)


def test_registry_matches_its_schema() -> None:
    errors = list(schema_validator("variants.schema.json").iter_errors(load_data("variants")))
    assert not errors, errors[0].message


def test_the_type_names_exactly_the_registry() -> None:
    assert set(VARIANTS) == set(get_args(Variant))
    assert tuple(load_data("variants")["variants"]) == VARIANTS  # registry order
    assert DEFAULT_VARIANT in VARIANTS


def test_distribution_tables_derive_from_the_registry() -> None:
    assert VARIANT_DIST == {"fa2": "flash-attn", "fa3": "flash-attn-3", "fa4": "flash-attn-4"}
    for v in VARIANTS:
        for spelling in variant_info(v).dists:
            assert DIST_VARIANT[canonicalize_name(spelling)] == v
    assert DIST_VARIANT[canonicalize_name("flash_attn_3")] == "fa3"


def test_fa3_modules_include_the_packaged_interface() -> None:
    """Only the smoke runner knew FA3's flash_attn_3.flash_attn_interface (issue 14): now the registry says it."""
    fa3 = variant_info("fa3")
    assert fa3.modules == ("flash_attn_interface", "flash_attn_3.flash_attn_interface", "flash_attn_3")
    assert fa3.import_name == "flash_attn_interface"
    assert variant_info("fa4").requires_dist  # flash_attn.cute also ships inside flash-attn 2.8.3
    assert not variant_info("fa2").requires_dist


def test_cli_flags_and_titles() -> None:
    flags = [variant_info(v).cli_flag for v in VARIANTS]
    assert flags == ["--fa2", "--fa3", "--fa4"]
    assert len(set(flags)) == len(flags)
    assert variant_for_flag("--fa3") == "fa3" and variant_for_flag("--fa9") is None
    for v in VARIANTS:
        info = variant_info(v)
        assert info.cli_help and info.title and info.short == v.upper()


def test_build_pointers_name_a_section_of_build_json() -> None:
    build = load_data("build")
    for v in VARIANTS:
        info = variant_info(v)
        if info.build is None:
            assert not info.needs_nvcc  # no build: nothing to compile (FA4 is pure Python)
            continue
        section = info.build["rules"].split("#/", 1)[1]
        assert section in build, (v, section)
        assert info.needs_nvcc


def test_pre_release_policy() -> None:
    assert variant_info("fa4").pre_release_only
    assert not variant_info("fa2").pre_release_only


def test_backends_exist_in_the_runtime_table_and_use_registry_modules() -> None:
    """The runtime backend of each variant is in data/attention_backends.json, marked with the variant, and
    imports only modules the registry lists (in the registry's order)."""
    backends = load_data("attention_backends")["backends"]
    for v in VARIANTS:
        info = variant_info(v)
        for name in info.backends:
            assert backends[name]["variant"] == v
            mods = backends[name].get("modules", list(info.modules))
            assert [m for m in info.modules if m in mods] == mods, (v, mods)
    marked = {name for name, b in backends.items() if b.get("variant")}
    assert marked == {b for v in VARIANTS for b in variant_info(v).backends}


def test_script_tables_are_plain_json_for_target_scripts() -> None:
    import json

    tables = script_tables()
    assert json.loads(json.dumps(tables)) == tables
    assert tables["fa3"]["dists"] == ["flash-attn-3", "flash_attn_3"]
    assert tables["fa4"]["requires_dist"] is True
    assert tables["fa2"]["extensions"] == ["flash_attn_2_cuda"]


@pytest.mark.parametrize(
    ("variant", "cc", "dtypes"),
    [
        ("fa3", (9, 0), ("fp16", "bf16", "fp8-forward")),
        ("fa3", (8, 0), ("fp16", "bf16")),  # experimental there, and no fp8
        ("fa3", (10, 0), ()),
        ("fa2", (7, 5), ()),
        ("fa2", (12, 0), ("fp16", "bf16")),
        ("fa4", (10, 0), ("fp16", "bf16")),
    ],
)
def test_dtypes_on(variant: Variant, cc: tuple[int, int], dtypes: tuple[str, ...]) -> None:
    assert variant_info(variant).dtypes_on(cc) == dtypes


def test_gpu_advice_first_rule_that_applies() -> None:
    fa3 = variant_info("fa3")
    assert fa3.gpu_advice((12, 0)).why == "FA3 has no Blackwell kernels"
    assert fa3.gpu_advice((8, 6)).fix == "Use FA2 or PyTorch SDPA."
    assert fa3.gpu_advice((7, 5)).fix == "Use PyTorch SDPA."
    assert variant_info("fa2").gpu_advice(None).why.startswith("FA2 needs an Ampere")


def test_the_schemas_name_the_registry_variants_in_one_place() -> None:
    """variants.schema.json holds the one enum of variant names and of distribution spellings; the target
    spec and the check report refer to it (adding a variant edits that enum, not every schema)."""
    from flashdoctor.knowledge.schemas import load_schema

    defs = load_schema("variants.schema.json")["$defs"]
    assert defs["name"]["enum"] == list(VARIANTS)
    assert set(defs["dist"]["enum"]) == {d for v in VARIANTS for d in variant_info(v).dists}
    check = schema_validator("check-report.schema.json")
    assert not check.is_valid({"findings": [], "verdicts": {"fa9": {}}})
