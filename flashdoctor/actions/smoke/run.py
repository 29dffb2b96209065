"""The action: start the runner in the target interpreter, with a time limit, and survive its crashes.

The runner appends one JSON event a line to a file, flushed after each, so whatever it measured before
a segfault or a timeout is kept. When it dies (a signal, or an exit without its "done" event), the case
in flight is recorded as a crash (or timeout), and a fresh runner continues: after a crash in one case,
with that case left out (the backend's other cases still run: one uncovered input must not hide what
the build does cover); after a hang, or after a backend's second crashed case, with the backend left out
— one broken variant cannot hide the others' results. The process itself is started and stopped by the
probe layer's target-script runner (probe.interpreter); the decisions about the events are in
``decide.smoke`` (judge, bench).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flashdoctor.model.cases import backend_info
from flashdoctor.probe.interpreter import (
    TargetScriptError,
    exit_signal,
    read_tail,
    script_file,
    start,
    stop,
)

MAX_RUNS = 6  # the first run plus up to five restarts after crashes
MAX_CASE_CRASHES = 2  # a backend whose second case crashes too is left out (each restart costs an import)
MIN_RESTART_S = 5.0  # no restart when less time than this is left


@dataclass(frozen=True)
class RunnerRun:
    """One runner process: its events, how it ended, and the tails of its output."""

    events: tuple[dict[str, Any], ...]
    returncode: int | None
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    elapsed_s: float
    stalled: bool = False  # killed for making no progress (not for the overall limit)
    limit_s: float | None = None  # the time this run was given (what was left of the budget)


def read_events(path: str) -> list[dict[str, Any]]:
    """The runner's events; a torn last line (killed mid-write) is dropped."""
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(ev, dict) and "event" in ev:
                    out.append(ev)
    except OSError:
        pass
    return out


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            return read_tail(fh, limit)
    except OSError:
        return ""


def run_runner(
    python: str,
    environ: Mapping[str, str],
    config: Mapping[str, Any],
    timeout: float,
    workdir: str,
    stall_timeout: float | None = None,
) -> RunnerRun:
    """Run the runner once in ``python`` with ``config``; never raises for what the child does.

    It is killed when ``timeout`` seconds have passed, or when it has appended no event for
    ``stall_timeout`` seconds (one call that hangs must not use up the whole budget).
    """
    n = len([f for f in os.listdir(workdir) if f.startswith("events-")])
    events_path = os.path.join(workdir, f"events-{n}.jsonl")
    cfg_path = os.path.join(workdir, f"config-{n}.json")
    out_path = os.path.join(workdir, f"stdout-{n}.txt")
    err_path = os.path.join(workdir, f"stderr-{n}.txt")
    with open(cfg_path, "w", encoding="utf-8") as fh:
        json.dump({**config, "out": events_path}, fh)
    open(events_path, "w").close()
    t0 = time.monotonic()
    timed_out = stalled = False
    runner = script_file("flashdoctor.actions.smoke", "_runner.py")
    with runner as path, open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = start(
                python, [str(path), cfg_path], environ, stdout=out, stderr=err, what="the smoke runner"
            )
        except TargetScriptError as exc:
            return RunnerRun((), 127, False, "", str(exc), 0.0, limit_s=timeout)
        last_size, last_progress = 0, t0
        try:
            while proc.poll() is None:
                now = time.monotonic()
                try:
                    size = os.path.getsize(events_path)
                except OSError:
                    size = last_size
                if size != last_size:
                    last_size, last_progress = size, now
                stalled = stall_timeout is not None and now - last_progress > stall_timeout
                if now - t0 > timeout or stalled:
                    timed_out = True
                    stop(proc)  # with whatever it started (FA4's JIT compiler, a ptxas)
                    break
                time.sleep(0.05)
        except BaseException:  # Ctrl-C: the runner is in a session of its own and would outlive us
            stop(proc)
            raise
    return RunnerRun(
        events=tuple(read_events(events_path)),
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout_tail=_tail(out_path),
        stderr_tail=_tail(err_path),
        elapsed_s=time.monotonic() - t0,
        stalled=stalled,
        limit_s=timeout,
    )


def in_flight(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """What the runner was doing when its events stop: the last started thing that never finished.

    Returns {"gpu", "backend", "case", "phase"} ("phase" is "import", "reference", "check", "time",
    "input", "backend" or "gpu"), or None when nothing was in flight (before torch, after "done").
    """
    cur: dict[str, Any] | None = None
    for e in events:
        kind = e.get("event")
        if kind == "variant_import":
            cur = {"gpu": None, "backend": e.get("backend"), "case": None, "phase": "import"}
        elif kind == "variant":
            cur = None
        elif kind == "gpu":
            cur = {"gpu": e.get("gpu"), "backend": None, "case": None, "phase": "gpu"}
        elif kind == "backend_start":
            cur = {"gpu": e.get("gpu"), "backend": e.get("backend"), "case": None, "phase": "backend"}
        elif kind == "case_start":
            cur = {
                "gpu": e.get("gpu"),
                "backend": e.get("backend"),
                "case": e.get("case"),
                "phase": e.get("phase"),
            }
        elif (
            kind in ("result", "timing", "input_check")
            and cur is not None
            and cur.get("phase") != "reference"
        ):
            cur = {"gpu": e.get("gpu"), "backend": e.get("backend"), "case": None, "phase": "backend"}
        elif kind == "reference" or kind == "backend_done":
            cur = {"gpu": e.get("gpu"), "backend": None, "case": None, "phase": "gpu"}
        elif kind == "done":
            cur = None
    return cur


def run_with_restarts(
    python: str,
    environ: Mapping[str, str],
    config: Mapping[str, Any],
    timeout: float,
    stall_timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Run the runner until it finishes, restarting it without what crashed or hung.

    ``timeout`` bounds the whole (all runs); ``stall_timeout`` bounds one call (no event for that
    long): a backend that hangs is recorded as a timeout and the others still run. A crash in one case
    leaves that case out of the next run (the backend's other cases still run); a backend whose cases
    crash MAX_CASE_CRASHES times, or that hangs, or that crashes outside a case, is left out.

    Returns every event of every run plus the orchestrator's own: "run" (one per process), "crash" /
    "timeout" (what was in flight when a run died; ``timeout_s`` is the limit that run had, ``budget_s``
    the whole) and "runner_failed" (a death with nothing in flight).
    """
    deadline = time.monotonic() + timeout
    skip: list[list[Any]] = [list(s) for s in config.get("skip", [])]
    skip_cases: list[list[Any]] = [list(s) for s in config.get("skip_cases", [])]
    skip_variants: list[str] = list(config.get("skip_variants", []))
    prewarm: list[str] = list(config.get("prewarm", []))
    crashed_cases: dict[str, int] = {}
    all_events: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flashdoctor-smoke-") as workdir:
        for attempt in range(MAX_RUNS):
            left = deadline - time.monotonic()
            cfg = {
                **config,
                "skip": skip,
                "skip_cases": skip_cases,
                "skip_variants": skip_variants,
                "prewarm": prewarm,
            }
            run = run_runner(python, environ, cfg, left, workdir, stall_timeout)
            all_events.extend(run.events)
            sig = exit_signal(run.returncode)
            all_events.append(
                {
                    "event": "run",
                    "attempt": attempt,
                    "returncode": run.returncode,
                    "signal": sig,
                    "timed_out": run.timed_out,
                    "elapsed_s": round(run.elapsed_s, 3),
                }
            )
            finished = any(
                e.get("event") in ("done", "no_gpu", "no_torch", "torch_import_failed", "fatal")
                for e in run.events
            )
            if finished and not run.timed_out:
                if run.returncode != 0:
                    # Some CUDA libraries crash while the interpreter shuts down; the work was done.
                    all_events.append(
                        {
                            "event": "note",
                            "message": f"the runner exited with {sig or run.returncode} after finishing",
                        }
                    )
                break
            if prewarm and _prewarm_open(run.events) and deadline - time.monotonic() >= MIN_RESTART_S:
                # A background cuDNN compile was running: which thread died is unknown. Run again
                # without it (nothing left out) and let the crash, if it comes back, name its backend.
                prewarm = []
                all_events.append(
                    {
                        "event": "note",
                        "message": "the runner died while cuDNN compiled in the background; "
                        "running again without the background compile",
                    }
                )
                _skip_finished(run.events, skip)
                continue
            where = in_flight(run.events)
            if where is None or (where.get("phase") == "gpu" and where.get("backend") is None):
                all_events.append(
                    {
                        "event": "runner_failed",
                        "why": "timed out" if run.timed_out else (sig or f"exit {run.returncode}"),
                        "returncode": run.returncode,
                        "where": where,
                        "stderr_tail": run.stderr_tail,
                    }
                )
                break
            all_events.append(
                {
                    "event": "timeout" if run.timed_out else "crash",
                    **where,
                    "returncode": run.returncode,
                    "rc": run.returncode,
                    "signal": sig,
                    # The limit this run had: the stall limit, or what was left of the budget when it
                    # started (a restarted runner gets less than the whole).
                    "timeout_s": round(
                        stall_timeout if run.stalled and stall_timeout else (run.limit_s or timeout), 1
                    ),
                    "budget_s": round(timeout, 1),
                    "attempt": attempt,
                    "stalled": run.stalled,
                    "stderr_tail": run.stderr_tail,
                }
            )
            if run.timed_out and deadline - time.monotonic() < MIN_RESTART_S:
                break  # the time budget is spent
            backend = where.get("backend")
            if where["phase"] == "import":
                skip_variants.append(str(backend))
            elif backend in (None, "reference"):
                break  # not a backend's fault: nothing to leave out
            elif (
                not run.timed_out
                and where.get("case")
                and where["phase"] in ("check", "time")
                and crashed_cases.get(str(backend), 0) + 1 < MAX_CASE_CRASHES
            ):
                # Leave out the case, on every GPU (what crashed one would crash the next); the
                # backend's other cases run in the next runner.
                crashed_cases[str(backend)] = crashed_cases.get(str(backend), 0) + 1
                skip_cases.append(["*", backend, where["case"]])
            else:
                skip.append(["*", backend])
            _skip_finished(run.events, skip)
            if deadline - time.monotonic() < MIN_RESTART_S:
                all_events.append(
                    {"event": "note", "message": "no time left to restart the runner after the crash"}
                )
                break
        else:
            all_events.append(
                {
                    "event": "note",
                    "message": f"the runner was started {MAX_RUNS} times; what it had not reached was not run",
                }
            )
    return all_events


def _prewarm_open(events: Sequence[dict[str, Any]]) -> bool:
    """True when the run's background warm-up started and never finished."""
    open_ = False
    for e in events:
        if e.get("event") == "prewarm_start":
            open_ = True
        elif e.get("event") == "prewarm_done":
            open_ = False
    return open_


def _skip_finished(events: Sequence[dict[str, Any]], skip: list[list[Any]]) -> None:
    """Backends finished in an earlier run are not run again."""
    for e in events:
        if e.get("event") == "backend_done":
            pair = [e.get("gpu"), e.get("backend")]
            if pair not in skip:
                skip.append(pair)


def sdpa_names(backends: Sequence[str]) -> dict[str, str]:
    """Backend name -> the torch.nn.attention.SDPBackend member it forces (knowledge.backends)."""
    return {b: str(backend_info(b)["sdpa"]) for b in backends if backend_info(b)["kind"] == "sdpa"}
