"""The action: start the runner in the target interpreter, with a time limit, and survive its crashes.

The runner appends one JSON event a line to a file, flushed after each, so whatever it measured before
a segfault or a timeout is kept. When it dies (a signal, or an exit without its "done" event), the case
in flight is recorded as a crash (or timeout) of its backend, and a fresh runner continues with that
backend left out — one broken variant cannot hide the others' results. This module starts processes;
the decisions about the events are in ``judge`` (smoke) and ``bench``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flashdoctor.model.cases import backend_info
from flashdoctor.probe.system import signal_name

MAX_RUNS = 4  # the first run plus up to three restarts after crashes
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
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
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
    script = resources.files("flashdoctor.actions.smoke").joinpath("_runner.py")
    t0 = time.monotonic()
    timed_out = stalled = False
    with resources.as_file(script) as path, open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            # A session of its own, so that a timeout kills whatever the runner started too (FA4's
            # JIT compiler, a ptxas).
            proc = subprocess.Popen(
                [python, str(path), cfg_path],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(environ),
                start_new_session=True,
            )
        except OSError as exc:
            return RunnerRun((), 127, False, "", f"cannot run {python}: {exc}", 0.0)
        last_size, last_progress = 0, t0
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
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait()
                break
            time.sleep(0.05)
    return RunnerRun(
        events=tuple(read_events(events_path)),
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout_tail=_tail(out_path),
        stderr_tail=_tail(err_path),
        elapsed_s=time.monotonic() - t0,
        stalled=stalled,
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
    """Run the runner until it finishes, restarting it without the backend that crashed or hung.

    ``timeout`` bounds the whole (all runs); ``stall_timeout`` bounds one call (no event for that
    long): a backend that hangs is recorded as a timeout and the others still run.

    Returns every event of every run plus the orchestrator's own: "run" (one per process), "crash" /
    "timeout" (what was in flight when a run died) and "runner_failed" (a death with nothing in flight).
    """
    deadline = time.monotonic() + timeout
    skip: list[list[Any]] = [list(s) for s in config.get("skip", [])]
    skip_variants: list[str] = list(config.get("skip_variants", []))
    prewarm: list[str] = list(config.get("prewarm", []))
    all_events: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flashdoctor-smoke-") as workdir:
        for attempt in range(MAX_RUNS):
            left = deadline - time.monotonic()
            cfg = {**config, "skip": skip, "skip_variants": skip_variants, "prewarm": prewarm}
            run = run_runner(python, environ, cfg, left, workdir, stall_timeout)
            all_events.extend(run.events)
            sig = signal_name(run.returncode)
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
                    "timeout_s": round(stall_timeout if run.stalled and stall_timeout else timeout, 1),
                    "stalled": run.stalled,
                    "stderr_tail": run.stderr_tail,
                }
            )
            if run.timed_out and deadline - time.monotonic() < MIN_RESTART_S:
                break  # the time budget is spent
            if where["phase"] == "import":
                skip_variants.append(str(where["backend"]))
            elif where.get("backend") in (None, "reference"):
                break  # not a backend's fault: nothing to leave out
            else:
                # On every GPU: what crashed one would most likely crash the next, and the
                # restarts are few.
                skip.append(["*", where["backend"]])
            _skip_finished(run.events, skip)
            if deadline - time.monotonic() < MIN_RESTART_S:
                all_events.append(
                    {"event": "note", "message": "no time left to restart the runner after the crash"}
                )
                break
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
    """Backend name -> torch.nn.attention.SDPBackend member, from flashdoctor/data/smoke.json."""
    return {b: str(backend_info(b)["sdpa"]) for b in backends if backend_info(b)["kind"] == "sdpa"}
