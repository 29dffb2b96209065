"""The result of `flashdoctor install` as a value (README "Install"): what the executor did, step by step,
and how the installed bytes were checked. Produced by flashdoctor.actions.install, drawn by
flashdoctor.render.install; field names are public interface (the --json form).

How a wheel's sha256 was checked is said in one of two ways, never as "verified" when nobody published
a digest to compare with (issue "Hostile inputs", "Also"):

    sha256 matches the published digest      the index, the mirror page (#sha256=), a plan file or a
                                             local build's manifest named the digest before the bytes
                                             arrived, and the bytes installed have it
    sha256 recorded (no published digest)    nobody published one: the digest of what arrived is
                                             recorded (so a lock file pins it from now on)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from flashdoctor.errors import EXIT_FAILED, EXIT_INSTALL, EXIT_NETWORK, EXIT_OK
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.findings import DiagnosisLike
from flashdoctor.model.plan import WheelRef

#: The forms `lock` writes (public: `lock --format`); actions.install.lock.FORMATS writes each.
LOCK_FORMS = ("requirements", "uv", "dockerfile")

Status = Literal["installed", "rolled-back", "restore-failed", "refused", "download-failed", "nothing-to-do"]

DIGEST_PUBLISHED = "sha256 matches the published digest"
DIGEST_RECORDED = "sha256 recorded (no published digest)"
# A flashdoctor-built wheel from a wheelhouse: checked against the digest its build recorded (build.json).
DIGEST_BUILD_RECORD = "sha256 matches flashdoctor's record of the build"
# Where the digest a wheel was checked against came from (Artifact.sha256_from): a publisher's, or none.
PUBLISHED_SOURCES = frozenset({"index", "mirror"})


def digest_published(sha256_from: str | None) -> bool:
    """Whether the sha256 was compared with a digest someone published before the bytes arrived.

    The one place that reads ``sha256_from`` ("index" / "mirror": published; "computed": hashed what
    arrived); when the fetched artifact says how it was verified, only this function changes."""
    return sha256_from in PUBLISHED_SOURCES


def digest_wording(sha256_from: str | None, digest_from: str | None = None) -> str | None:
    """The words for human output, JSON and lock files; None when no wheel was fetched. ``digest_from``
    (Verification.digest_from): "build-record" is a flashdoctor build checked against its own record."""
    if sha256_from is None:
        return None
    if digest_from == "build-record":
        return DIGEST_BUILD_RECORD
    return DIGEST_PUBLISHED if digest_published(sha256_from) else DIGEST_RECORDED


@dataclass(frozen=True)
class SmokeOutcome:
    """What the smoke test (issue "smoke and bench") says about the freshly installed variant."""

    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, **self.details}


SmokeHook = Callable[[str, Mapping[str, str], Variant], SmokeOutcome]


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class InstallResult(FieldsJson):
    """The outcome of an install. Its JSON form: each field, then how the digest was checked after
    ``sha256_from`` and the exit code last."""

    JSON_AFTER: ClassVar[Mapping[str, str]] = {"sha256_from": "sha256_check", "verification": "exit_code"}

    status: Status
    variant: Variant
    dist: str
    message: str
    wheel: WheelRef | None = None
    origin: str | None = None  # wheelhouse | cache | download | local
    sha256: str | None = None
    sha256_from: str | None = None  # index | computed
    previous: str | None = None  # version installed before
    installed: str | None = None  # version installed after (the restored one after a rollback)
    installer: str | None = None
    steps: tuple[Step, ...] = ()
    diagnoses: tuple[DiagnosisLike, ...] = ()
    added: tuple[str, ...] = ()  # dependencies the install added
    warnings: tuple[str, ...] = ()
    smoke: SmokeOutcome | None = None
    error: str | None = None  # the failure, verbatim (tail)
    hint: str | None = None
    log: str | None = None
    verification: dict[str, Any] | None = None  # how the wheel's bytes were checked (fetch.Artifact)

    @property
    def exit_code(self) -> int:
        return {
            "installed": EXIT_OK,
            "nothing-to-do": EXIT_OK,
            "download-failed": EXIT_NETWORK,
            "rolled-back": EXIT_INSTALL,
            "restore-failed": EXIT_INSTALL,
            "refused": EXIT_INSTALL,
        }.get(self.status, EXIT_FAILED)

    @property
    def sha256_check(self) -> str | None:
        """How the sha256 was checked, in words (see the module docstring)."""
        digest_from = (self.verification or {}).get("digest_from")
        return digest_wording(self.sha256_from, digest_from) if self.sha256 else None
