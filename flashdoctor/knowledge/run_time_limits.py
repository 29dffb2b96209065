"""FlashAttention version ranges that libraries accept only at run time (flashdoctor/data/run_time_limits.json):
Transformer Engine from 1.12 checks the installed flash-attn when it loads and turns its FlashAttention
path off outside its range, while its metadata declares nothing. The environment probe reports the
installed releases of these libraries, and each matching range becomes a ``dependents`` entry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from packaging.specifiers import SpecifierSet

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import parse_version


@dataclass(frozen=True)
class RunTimeLimit:
    dist: str
    versions: SpecifierSet
    requires: str
    source: str


@cache
def run_time_limits() -> tuple[RunTimeLimit, ...]:
    return tuple(
        RunTimeLimit(x["dist"], SpecifierSet(x["versions"]), x["requires"], x["source"])
        for x in load_data("run_time_limits")["limits"]
    )


def watched() -> tuple[str, ...]:
    """The libraries whose installed release the environment probe reports."""
    return tuple(dict.fromkeys(x.dist for x in run_time_limits()))


def limits_for(dist: str, version: str | None) -> tuple[RunTimeLimit, ...]:
    """The ranges that apply to this installed release (a local label such as NGC's '+7f2afaa' is ignored)."""
    v = parse_version(version)
    if v is None:
        return ()
    return tuple(
        x for x in run_time_limits() if x.dist == dist and x.versions.contains(v.public, prereleases=True)
    )
