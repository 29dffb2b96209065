"""One registry of every public code flashdoctor reports (README / docs/codes.md: never rename one).

Check findings, wheel rejections, build preflight, smoke and cluster codes live in data/codes.json;
the failure-log codes of `explain` live with their cause and fix in data/signatures.json. This module
serves both, so a renderer, a test or the docs generator asks one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

from flashdoctor.knowledge.data import load_data

Kind = Literal["finding", "rejection", "build", "smoke", "cluster", "explain"]
KINDS: tuple[Kind, ...] = ("finding", "rejection", "build", "smoke", "cluster", "explain")


@dataclass(frozen=True)
class Code:
    name: str
    kind: Kind
    summary: str


@cache
def registry() -> Mapping[Kind, Mapping[str, Code]]:
    data = load_data("codes")["kinds"]
    out: dict[Kind, dict[str, Code]] = {}
    for kind in KINDS:
        if kind == "explain":
            codes = {n: c["title"] for n, c in load_data("signatures")["codes"].items()}
        else:
            codes = data[kind]["codes"]
        out[kind] = {name: Code(name, kind, summary) for name, summary in codes.items()}
    return out


def codes(kind: Kind) -> Mapping[str, str]:
    """name -> one-line summary, in the documented order."""
    return {name: c.summary for name, c in registry()[kind].items()}


def summary(kind: Kind, name: str) -> str:
    """The one-line summary of a code; KeyError names an unknown one (a bug: codes are registered)."""
    return registry()[kind][name].summary


def kind_title(kind: Kind) -> str:
    return (
        "Failure-log diagnoses (explain)"
        if kind == "explain"
        else str(load_data("codes")["kinds"][kind]["title"])
    )
