"""FlashAttention version ranges that libraries accept only at run time (flashdoctor/data/run_time_limits.json):
Transformer Engine from 1.12 checks the installed flash-attn when it loads and turns its FlashAttention
path off outside its range, while its metadata declares nothing. The environment probe reports the
installed releases of these libraries, and each matching range becomes a ``dependents`` entry."""

from __future__ import annotations

from collections.abc import Iterable
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
    unless_file: str | None = None  # a path prefix in the library's RECORD that means it does not apply


@cache
def run_time_limits() -> tuple[RunTimeLimit, ...]:
    return tuple(
        RunTimeLimit(x["dist"], SpecifierSet(x["versions"]), x["requires"], x["source"], x.get("unless_file"))
        for x in load_data("run_time_limits")["limits"]
    )


def watched() -> dict[str, list[str]]:
    """The libraries whose installed release the environment probe reports, each with the path prefixes
    whose presence in its RECORD it reports too (``unless_file``)."""
    out: dict[str, list[str]] = {}
    for x in run_time_limits():
        files = out.setdefault(x.dist, [])
        if x.unless_file and x.unless_file not in files:
            files.append(x.unless_file)
    return out


def limits_for(dist: str, version: str | None, present: Iterable[str] = ()) -> tuple[RunTimeLimit, ...]:
    """The ranges that apply to this installed release (a local label such as NGC's '+7f2afaa' is ignored),
    less those whose ``unless_file`` is among ``present`` (xformers with its own bundled FlashAttention)."""
    v = parse_version(version)
    if v is None:
        return ()
    have = set(present)
    return tuple(
        x
        for x in run_time_limits()
        if x.dist == dist
        and x.versions.contains(v.public, prereleases=True)
        and (x.unless_file is None or x.unless_file not in have)
    )
