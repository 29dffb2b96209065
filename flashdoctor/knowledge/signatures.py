"""The failure-signature knowledge (flashdoctor/data/signatures.json), loaded and compiled once.

The JSON file is the one reviewed place for what flashdoctor knows about failure logs; its schema is
flashdoctor/schemas/signatures.schema.json. This module only turns it into typed, compiled values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from flashdoctor.knowledge import load_data

Role = Literal["cause", "symptom", "fallback"]


@dataclass(frozen=True)
class FixAlternative:
    text: str
    when: tuple[str, ...] = ()  # log contexts that must hold
    env: str | None = None  # a named machine predicate that must hold (see tailor.ENV_PREDICATES)


@dataclass(frozen=True)
class CodeInfo:
    code: str
    title: str
    cause: str
    fix: str
    yields_to: tuple[str, ...]
    resembles_when: tuple[str, ...] = ()  # contexts of which one must hold to offer it by resemblance


@dataclass(frozen=True)
class Context:
    name: str
    keywords: tuple[bytes, ...]
    pattern: re.Pattern[str] | None
    env: Mapping[str, Any]


@dataclass(frozen=True)
class Fact:
    """A fact about the log's machine (torch version, Python, nvcc, ...). ``patterns`` are in order of
    trust: the first pattern that matches anywhere in the log wins over later ones. A pattern captures
    the value as ``v``, or as ``major`` and ``minor`` (joined with a dot: cpython-310 -> 3.10)."""

    name: str
    keywords: tuple[bytes, ...]
    patterns: tuple[re.Pattern[str], ...]

    def value(self, m: re.Match[str]) -> str | None:
        groups = m.groupdict()
        if groups.get("v"):
            return groups["v"]
        if groups.get("major") and groups.get("minor"):
            return f"{groups['major']}.{groups['minor']}"
        return None


@dataclass(frozen=True)
class Signature:
    id: str
    code: str
    confidence: float
    role: Role
    keywords: tuple[bytes, ...]
    patterns: tuple[re.Pattern[str], ...]
    contexts: tuple[str, ...]
    contexts_unless: tuple[str, ...]
    env_if: Mapping[str, Any]
    env_unless: Mapping[str, Any]
    condition: str | None
    message: str
    fix: tuple[FixAlternative, ...]
    source: str
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...]

    def search(self, line: str) -> re.Match[str] | None:
        for p in self.patterns:
            m = p.search(line)
            if m is not None:
                return m
        return None


@dataclass(frozen=True)
class Knowledge:
    codes: Mapping[str, CodeInfo]
    contexts: Mapping[str, Context]
    facts: Mapping[str, Fact]
    signatures: tuple[Signature, ...]


def _kw(words: list[str]) -> tuple[bytes, ...]:
    return tuple(w.encode("utf-8") for w in words)


@lru_cache(maxsize=1)
def knowledge() -> Knowledge:
    raw = load_data("signatures")
    codes = {
        code: CodeInfo(
            code, c["title"], c["cause"], c["fix"], tuple(c["yields_to"]), tuple(c.get("resembles_when", ()))
        )
        for code, c in raw["codes"].items()
    }
    contexts = {
        name: Context(
            name=name,
            keywords=_kw(c["keywords"]),
            pattern=re.compile(c["pattern"], re.IGNORECASE) if c.get("pattern") else None,
            env=dict(c.get("env", {})),
        )
        for name, c in raw["contexts"].items()
    }
    facts = {
        name: Fact(
            name=name,
            keywords=_kw(f["keywords"]),
            patterns=tuple(re.compile(p, re.IGNORECASE) for p in f["patterns"]),
        )
        for name, f in raw["facts"].items()
    }
    sigs = []
    for s in raw["signatures"]:
        flags = 0 if s.get("case_sensitive") else re.IGNORECASE
        sigs.append(
            Signature(
                id=s["id"],
                code=s["code"],
                confidence=float(s["confidence"]),
                role=s.get("role", "cause"),
                keywords=_kw(s["keywords"]),
                patterns=tuple(re.compile(p, flags) for p in s["patterns"]),
                contexts=tuple(s.get("contexts", ())),
                contexts_unless=tuple(s.get("contexts_unless", ())),
                env_if=dict(s.get("env_if", {})),
                env_unless=dict(s.get("env_unless", {})),
                condition=s.get("condition"),
                message=s["message"],
                fix=tuple(
                    FixAlternative(text=f["text"], when=tuple(f.get("when", ())), env=f.get("env"))
                    for f in s["fix"]
                ),
                source=s["source"],
                examples=tuple(s["examples"]),
                counter_examples=tuple(s.get("counter_examples", ())),
            )
        )
    return Knowledge(codes=codes, contexts=contexts, facts=facts, signatures=tuple(sigs))


def codes() -> Mapping[str, CodeInfo]:
    """The public diagnosis codes (README "Failure codes"), in the order of the data file."""
    return knowledge().codes


@dataclass(frozen=True)
class ResemblanceCorpus:
    """Words of real failure logs whose cause was confirmed, per code (data/resemblance.json: built by
    scripts/build_resemblance.py from the tuning splits of explain's evaluation set, never a holdout).
    ``weight`` scales them against the signatures' own words in the resemblance model."""

    weight: float
    codes: Mapping[str, Mapping[str, float]]


@lru_cache(maxsize=1)
def resemblance_corpus() -> ResemblanceCorpus:
    raw = load_data("resemblance")
    return ResemblanceCorpus(weight=float(raw["weight"]), codes=raw["codes"])
