"""One registry of public codes: the data file is valid, and every code the code emits is registered."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import flashdoctor
from flashdoctor.knowledge import codes
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.schemas import schema_validator

PKG = Path(flashdoctor.__file__).parent


def test_codes_file_matches_its_schema() -> None:
    errors = list(schema_validator("codes.schema.json").iter_errors(load_data("codes")))
    assert not errors, errors[0].message


def test_every_kind_is_served_and_names_are_unique_within_a_kind() -> None:
    for kind in codes.KINDS:
        names = codes.codes(kind)
        assert names, kind
        assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)
    assert codes.summary("finding", "no-gpu").startswith("No NVIDIA GPU")


def test_cluster_codes_used_by_the_report_are_registered() -> None:
    trees = [ast.parse(p.read_text()) for p in sorted((PKG / "decide" / "cluster").glob("*.py"))]
    used = {
        n.value
        for tree in trees
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and re.fullmatch(r"cluster-[a-z-]+", n.value)
    }
    assert used and used <= set(codes.codes("cluster")), used - set(codes.codes("cluster"))
