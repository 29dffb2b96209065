"""Matching engine for failure signatures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flashdoctor.environment import Environment
from flashdoctor.knowledge import load_data


@dataclass(frozen=True)
class Diagnosis:
    code: str
    confidence: float
    evidence: str
    message: str
    fix: str
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "message": self.message,
            "fix": self.fix,
            "line": self.line,
        }


@dataclass(frozen=True)
class Signature:
    code: str
    confidence: float
    patterns: tuple[re.Pattern[str], ...]
    message: str
    fix: str


@lru_cache(maxsize=1)
def signatures() -> tuple[Signature, ...]:
    raw = load_data("signatures")["signatures"]
    return tuple(
        Signature(
            code=s["code"],
            confidence=float(s["confidence"]),
            patterns=tuple(re.compile(p, re.IGNORECASE) for p in s["patterns"]),
            message=s["message"],
            fix=s["fix"],
        )
        for s in raw
    )


class _Fields(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fields(env: Environment | None) -> dict[str, str]:
    f = _Fields()
    if env is not None:
        f["torch"] = env.torch or "?"
        f["torch_cuda"] = env.torch_cuda or "?"
    return f


def explain_text(text: str, env: Environment | None = None) -> list[Diagnosis]:
    lines = text.splitlines()
    found: dict[str, Diagnosis] = {}
    fields = _fields(env)
    for sig in signatures():
        for i, line in enumerate(lines):
            if any(p.search(line) for p in sig.patterns):
                if sig.code not in found:
                    found[sig.code] = Diagnosis(
                        code=sig.code,
                        confidence=sig.confidence,
                        evidence=line.strip()[:500],
                        message=sig.message.format_map(fields),
                        fix=sig.fix.format_map(fields),
                        line=i + 1,
                    )
                break
    return sorted(found.values(), key=lambda d: -d.confidence)
