"""Run a build command: everything it prints goes to a log file, ninja's ``[N/M]`` lines drive a
progress display with an ETA, and a failure is summarised as the first real compiler error plus a
diagnosis with a fix from flashdoctor.decide.explain (data/signatures.json), tailored with the build's MAX_JOBS.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flashdoctor.decide.explain import Diagnosis, explain_text
from flashdoctor.model.environment import Environment

# ninja's default status line, "[3/8] /usr/local/cuda/bin/nvcc ... -c .../flash_fwd_hdim128_bf16_sm80.cu ..."
_NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]\s*(.*)$")
_UNIT = re.compile(r"([\w./+-]+\.(?:cu|cpp|c|cc))\b")


@dataclass(frozen=True)
class Step:
    done: int
    total: int
    unit: str | None  # the source file the step names, if any


def parse_ninja_line(line: str) -> Step | None:
    """A ninja status line -> Step; anything else -> None."""
    m = _NINJA.match(line)
    if not m:
        return None
    done, total = int(m.group(1)), int(m.group(2))
    if total <= 0 or done > total:
        return None
    rest = m.group(3)
    units = _UNIT.findall(rest)
    # nvcc/c++ command lines name the source after "-c"; take that one, else the last source named.
    src = None
    if " -c " in rest:
        after = rest.split(" -c ", 1)[1]
        found = _UNIT.findall(after)
        src = found[0] if found else None
    if src is None and units:
        src = units[-1]
    return Step(done, total, os.path.basename(src) if src else None)


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Remaining time at the observed pace; None before the first step finished."""
    if done <= 0 or total <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


class ProgressSink(Protocol):
    def step(self, step: Step, elapsed: float) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    def step(self, step: Step, elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


def _fmt(sec: float | None) -> str:
    if sec is None:
        return "?"
    sec = int(sec)
    return f"{sec // 60}:{sec % 60:02d}"


class LineProgress:
    """Plain lines (a log, a pipe, CI): one per ninja step."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self.write = write

    def step(self, step: Step, elapsed: float) -> None:
        pct = 100 * step.done // step.total
        eta = eta_seconds(step.done, step.total, elapsed)
        unit = f"  {step.unit}" if step.unit else ""
        self.write(f"[{step.done}/{step.total}] {pct:3d}%  elapsed {_fmt(elapsed)}  eta {_fmt(eta)}{unit}")

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar (a terminal)."""

    def __init__(self, console: Any, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[unit]}", style="dim"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=None, unit="")
        self.progress.start()

    def step(self, step: Step, elapsed: float) -> None:
        self.progress.update(self.task, completed=step.done, total=step.total, unit=step.unit or "")

    def close(self) -> None:
        self.progress.stop()


# -- failure summary --------------------------------------------------------------------------------
# Lines that report a failure of something else: never "the" error.
_CONSEQUENCES = re.compile(
    r"error: subprocess-exited-with-error|ERROR: Failed building wheel|Failed to build|ninja: build stopped|"
    r"Error compiling objects for extension|error: command .* failed with exit (code|status)|"
    r"ERROR: Failed to build installable wheels|note: This error originates from a subprocess|"
    r"^\s*(╰─>|×)|FAILED: |subprocess\.CalledProcessError",
    re.IGNORECASE,
)
_ERRORS = [
    re.compile(r"^(?P<loc>\S+?):(\d+)(:\d+)?: (fatal )?error: (?P<msg>.*)$"),  # gcc / clang
    re.compile(r"^(?P<loc>\S+?)\((\d+)\): (catastrophic )?error(\s+#\w+-D)?: (?P<msg>.*)$"),  # nvcc / EDG
    re.compile(r"^(?P<loc>nvcc) (fatal|error)\s*: (?P<msg>.*)$"),
    re.compile(r"^(?P<loc>ptxas) (fatal|error)\s*: (?P<msg>.*)$"),
    # Searched, never anchored with .* on both sides: that made each search quadratic in the line's
    # length (27 s for 300 nvcc command lines of 3.5k characters on a failed build).
    re.compile(
        r"Killed|killed by signal|SIGKILL|out of memory|Cannot allocate memory"
    ),  # also Signals.SIGKILL
    re.compile(r"/ld: .*undefined reference|undefined reference to "),
    re.compile(r"^(?P<loc>)(?P<msg>(\w+\.)*\w*(Error|Exception): .*)$"),  # Python: setup.py raised
]


# Compiler-like errors first (earliest wins), then OOM kills, link errors, Python exceptions.
_GROUPS = (_ERRORS[:4], _ERRORS[4:5], _ERRORS[5:6], _ERRORS[6:])


@dataclass(frozen=True)
class FirstError:
    line_no: int  # 1-based, in the log
    text: str  # the error line and the lines that show where (source line, caret)


def first_error(lines: Sequence[str]) -> FirstError | None:
    """The first line that is a real error (a compiler's, ptxas', an OOM kill, a link error, a Python
    exception of setup.py), not one of the many lines reporting that something failed. Compiler
    errors win over an earlier traceback line that only says the compile failed."""
    for group in _GROUPS:
        for i, raw in enumerate(lines):
            line = raw.rstrip()
            if _CONSEQUENCES.search(line):
                continue
            if any(p.search(line.strip()) for p in group):
                ctx = [line]
                for nxt in lines[i + 1 : i + 4]:
                    s = nxt.rstrip()
                    if (
                        not s
                        or _NINJA.match(s)
                        or _CONSEQUENCES.search(s)
                        or any(p.search(s.strip()) for p in _ERRORS[:4])
                    ):
                        break
                    ctx.append(s)
                return FirstError(i + 1, "\n".join(ctx))
    return None


def diagnose(
    text: str, env: Environment | None = None, fields: Mapping[str, str] | None = None
) -> list[Diagnosis]:
    """Diagnoses of a build log, best first: the explain engine's (data/signatures.json, the one place
    for failure knowledge). ``fields`` are what only the build knows, for the fixes: ``jobs_used`` (the
    MAX_JOBS it ran with) and ``fewer_jobs`` (a smaller value to try), see explain.tailor.CALLER_FIELDS."""
    return explain_text(text, env, fields=fields, here=True)  # the build ran on ``env``'s machine


# -- running ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    returncode: int
    seconds: float
    log_path: Path
    steps_done: int
    steps_total: int
    compiled: tuple[str, ...]  # source files named by ninja steps, in order
    first_error: FirstError | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_build(
    cmd: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    progress: ProgressSink | None = None,
    diag_env: Environment | None = None,
    diag_fields: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Run ``cmd``; stdout+stderr go to ``log_path`` line by line; ninja lines feed ``progress``.
    Ctrl-C stops the whole process group and re-raises KeyboardInterrupt."""
    progress = progress or NullProgress()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = clock()
    done = total = 0
    compiled: list[str] = []
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {' '.join(cmd)}\n# cwd: {cwd}\n")
        for k in sorted(env):
            if k in ("MAX_JOBS", "NVCC_THREADS", "CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "PATH") or k.startswith(
                ("FLASH_", "BUILD_")
            ):
                log.write(f"# {k}={env[k]}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=str(cwd),
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=os.name
                != "nt",  # Ctrl-C: we stop the whole tree (pip, ninja, nvcc) ourselves
            )
        except OSError as exc:
            log.write(f"cannot start {cmd[0]}: {exc}\n")
            return RunResult(127, 0.0, log_path, 0, 0, (), FirstError(1, f"cannot start {cmd[0]}: {exc}"))
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                step = parse_ninja_line(line)
                if step is not None:
                    done, total = max(done, step.done), step.total
                    if step.unit:
                        compiled.append(step.unit)
                    progress.step(Step(done, total, step.unit), clock() - start)
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            log.write("\n[flashdoctor: interrupted]\n")
            progress.close()
            raise
        finally:
            if proc.poll() is None:
                _stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
    progress.close()
    seconds = clock() - start
    if rc == 0:
        return RunResult(0, seconds, log_path, done, total, tuple(compiled))
    text = log_path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    return RunResult(
        rc,
        seconds,
        log_path,
        done,
        total,
        tuple(compiled),
        first_error(lines),
        tuple(diagnose(text, diag_env, diag_fields)),
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if os.name == "nt":  # no process groups: stop pip, ninja is its child
        proc.terminate()
        proc.wait()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
