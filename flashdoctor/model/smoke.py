"""Result values of the smoke test: per-case results, backends, GPUs, findings and the report.

Pure data with ``to_json``; the JSON document is versioned (``schema``), fields are only ever added
(README "Smoke test: JSON"). Its JSON Schema ships as flashdoctor/schemas/smoke-report.schema.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flashdoctor import __version__
from flashdoctor.model.cases import VARIANT_BACKENDS, Case
from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.findings import Finding, Status

SMOKE_SCHEMA_ID = "flashdoctor/smoke/1"


class CaseStatus(str, Enum):
    PASS = "pass"  # ran, and out/dq/dk/dv agree with the fp32 reference within tolerance
    FAIL = "fail"  # ran, and disagrees (or produced inf/nan)
    ERROR = "error"  # raised an exception that is not a known "cannot take this input"
    SKIP = "skip"  # cannot take this input here (not compiled in this build, unsupported GPU/head dim/dtype, no kernel)
    CRASH = "crash"  # killed the interpreter (signal)
    TIMEOUT = "timeout"  # did not finish within the time limit
    NOT_RUN = "not-run"  # never reached (an earlier crash or timeout of this backend)


@dataclass(frozen=True)
class TensorError:
    """Max abs error of one tensor and the reference's max magnitude; ``rel`` is their ratio."""

    max_abs: float | None  # None when the tensor holds inf/nan
    ref_max: float
    finite: bool = True

    @property
    def rel(self) -> float:
        if not self.finite or self.max_abs is None:
            return math.inf
        return self.max_abs / self.ref_max if self.ref_max > 0 else (0.0 if self.max_abs == 0 else math.inf)

    def to_json(self) -> dict[str, Any]:
        rel = self.rel
        return {
            "max_abs": self.max_abs,
            "ref_max": self.ref_max,
            "rel": None if math.isinf(rel) else rel,
            "finite": self.finite,
        }


@dataclass(frozen=True)
class Tolerance(FieldsJson):
    out: float
    grad: float


@dataclass(frozen=True)
class GpuInfo(FieldsJson):
    index: int | None  # None = the CPU (hidden --device cpu mode)
    name: str
    capability: str | None = None
    memory_gb: float | None = None

    @property
    def label(self) -> str:
        if self.index is None:
            return "CPU"
        sm = f"sm_{self.capability.replace('.', '')}" if self.capability else "sm_?"
        return f"GPU {self.index} {self.name} ({sm})"


@dataclass(frozen=True)
class BackendInfo(FieldsJson):
    """A backend the smoke knows. Variants carry what the target interpreter said about them."""

    name: str
    kind: str  # "sdpa" | "variant"
    title: str
    installed: bool | None = None  # None for SDPA backends (part of torch)
    version: str | None = None
    import_ok: bool | None = None
    import_error: str | None = None
    module: str | None = None
    requested: bool = False  # named explicitly (run_smoke(variants=...)): missing is then a failure


@dataclass(frozen=True)
class CaseResult:
    gpu: int | None
    backend: str
    case: Case
    status: CaseStatus
    reason: str | None = None  # one sentence for a human
    category: str | None = None  # why a case skipped or errored: not_compiled, unsupported_gpu, ...
    error: str | None = None  # the exception as raised ("RuntimeError: ...")
    errors: dict[str, TensorError] = field(default_factory=dict)  # out, dq, dk, dv
    tolerance: Tolerance | None = None
    kernels: tuple[str, ...] = ()  # what ran during the call, longest total time first
    kernel: str | None = None  # the first of them that is the backend's own kernel (the proof)
    kernel_proof: bool | None = None  # None: not profiled
    fwd_ms: float | None = None
    fwd_bwd_ms: float | None = None
    peak_mib: float | None = None
    speedup_fwd: float | None = None  # fallback time / this time, same case, same GPU
    speedup_fwd_bwd: float | None = None

    @property
    def out_rel(self) -> float | None:
        e = self.errors.get("out")
        return None if e is None else e.rel

    @property
    def grad_rel(self) -> float | None:
        rels = [self.errors[k].rel for k in ("dq", "dk", "dv") if k in self.errors]
        return max(rels) if rels else None

    def to_json(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "backend": self.backend,
            "case": self.case.name,
            "shape": self.case.label,
            "status": self.status.value,
            "reason": self.reason,
            "category": self.category,
            "error": self.error,
            "errors": {k: v.to_json() for k, v in self.errors.items()},
            "tolerance": None if self.tolerance is None else self.tolerance.to_json(),
            "kernels": list(self.kernels),
            "kernel": self.kernel,
            "kernel_proof": self.kernel_proof,
            "fwd_ms": self.fwd_ms,
            "fwd_bwd_ms": self.fwd_bwd_ms,
            "peak_mib": self.peak_mib,
            "speedup_fwd": self.speedup_fwd,
            "speedup_fwd_bwd": self.speedup_fwd_bwd,
        }


@dataclass(frozen=True)
class InputCheck(FieldsJson):
    """A deliberately wrong input fed to a variant (fp32 tensors, head dim 512) and what it answered."""

    gpu: int | None
    backend: str
    check: str  # "fp32" | "head_dim_512"
    raised: bool
    error: str | None = None


@dataclass(frozen=True)
class SmokeReport:
    python: str
    device: str  # "cuda" | "cpu" (hidden testing mode)
    torch: str | None
    skipped_reason: str | None  # set when nothing could run (no GPU, no torch): exit 0
    gpus: tuple[GpuInfo, ...]
    backends: tuple[BackendInfo, ...]
    cases: tuple[Case, ...]
    results: tuple[CaseResult, ...]
    input_checks: tuple[InputCheck, ...]
    findings: tuple[Finding, ...]
    elapsed_s: float
    torch_import_s: float | None = None
    runs: int = 1  # runner processes started (more than one after a crash)
    notes: tuple[str, ...] = ()
    phases: dict[str, float] = field(
        default_factory=dict
    )  # seconds: torch_import_s, setup_s, <backend>_s, runner_s

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None

    def exit_code(self) -> int:
        """1 when anything failed (a variant that claims to be installed computing wrong results, crashing,
        timing out or not importing; a requested variant missing); else 0, also when skipped."""
        return 1 if any(f.status is Status.FAIL for f in self.findings) else 0

    @property
    def status(self) -> str:
        if self.exit_code():
            return "failed"
        return "skipped" if self.skipped else "passed"

    def backend(self, name: str) -> BackendInfo | None:
        for b in self.backends:
            if b.name == name:
                return b
        return None

    def variant_ok(self, variant: str) -> bool | None:
        """Did this variant pass everywhere it ran? None when it never ran (not installed, all skipped)."""
        if variant not in VARIANT_BACKENDS:
            raise ValueError(f"not a variant: {variant!r}")
        if any(f.status is Status.FAIL and finding_backend(f) == variant for f in self.findings):
            return False
        return (
            True if any(r.backend == variant and r.status is CaseStatus.PASS for r in self.results) else None
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SMOKE_SCHEMA_ID,
            "flashdoctor": __version__,
            "status": self.status,
            "exit_code": self.exit_code(),
            "skipped_reason": self.skipped_reason,
            "python": self.python,
            "device": self.device,
            "torch": self.torch,
            "elapsed_s": round(self.elapsed_s, 3),
            "torch_import_s": self.torch_import_s,
            "runs": self.runs,
            "gpus": [g.to_json() for g in self.gpus],
            "backends": [b.to_json() for b in self.backends],
            "cases": [c.to_json() for c in self.cases],
            "results": [r.to_json() for r in self.results],
            "input_checks": [c.to_json() for c in self.input_checks],
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
            "phases": dict(self.phases),
        }


def finding_backend(f: Finding) -> str | None:
    """The backend a smoke finding is about: its ``subject`` reads 'backend' or 'backend @ GPU ...'."""
    if f.subject is None:
        return None
    return f.subject.split(" @ ", 1)[0]
