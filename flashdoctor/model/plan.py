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


DigestState = Literal["known", "at-download", "none"]


@dataclass(frozen=True)
class WheelOrigin(FieldsJson):
    """Where a planned wheel comes from, for people, and how its download will be checked
    (flashdoctor.decide.wheels.origin decides it).

    ``text``: one plain line ("PyTorch index download.pytorch.org/whl/cu130 (official)"); ``digest``:
    "known" (the index has the sha256), "at-download" (the publisher's digest is read before the download:
    ``digest_from``, a key of flashdoctor.model.verification.DIGEST_SOURCES), "none" (no published digest
    exists for that URL: the download is hashed and recorded); ``digest_text``: how the sha256 line words
    it; ``evidence``: the index's research provenance of the entry (``--json`` and ``-v`` only)."""

    text: str
    community: bool
    digest: DigestState
    digest_from: str | None
    digest_text: str
    evidence: str | None = None


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
    origin: WheelOrigin | None = None  # of ``wheel``, when the selector planned it from the index

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "variant": self.variant,
            "wheel": self.wheel.to_json() if self.wheel else None,
            "alternatives": [w.to_json() for w in self.alternatives],
            "rejected": [r.to_json() for r in self.rejected],
            "reasons": list(self.reasons),
            "blockers": list(self.blockers),
            **({"origin": self.origin.to_json()} if self.origin is not None else {}),
            **self.extra,
        }
