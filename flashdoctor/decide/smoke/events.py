"""The runner's event stream, indexed: one ``EventLog`` shared by the smoke and the bench judges, the
``RunInfo`` both judge it with, and where the runner's time went. Pure functions of the events (the
runner only measures)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flashdoctor.model.cases import BACKENDS
from flashdoctor.model.smoke import GpuInfo

Key = tuple[Any, str, str]  # (gpu, backend, case)


@dataclass(frozen=True)
class RunInfo:
    """One run of the runner, besides its events: where it ran, what it was told to run and what the
    user asked for. The smoke's and the bench's judges take it with the events."""

    python: str  # the target interpreter
    device: str  # "cuda", or "cpu" (the testing mode)
    backends: Sequence[str] = BACKENDS  # what the runner was told to run
    requested: Sequence[str] | None = None  # what the user named (None: nothing in particular)
    elapsed_s: float = 0.0  # the wall time of the whole run, restarts included


@dataclass
class EventLog:
    """The runner's events, indexed. Shared by the smoke and the bench judges."""

    torch: dict[str, Any] | None = None
    no_gpu: str | None = None
    no_torch: str | None = None
    torch_failed: str | None = None
    fatal: str | None = None
    runner_failed: dict[str, Any] | None = None
    gpus: dict[Any, GpuInfo] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[Key, dict[str, Any]] = field(default_factory=dict)
    kernels: dict[Key, list[str]] = field(default_factory=dict)
    timings: dict[Key, dict[str, Any]] = field(default_factory=dict)
    ref_failed: dict[tuple[Any, str], str] = field(default_factory=dict)
    # (gpu, backend) -> its crash/timeout events, in order (a crash in one case restarts the runner
    # without that case: a backend can have several)
    crashes: dict[tuple[Any, str], list[dict[str, Any]]] = field(default_factory=dict)
    import_crashes: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_checks: list[dict[str, Any]] = field(default_factory=list)
    matmul: dict[Any, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: int = 0
    done: bool = False

    def not_run(self, python: str) -> tuple[str, str] | None:
        """Why the runner could run no backend at all, as (what, sentence): what is "no-torch",
        "torch-failed" or "no-gpu"; None when it got as far as the GPUs."""
        if self.no_torch is not None:
            return "no-torch", f"torch is not installed in {python}"
        if self.torch_failed is not None:
            return "torch-failed", f"torch does not import in {python}: {self.torch_failed[:300]}"
        if self.no_gpu is not None:
            return "no-gpu", f"no CUDA GPU visible: {self.no_gpu}"
        return None


def parse_events(events: Iterable[dict[str, Any]]) -> EventLog:
    log = EventLog()
    for e in events:
        kind = e.get("event")
        key = (e.get("gpu"), str(e.get("backend")), str(e.get("case")))
        if kind == "torch":
            log.torch = e
        elif kind == "no_gpu":
            log.no_gpu = str(e.get("reason"))
        elif kind == "no_torch":
            log.no_torch = str(e.get("error"))
        elif kind == "torch_import_failed":
            log.torch_failed = str(e.get("error"))
        elif kind == "fatal":
            log.fatal = str(e.get("message"))
        elif kind == "runner_failed":
            log.runner_failed = e
        elif kind == "gpu":
            log.gpus[e.get("gpu")] = GpuInfo(
                e.get("gpu"), str(e.get("name")), e.get("capability"), e.get("memory_gb")
            )
        elif kind == "variant":
            log.variants[str(e["backend"])] = e
        elif kind == "result":
            log.checks[key] = e
        elif kind == "kernels":
            log.kernels[key] = [str(n) for n in e.get("names", [])]
        elif kind == "timing":
            log.timings[key] = e
        elif kind == "reference" and not e.get("ok", True):
            log.ref_failed[(e.get("gpu"), str(e.get("case")))] = str(e.get("error"))
        elif kind in ("crash", "timeout"):
            if e.get("phase") == "import":
                log.import_crashes[str(e.get("backend"))] = e
            else:
                log.crashes.setdefault((e.get("gpu"), str(e.get("backend"))), []).append(e)
        elif kind == "input_check":
            log.input_checks.append(e)
        elif kind == "matmul_peak":
            log.matmul[e.get("gpu")] = e
        elif kind == "note":
            log.notes.append(str(e.get("message")))
        elif kind == "prewarm_done" and e.get("errors"):
            errors = "; ".join(str(x) for x in e["errors"])
            log.notes.append(
                f"background compile of {e.get('backend')} kernels (its checks still ran): {errors}"
            )
        elif kind == "run":
            log.runs += 1
        elif kind == "done":
            log.done = True
            if e.get("heavy_imports"):
                mods = ", ".join(str(m) for m in e["heavy_imports"])
                log.notes.append(f"the runner imported {mods} (seconds of start-up the smoke does not need)")
    return log


def phase_times(events: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Where the runner's time went (seconds, from the events' timestamps): the torch import, the set-up
    (variant imports, CUDA start, references) and each backend (all GPUs and runs added up)."""
    out: dict[str, float] = {}
    started: dict[tuple[Any, str], float] = {}
    torch_t: float | None = None
    setup_done = False
    for e in events:
        kind, t = e.get("event"), e.get("t")
        if kind == "torch" and "torch_import_s" not in out:
            out["torch_import_s"] = float(e.get("import_s") or 0.0)
            torch_t = float(t) if t is not None else None
        elif kind == "backend_start" and t is not None:
            if not setup_done and torch_t is not None:
                out["setup_s"] = round(float(t) - torch_t, 3)
                setup_done = True
            started[(e.get("gpu"), str(e.get("backend")))] = float(t)
        elif kind == "backend_done" and t is not None:
            t0 = started.pop((e.get("gpu"), str(e.get("backend"))), None)
            if t0 is not None:
                key = f"{e.get('backend')}_s"
                out[key] = round(out.get(key, 0.0) + float(t) - t0, 3)
        elif kind == "prewarm_done" and e.get("elapsed_s") is not None:
            # Overlapped with the set-up and the fallback's timings: not part of any other phase's sum.
            key = f"{e.get('backend')}_prewarm_s"
            out[key] = round(out.get(key, 0.0) + float(e["elapsed_s"]), 3)
        elif kind == "preimport_done" and e.get("elapsed_s") is not None:
            # torch._dynamo, imported in the background for the variants' custom ops: overlapped too.
            out["dynamo_import_s"] = round(out.get("dynamo_import_s", 0.0) + float(e["elapsed_s"]), 3)
        elif kind == "run" and e.get("elapsed_s") is not None:
            out["runner_s"] = round(out.get("runner_s", 0.0) + float(e["elapsed_s"]), 3)
    return out
