"""Smoke test and bench: run the real kernels in the target interpreter, against an fp32 reference.

``run_smoke`` and ``run_bench`` are the entry points for the CLI, ``install`` (which ends with a smoke
test) and the cluster preflight. Importing this package is light: torch is only ever imported by
``_runner.py``, in a subprocess of the target interpreter.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from flashdoctor.actions.smoke.run import run_with_restarts, sdpa_names
from flashdoctor.decide.smoke.bench import BenchReport, judge_bench
from flashdoctor.decide.smoke.classify import (
    covered_dtypes,
    covered_head_dim,
    not_compiled,
    skips_input_checks,
)
from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.decide.smoke.judge import judge_smoke
from flashdoctor.knowledge.backends import variant_imports
from flashdoctor.model.cases import FALLBACK, Case, normalise_backends, smoke_cases
from flashdoctor.model.smoke import CaseStatus, SmokeReport
from flashdoctor.probe import interp_probe
from flashdoctor.probe.interpreter import TargetScriptError

SMOKE_TIMEOUT_S = 300.0  # FA4 JIT-compiles each kernel on first use: minutes, not seconds
BENCH_TIMEOUT_S = 600.0
STALL_TIMEOUT_S = 120.0  # one call (or one FA4 compile) that makes no progress this long is a hang
Report = TypeVar("Report", SmokeReport, BenchReport)

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
    versions: Mapping[str, str | None] | None = None,
) -> SmokeReport:
    """Smoke-test every installed variant and PyTorch's SDPA backends in the interpreter ``python``.

    ``variants`` limits the backends ("fa2", "fa3", "fa4", "sdpa-flash", "sdpa-cudnn",
    "sdpa-efficient", "sdpa-math"; the fallback sdpa-math always runs, it is the speed-up baseline);
    a variant named here that is not installed is a failure. ``gpu`` picks one GPU (default: each
    visible one). ``device="cpu"`` is the testing mode (toy shapes, CPU torch). ``prewarm`` compiles
    cuDNN's attention kernels in background threads while the set-up and the fallback run (README "Smoke
    test"); it changes how long the smoke takes, not what it checks. Never raises for what
    the target interpreter does: crashes and timeouts are findings in the report. ``versions`` (variant
    -> installed version; read from the target interpreter when not given) tells which cases a minimal
    build does not cover (its local version label): those are reported as not compiled, never called.

    Raises ValueError for an unknown backend name, flashdoctor.errors.UsageError for a --gpu that
    torch does not see.
    """
    requested = None if variants is None else list(variants)
    backends = normalise_backends(requested)
    cases = tuple(cases) if cases is not None else smoke_cases(device)
    config = {
        "mode": "smoke",
        **_common_config(python, environ, backends, cases, versions),
        "device": device,
        "gpu": gpu,
        "check": True,
        "profile": True,
        "input_checks": input_checks,
        "repeats": repeats,
        "min_batch_ms": 0.5,
        "prewarm": ["sdpa-cudnn"] if prewarm and device == "cuda" else [],
    }
    judge = functools.partial(judge_smoke, cases=cases)
    return _run(judge, RunInfo(python, device, backends, requested), environ, config, timeout, stall_timeout)


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
    versions: Mapping[str, str | None] | None = None,
) -> BenchReport:
    """Time ``case`` on every available backend (forward, forward+backward, peak memory) and measure
    the GPU's bf16 matmul peak first, on a quiet GPU. One GPU: ``gpu`` or GPU 0. A minimal build that
    does not cover ``case`` is reported as not compiled, never called (see run_smoke's ``versions``)."""
    requested = None if backends is None else list(backends)
    names = normalise_backends(requested)
    config = {
        "mode": "bench",
        **_common_config(python, environ, names, (case,), versions),
        "device": device,
        "gpu": 0 if gpu is None and device == "cuda" else gpu,
        "check": False,
        "profile": False,
        "input_checks": False,
        "matmul_peak": True,
        "backward": backward,
        "repeats": repeats,
        "min_batch_ms": 1.0,
    }
    judge = functools.partial(judge_bench, case=case)
    return _run(judge, RunInfo(python, device, names, requested), environ, config, timeout, stall_timeout)


def _common_config(
    python: str,
    environ: Mapping[str, str],
    backends: Sequence[str],
    cases: Sequence[Case],
    versions: Mapping[str, str | None] | None,
) -> dict[str, object]:
    """What the runner is told by flashdoctor's registry: the backends and how to call them, where the
    variants live, and which cases each installed build does not cover."""
    if versions is None:
        versions = installed_versions(python, environ)
    return {
        "backends": list(backends),
        "fallback": FALLBACK,
        "sdpa_names": sdpa_names(backends),
        "variants": variant_imports(),
        "cases": [c.to_json() for c in cases],
        "not_compiled": not_compiled(backends, cases, versions),
        "input_dtypes": {
            b: list(d) for b in backends if (d := covered_dtypes(b, versions.get(b))) is not None
        },
        "input_head_dims": {
            b: hd for b in backends if (hd := covered_head_dim(b, versions.get(b))) is not None
        },
        "input_skip": [b for b in backends if skips_input_checks(b, versions.get(b))],
    }


def installed_versions(python: str, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Variant -> the version installed in ``python`` (read from its files, nothing imported: ~0.1 s).
    Empty when the interpreter cannot say; the runner then reports whatever is wrong with it. A Python 2
    is a usage error (the runner would fail on its syntax)."""
    try:
        data = interp_probe(python, environ)
    except TargetScriptError as exc:
        if exc.kind == "unsupported":
            from flashdoctor.errors import UsageError

            raise UsageError(str(exc)) from None
        return {}
    return {str(f["variant"]): f.get("version") for f in data.get("flash") or () if f.get("variant")}


def _run(
    judge: Callable[[Sequence[dict[str, object]], RunInfo], Report],
    run: RunInfo,
    environ: Mapping[str, str],
    config: Mapping[str, object],
    timeout: float,
    stall_timeout: float | None,
) -> Report:
    """Run the runner (restarted after a crash) and ``judge`` its events (all runs) with the wall time;
    a usage error it reported (e.g. --gpu) raises."""
    t0 = time.perf_counter()
    events = run_with_restarts(run.python, environ, config, timeout, stall_timeout)
    _raise_usage(events)
    return judge(events, dataclasses.replace(run, elapsed_s=time.perf_counter() - t0))


def _raise_usage(events: Sequence[dict[str, object]]) -> None:
    from flashdoctor.errors import UsageError

    for e in events:
        if e.get("event") == "fatal" and e.get("kind") == "usage":
            raise UsageError(str(e.get("message")))
