"""The install plan: what `flashdoctor install` would do, as a value (README "Install plan").

Produced by the wheel selector (flashdoctor.decide.wheels), carried out by the installer (flashdoctor.actions.install)
or the source build (flashdoctor.actions.source_build). Field names are public interface (the --dry-run --json form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.fields import FieldsJson

Action = Literal["wheel", "build", "none", "unsupported"]


@dataclass(frozen=True)
class WheelRef(FieldsJson):
    """One downloadable wheel. ``sha256`` is None when no trustworthy digest is known."""

    filename: str
    url: str
    sha256: str | None
    source: str  # "official" | "pytorch-index" | "pypi" | "community:<owner>" | "wheelhouse" | "local"
    version: str


@dataclass(frozen=True)
class Rejection:
    filename: str
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Plan:
    action: Action
    variant: Variant
    wheel: WheelRef | None = None
    alternatives: tuple[WheelRef, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    reasons: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()  # check codes that rule the variant out (action "unsupported")
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "variant": self.variant,
            "wheel": self.wheel.to_json() if self.wheel else None,
            "alternatives": [w.to_json() for w in self.alternatives],
            "rejected": [r.to_json() for r in self.rejected],
            "reasons": list(self.reasons),
            "blockers": list(self.blockers),
            **self.extra,
        }
