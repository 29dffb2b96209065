"""Result values: findings, per-variant verdicts and the check report. Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from flashdoctor import __version__
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.model.environment import Environment


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Verdict(str, Enum):
    READY = "ready"  # installed, imports, has code for every visible GPU
    INSTALLABLE = "installable"  # a prebuilt wheel fits this machine
    BUILDABLE = "buildable"  # no wheel fits, a source build can work (maybe after the listed fixes)
    UNSUPPORTED = "unsupported"  # cannot work on this machine


@dataclass(frozen=True)
class Finding:
    """One observation. ``code`` is public interface (README "Finding codes"): never rename one."""

    code: str
    status: Status
    message: str
    evidence: str | None = None
    fix: str | None = None
    variant: Variant | None = None  # set when the finding concerns one variant only
    subject: str | None = None  # e.g. "GPU 0 Tesla T4 (sm_75)"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status.value,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix,
            "variant": self.variant,
            "subject": self.subject,
        }


class DiagnosisLike(Protocol):
    """A diagnosis of a failure (flashdoctor.decide.explain.Diagnosis) as the results of install and
    build carry it: typed by its shape, so that the model imports no decision."""

    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def evidence(self) -> str: ...
    @property
    def fix(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class VariantVerdict:
    variant: Variant
    verdict: Verdict
    reasons: tuple[str, ...]
    blockers: tuple[str, ...] = ()  # finding codes to fix before the verdict's action can work
    fix: str | None = None  # the next command to run
    installed: str | None = None  # installed version, if any
    wheel: str | None = None  # the wheel that fits, if the verdict is installable

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "blockers": list(self.blockers),
            "fix": self.fix,
            "installed": self.installed,
            "wheel": self.wheel,
        }


@dataclass(frozen=True)
class CheckReport:
    environment: Environment
    source: str  # "probe" or "target:<file>"
    findings: tuple[Finding, ...]
    verdicts: dict[Variant, VariantVerdict]
    extra: dict[str, Any] = field(default_factory=dict)

    def counted(self, require: Iterable[Variant] = ()) -> list[Finding]:
        """Findings that decide the exit code.

        A finding scoped to one variant counts only when that variant is installed or required:
        "FA3 needs Hopper" must not fail the check of an A100 user who runs FA2.
        """
        relevant = set(require) | {i.variant for i in self.environment.installed}
        return [f for f in self.findings if f.variant is None or f.variant in relevant]

    def exit_code(self, strict: bool = False, require: Iterable[Variant] = ()) -> int:
        require = tuple(require)
        for v in require:
            if self.verdicts[v].verdict is not Verdict.READY:
                return 1
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return 1 if any(f.status in bad for f in self.counted(require)) else 0

    def summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for f in self.findings:
            counts[f.status.value] += 1
        return counts


def worst(statuses: Iterable[Status]) -> Status:
    order = [Status.OK, Status.SKIP, Status.WARN, Status.FAIL]
    result = Status.OK
    for s in statuses:
        if order.index(s) > order.index(result):
            result = s
    return result


CHECK_SCHEMA_ID = "flashdoctor/check/1"


def report_to_json(
    report: CheckReport, strict: bool = False, require: Iterable[Variant] = ()
) -> dict[str, Any]:
    """The check report's JSON document (README "check --json"; schema check-report.schema.json).
    ``schema`` changes when a field's meaning changes; fields are only ever added."""
    env = report.environment
    return {
        "schema": CHECK_SCHEMA_ID,
        "flashdoctor": __version__,
        "source": report.source,
        "environment": env.to_target(),
        "unknown": sorted(env.unknown),
        "notes": list(env.notes),
        "findings": [f.to_json() for f in report.findings],
        "verdicts": {v: vv.to_json() for v, vv in report.verdicts.items()},
        "summary": report.summary(),
        "exit_code": report.exit_code(strict=strict, require=require),
        **report.extra,
    }


__all__ = ["VARIANTS", "CheckReport", "Finding", "Status", "VariantVerdict", "Verdict", "worst"]
