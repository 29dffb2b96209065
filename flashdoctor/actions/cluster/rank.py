"""One rank's work: probe this node and this rank's GPU, run the checks, optionally the smoke test.

The probes and the smoke runner are passed in (the defaults are the real ones), so the decisions —
which GPU, which target, what exit code — are tested with fed values.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flashdoctor.actions.cluster.launch import DeviceAssignment, LaunchInfo, assign_device, rank_target
from flashdoctor.decide.cluster import RankResult
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.environment import Environment

if TYPE_CHECKING:
    from flashdoctor.decide.checks import WheelFinder


@dataclass(frozen=True)
class SmokeOutcome:
    """What the cluster report needs from a smoke test: passed (True), failed (False) or skipped
    (None: nothing could run, e.g. no GPU), and its JSON document."""

    passed: bool | None
    document: dict[str, Any]


class SmokeRunner(Protocol):
    """Runs the smoke test in ``python`` with ``environ`` (CUDA_VISIBLE_DEVICES already restricted to
    the rank's GPU, which is then device ``gpu`` = 0; None when the rank has no GPU)."""

    def __call__(self, python: str, environ: Mapping[str, str], gpu: int | None) -> SmokeOutcome: ...


def smoke_passed(report: Any) -> bool | None:
    """Pass/fail of a ``flashdoctor.actions.smoke.SmokeReport``: ``exit_code()`` 0 passes, unless the report
    was ``skipped`` (nothing could run), which is neither."""
    if report.exit_code() != 0:
        return False
    return None if getattr(report, "skipped", False) else True


def default_smoke_runner(variants: tuple[Variant, ...] | None = None) -> SmokeRunner:
    """The real smoke test, ``flashdoctor.actions.smoke.run_smoke``, limited to ``variants`` (--require) if
    given. Raises UsageError when this installation has no smoke module, before any rank joins."""
    try:
        from flashdoctor.actions.smoke import run_smoke
    except ImportError as exc:  # pragma: no cover - the smoke module ships with flashdoctor
        raise UsageError(
            f"--smoke needs flashdoctor.actions.smoke, which this installation lacks ({exc})"
        ) from None

    def runner(python: str, environ: Mapping[str, str], gpu: int | None) -> SmokeOutcome:
        rep = run_smoke(python, environ, gpu=gpu, variants=list(variants) if variants else None)
        return SmokeOutcome(passed=smoke_passed(rep), document=rep.to_json())

    return runner


# -- probes (injectable) -----------------------------------------------------------------------------
def _visible_gpu_count(environ: Mapping[str, str]) -> int:
    from flashdoctor.probe.system import probe_nvidia

    gpus = probe_nvidia(environ).values.get("gpus") or ()
    return len(gpus)  # type: ignore[arg-type]


def _probe(python: str | None, environ: Mapping[str, str], import_tests: bool, deep: bool) -> Environment:
    from flashdoctor.probe import InterpreterError, probe_environment

    try:
        return probe_environment(python=python, environ=environ, import_tests=import_tests, deep=deep)
    except InterpreterError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class RankOptions:
    python: str | None = None
    target: str | None = None
    target_for_rank: Mapping[int, str] = field(default_factory=dict)
    strict: bool = False
    require: tuple[Variant, ...] = ()
    deep: bool = False
    import_tests: bool = True
    smoke: bool = False
    save_target: str | None = None  # may hold {rank} and {host}


def _target_gpu(env: Environment, local_rank: int) -> tuple[Environment, DeviceAssignment]:
    """A target spec's GPUs are numbered 0..n-1: give the rank its own as on a real node."""
    a = assign_device(local_rank, None, len(env.gpus))
    if a.visible is None:
        return (env.replace(gpus=()) if env.gpus else env), a
    return env.replace(gpus=(env.gpus[int(a.visible)],)), a


def run_rank(
    launch: LaunchInfo,
    opts: RankOptions,
    environ: Mapping[str, str],
    host: str | None,
    smoke_runner: SmokeRunner | None = None,
    gpu_count: Callable[[Mapping[str, str]], int] = _visible_gpu_count,
    probe: Callable[[str | None, Mapping[str, str], bool, bool], Environment] = _probe,
    clock: Callable[[], float] = time.monotonic,
    finder: Callable[[], WheelFinder | None] | None = None,
) -> RankResult:
    """Check this rank. Errors a user can act on become the rank's ``error`` (rank 0 reports them);
    anything else propagates (the caller turns it into an error result too)."""
    from flashdoctor.model.findings import report_to_json

    t0 = clock()
    base = RankResult(rank=launch.rank, host=host, local_rank=launch.local_rank, node_rank=launch.node_rank)

    def failed(msg: str, **kw: Any) -> RankResult:
        return dataclasses.replace(base, **kw, error=msg, exit_code=1, elapsed_s=round(clock() - t0, 3))

    target = rank_target(launch.rank, opts.target_for_rank, opts.target, environ)
    rank_environ = dict(environ)
    try:
        if target:
            from flashdoctor.actions.inputs import load_target

            try:
                env, assignment = _target_gpu(load_target(target), launch.local_rank)
            except UsageError as exc:
                return failed(exc.message, source=f"target:{target}")
            source = f"target:{target}"
        else:
            assignment = assign_device(
                launch.local_rank, environ.get("CUDA_VISIBLE_DEVICES"), gpu_count(environ)
            )
            if assignment.visible is not None:
                rank_environ["CUDA_VISIBLE_DEVICES"] = assignment.visible
            env = probe(opts.python, rank_environ, opts.import_tests, opts.deep)
            source = "probe"
    except UsageError as exc:
        return failed(exc.message)
    # The same pipeline as a plain `check`: prebuilt wheels from the index count ("installable"), the
    # index's age, installs killed part-way (none for a target).
    from flashdoctor.actions.check import checked
    from flashdoctor.actions.inputs import wheel_finder

    wheels = wheel_finder(rank_environ) if finder is None else finder()
    report = checked(env, source, wheels, rank_environ)
    doc = report_to_json(report, strict=opts.strict, require=opts.require)
    code = report.exit_code(strict=opts.strict, require=opts.require)
    # A target's GPU is the spec's, not a device of this node: no device to own (or to share).
    device = None if target else assignment.visible
    kw: dict[str, Any] = {"device": device, "device_note": assignment.note, "source": source}
    if opts.save_target:
        path = opts.save_target.replace("{rank}", str(launch.rank)).replace("{host}", host or "unknown")
        try:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(env.to_target(), fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            return failed(f"cannot write {path}: {exc.strerror or exc}", check=doc, **kw)
    smoke_doc: dict[str, Any] | None = None
    smoke_ok: bool | None = None
    smoke_error: str | None = None
    # A target spec describes another machine: there is nothing to run the smoke test on.
    if opts.smoke and not target and smoke_runner is not None:
        gpu = 0 if assignment.has_gpu else None
        try:
            out = smoke_runner(opts.python or sys.executable, rank_environ, gpu)
            smoke_doc, smoke_ok = out.document, out.passed
        except Exception as exc:  # a smoke test that cannot even start fails, reported, not a hang
            smoke_error, smoke_ok = f"{type(exc).__name__}: {exc}", False
        if smoke_ok is False:
            code = max(code, 1)
    return dataclasses.replace(
        base,
        **kw,
        check=doc,
        smoke=smoke_doc,
        smoke_passed=smoke_ok,
        smoke_error=smoke_error,
        exit_code=code,
        elapsed_s=round(clock() - t0, 3),
    )


def host_name(environ: Mapping[str, str]) -> str:
    """This node's name as the launcher knows it (Slurm's node name), else the hostname."""
    import socket

    return environ.get("SLURMD_NODENAME") or socket.gethostname()
