"""Smoke test and bench: run the real kernels in the target interpreter, against an fp32 reference.

``run_smoke`` and ``run_bench`` are the entry points for the CLI, ``install`` (which ends with a smoke
test) and the cluster preflight. Importing this package is light: torch is only ever imported by
``_runner.py``, in a subprocess of the target interpreter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from flashdoctor.actions.smoke.run import run_with_restarts, sdpa_names
from flashdoctor.decide.smoke.bench import BenchReport, judge_bench
from flashdoctor.decide.smoke.judge import judge_smoke
from flashdoctor.model.cases import Case, normalise_backends, smoke_cases
from flashdoctor.model.smoke import CaseStatus, SmokeReport

SMOKE_TIMEOUT_S = 300.0  # FA4 JIT-compiles each kernel on first use: minutes, not seconds
BENCH_TIMEOUT_S = 600.0
STALL_TIMEOUT_S = 120.0  # one call (or one FA4 compile) that makes no progress this long is a hang

__all__ = [
    "BenchReport",
    "Case",
    "CaseStatus",
    "SmokeReport",
    "run_bench",
    "run_smoke",
]


def run_smoke(
    python: str,
    environ: Mapping[str, str],
    gpu: int | None = None,
    variants: Iterable[str] | None = None,
    *,
    device: str = "cuda",
    cases: Sequence[Case] | None = None,
    timeout: float = SMOKE_TIMEOUT_S,
    stall_timeout: float | None = STALL_TIMEOUT_S,
    repeats: int = 5,
    input_checks: bool = True,
    prewarm: bool = True,
) -> SmokeReport:
    """Smoke-test every installed variant and PyTorch's SDPA backends in the interpreter ``python``.

    ``variants`` limits the backends ("fa2", "fa3", "fa4", "sdpa-flash", "sdpa-cudnn",
    "sdpa-efficient", "sdpa-math"; the fallback sdpa-math always runs, it is the speed-up baseline);
    a variant named here that is not installed is a failure. ``gpu`` picks one GPU (default: each
    visible one). ``device="cpu"`` is the testing mode (toy shapes, CPU torch). ``prewarm`` compiles
    cuDNN's attention kernels in background threads while the set-up and the fallback run (README "Smoke
    test"); it changes how long the smoke takes, not what it checks. Never raises for what
    the target interpreter does: crashes and timeouts are findings in the report.

    Raises ValueError for an unknown backend name, flashdoctor.errors.UsageError for a --gpu that
    torch does not see.
    """
    requested = None if variants is None else list(variants)
    backends = normalise_backends(requested)
    cases = tuple(cases) if cases is not None else smoke_cases(device)
    config = {
        "mode": "smoke",
        "device": device,
        "gpu": gpu,
        "backends": list(backends),
        "sdpa_names": sdpa_names(backends),
        "cases": [c.to_json() for c in cases],
        "check": True,
        "profile": True,
        "input_checks": input_checks,
        "repeats": repeats,
        "min_batch_ms": 0.5,
        "prewarm": ["sdpa-cudnn"] if prewarm and device == "cuda" else [],
    }
    events, elapsed = _run(python, environ, config, timeout, stall_timeout)
    return judge_smoke(
        events,
        python=python,
        device=device,
        cases=cases,
        backends=backends,
        requested=requested,
        elapsed_s=elapsed,
    )


def run_bench(
    python: str,
    environ: Mapping[str, str],
    case: Case,
    gpu: int | None = None,
    backends: Iterable[str] | None = None,
    *,
    device: str = "cuda",
    timeout: float = BENCH_TIMEOUT_S,
    stall_timeout: float | None = STALL_TIMEOUT_S,
    repeats: int = 10,
    backward: bool = True,
) -> BenchReport:
    """Time ``case`` on every available backend (forward, forward+backward, peak memory) and measure
    the GPU's bf16 matmul peak. One GPU: ``gpu`` or GPU 0."""
    requested = None if backends is None else list(backends)
    names = normalise_backends(requested)
    config = {
        "mode": "bench",
        "device": device,
        "gpu": 0 if gpu is None and device == "cuda" else gpu,
        "backends": list(names),
        "sdpa_names": sdpa_names(names),
        "cases": [case.to_json()],
        "check": False,
        "profile": False,
        "input_checks": False,
        "matmul_peak": True,
        "backward": backward,
        "repeats": repeats,
        "min_batch_ms": 1.0,
    }
    events, elapsed = _run(python, environ, config, timeout, stall_timeout)
    return judge_bench(
        events,
        python=python,
        device=device,
        case=case,
        backends=names,
        requested=requested,
        elapsed_s=elapsed,
    )


def _run(
    python: str,
    environ: Mapping[str, str],
    config: Mapping[str, object],
    timeout: float,
    stall_timeout: float | None,
) -> tuple[list[dict[str, object]], float]:
    """The runner's events (all runs) and the wall time; a usage error it reported (e.g. --gpu) raises."""
    t0 = time.perf_counter()
    events = run_with_restarts(python, environ, config, timeout, stall_timeout)
    _raise_usage(events)
    return events, time.perf_counter() - t0


def _raise_usage(events: Sequence[dict[str, object]]) -> None:
    from flashdoctor.errors import UsageError

    for e in events:
        if e.get("event") == "fatal" and e.get("kind") == "usage":
            raise UsageError(str(e.get("message")))
