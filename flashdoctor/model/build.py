"""A source build as values: the request, the plan, the run's result, the outcome, and the progress events
a build emits. Decisions (flashdoctor.decide.source_build) make the plan, the action
(flashdoctor.actions.source_build) runs it and returns a BuildOutcome, renderers draw both and the events.

The wheelhouse's values (a build's Fingerprint, a stored BuiltWheel) live here, so that the outcome carries
them as they are; flashdoctor.actions.wheelhouse reads and writes them. What the outcome carries from a higher
layer (the explain engine's diagnoses) is typed by the shape it needs (a Protocol), never by an import.
Field names of the ``to_json`` forms are public interface (``build --json``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from packaging.utils import parse_wheel_filename

from flashdoctor.errors import EXIT_FAILED, EXIT_INSTALL, EXIT_OK
from flashdoctor.knowledge.profiles import BuildVariant, Profile
from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.findings import DiagnosisLike, Finding
from flashdoctor.model.plan import WheelRef
from flashdoctor.model.verification import Verification

Status = Literal["planned", "blocked", "cached", "built", "failed"]


# -- the request and the plan -------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (CLI options), before any decision."""

    variant: BuildVariant = "fa2"
    archs: tuple[int, ...] | None = None
    head_dims: tuple[int, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    disable: tuple[str, ...] = ()  # FA3 features (--no-backward ...)
    max_jobs: int | None = None
    nvcc_threads: int | None = None


@dataclass(frozen=True)
class ArchTarget(FieldsJson):
    """One requested architecture (a GPU or an --arch value) and the code the build gives it."""

    sm: int
    build_arch: int | None  # the variant's arch that serves it; None = nothing can
    runs: str  # "native" | "no"
    note: str
    subject: str  # "GPU 0 NVIDIA H100 (sm_90)" or "--arch 86"


@dataclass(frozen=True)
class Jobs:
    max_jobs: int
    nvcc_threads: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class BuildPlan:
    variant: BuildVariant
    version: str
    profile: Profile
    targets: tuple[ArchTarget, ...]
    # The compile units: FA2 kernel units (flashdoctor's table of the version); FA3 every source ninja
    # compiles, as the checkout's hopper/setup.py lists them ("?" where a name depends on an unknown fact;
    # empty where the source list could not be read: see units_from).
    units: tuple[str, ...]
    unit_count: int  # FA2: kernel units × archs; FA3: ninja compile steps
    default_unit_count: int  # the same for upstream's default build (all units × default archs)
    arch_only_unit_count: int  # all units, this plan's archs
    edges: int  # ninja compile steps (kernel units + flash_api.cpp ...)
    jobs: Jobs
    env: dict[str, str]  # variables flashdoctor sets for the build
    edit_sources: bool  # FA2: the unpacked sources are edited (head dims / dtypes narrowed)
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # Where the unit list comes from: "table" (FA2: data/build.json), "checkout" (FA3: the checkout's own
    # hopper/setup.py), "estimate" (FA3 without a readable checkout), "unknown" (an FA2 version not in the table).
    units_from: str = "table"

    @property
    def label(self) -> str:
        return self.profile.label()

    @property
    def reduction(self) -> float:
        return self.default_unit_count / max(1, self.unit_count)

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "version": self.version,
            "profile": self.profile.to_json(),
            "label": self.label,
            "targets": [t.to_json() for t in self.targets],
            "units": list(self.units),
            "unit_count": self.unit_count,
            "arch_only_unit_count": self.arch_only_unit_count,
            "default_unit_count": self.default_unit_count,
            "edges": self.edges,
            "units_from": self.units_from,
            "max_jobs": self.jobs.max_jobs,
            "nvcc_threads": self.jobs.nvcc_threads,
            "jobs_reasons": list(self.jobs.reasons),
            "env": dict(self.env),
            "edit_sources": self.edit_sources,
            "notes": list(self.notes),
            **self.extra,
        }


# -- the run ------------------------------------------------------------------------------------------
class BuildProgress(Protocol):
    """The events a running build emits (flashdoctor.actions.source_build.runner); renderers draw them
    (flashdoctor.render.progress). ``started`` comes once before the compiler runs, with the step count the
    plan expects (None when unknown); ``step`` for each ninja step, with ninja's own count; ``finished`` once,
    also when the build fails or is interrupted."""

    def started(self, total: int | None) -> None: ...
    def step(self, done: int, total: int, unit: str | None, elapsed: float) -> None: ...
    def finished(self, ok: bool, elapsed: float) -> None: ...


@dataclass(frozen=True)
class FirstError:
    line_no: int  # 1-based, in the log
    text: str  # the error line and the lines that show where (source line, caret)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    seconds: float
    log_path: Path
    steps_done: int
    steps_total: int
    compiled: tuple[str, ...]  # source files named by ninja steps, in order
    first_error: FirstError | None = None
    diagnoses: tuple[DiagnosisLike, ...] = ()
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# -- the outcome --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fingerprint(FieldsJson):
    """What a built wheel depends on (flashdoctor.actions.wheelhouse's docstring says why each field
    matters), and what was compiled (variant, version, archs, profile)."""

    variant: str
    version: str  # the FlashAttention version built (public part)
    torch: str  # "2.11"
    cuda: str | None  # "13"; None: a torch without CUDA
    cxx11abi: bool | None  # None: unknown (matches nothing)
    python_abi: str  # "cp312"
    platform: str  # "linux_x86_64"
    glibc: str | None  # "2.39"; None where there is no glibc
    archs: tuple[int, ...]
    profile: str  # the local version label, e.g. "fd.sm90.hd128.bf16"

    def key(self) -> dict[str, Any]:
        """The fields that make the id: every field but glibc (compared, not hashed)."""
        fields = {k: v for k, v in super().to_json().items() if k != "glibc"}
        return {**fields, "archs": list(self.archs)}

    @property
    def id(self) -> str:
        blob = json.dumps(self.key(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {**self.key(), "glibc": self.glibc, "id": self.id}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Fingerprint:
        """Raises ValueError / KeyError / TypeError for a fingerprint that cannot be read."""
        abi = d.get("cxx11abi")
        return cls(
            variant=str(d["variant"]),
            version=str(d["version"]),
            torch=str(d["torch"]),
            cuda=None if d.get("cuda") is None else str(d["cuda"]),
            cxx11abi=abi if isinstance(abi, bool) else None,
            python_abi=str(d["python_abi"]),
            platform=str(d["platform"]),
            glibc=None if d.get("glibc") is None else str(d["glibc"]),
            archs=tuple(sorted(_arch_numbers(d.get("archs")))),
            profile=str(d.get("profile") or ""),
        )


def _arch_numbers(values: Any) -> set[int]:
    """90, "90", "sm_90", "sm_90a" -> 90 (manifests written by hand or by older builders)."""
    out = set()
    for a in values or []:
        text = str(a).lower().removeprefix("sm_").removeprefix("compute_").rstrip("af")
        if text.isdigit():
            out.add(int(text))
    return out


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel stored in a wheelhouse with its build.json manifest (flashdoctor.actions.wheelhouse)."""

    path: Path
    fingerprint: Fingerprint
    sha256: str
    manifest: dict[str, Any]

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def version(self) -> str:
        """The wheel's full version, local label included."""
        return str(parse_wheel_filename(self.path.name)[1])

    def ref(self) -> WheelRef:
        """The plan's wheel for this build (the fetch checks the file against the manifest's sha256)."""
        return WheelRef(
            filename=self.filename,
            url=self.path.resolve().as_uri(),
            sha256=self.sha256 if len(self.sha256) == 64 else None,
            source="wheelhouse",
            version=self.version,
        )


@dataclass(frozen=True)
class BuildOutcome:
    status: Status
    plan: BuildPlan | None
    findings: tuple[Finding, ...] = ()
    fingerprint: Fingerprint | None = None
    wheel: BuiltWheel | None = None
    run: RunResult | None = None
    source: str | None = None  # origin of the sources
    command: tuple[str, ...] = ()
    log_path: Path | None = None
    work_dir: Path | None = None
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    verification: Verification | None = None  # how a downloaded sdist was checked

    @property
    def exit_code(self) -> int:
        """0 planned / cached / built; 1 blocked by preflight; 5 the build failed (docs/json.md 'Exit codes')."""
        return {"blocked": EXIT_FAILED, "failed": EXIT_INSTALL}.get(self.status, EXIT_OK)

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "status": self.status,
            "plan": None if self.plan is None else self.plan.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "fingerprint": None if self.fingerprint is None else self.fingerprint.to_json(),
            "wheel": None
            if self.wheel is None
            else {"path": str(self.wheel.path), "filename": self.wheel.filename, "sha256": self.wheel.sha256},
            "source": self.source,
            "command": list(self.command),
            "log": None if self.log_path is None else str(self.log_path),
            "work_dir": None if self.work_dir is None else str(self.work_dir),
            "seconds": None if run is None else round(run.seconds, 1),
            "steps": None if run is None else {"done": run.steps_done, "total": run.steps_total},
            "compiled": [] if run is None else list(run.compiled),
            "first_error": None if run is None or run.first_error is None else run.first_error.text,
            "diagnoses": [] if run is None else [d.to_json() for d in run.diagnoses],
            "notes": list(self.notes),
            "source_verification": None if self.verification is None else self.verification.to_json(),
        }
