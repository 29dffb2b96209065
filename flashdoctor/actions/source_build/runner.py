"""Run a build command: everything it prints goes to a log file, ninja's ``[N/M]`` lines become progress
events (flashdoctor.model.build.BuildProgress: started, step, finished; flashdoctor.render.progress draws
them), and a failure is summarised as the first real compiler error plus a diagnosis with a fix from
flashdoctor.decide.explain (data/signatures.json), tailored with the build's MAX_JOBS. Nothing here draws.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flashdoctor.actions.net.download import open_own_file
from flashdoctor.decide.explain import Diagnosis, explain_text
from flashdoctor.errors import UsageError
from flashdoctor.model.build import BuildProgress, FirstError, RunResult
from flashdoctor.model.environment import Environment
from flashdoctor.probe.interpreter import TargetScriptError, stop
from flashdoctor.probe.interpreter import start as start_child

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


class NullProgress:
    """No one listens."""

    def started(self, total: int | None) -> None:
        pass

    def step(self, done: int, total: int, unit: str | None, elapsed: float) -> None:
        pass

    def finished(self, ok: bool, elapsed: float) -> None:
        pass


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
def run_build(
    cmd: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    progress: BuildProgress | None = None,
    diag_env: Environment | None = None,
    diag_fields: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    expected_steps: int | None = None,
) -> RunResult:
    """Run ``cmd``; stdout+stderr go to ``log_path`` line by line; ``progress`` gets ``started`` (with
    ``expected_steps``, the plan's count), a ``step`` per ninja line and ``finished`` (also on failure or
    Ctrl-C). Ctrl-C stops the whole process group and re-raises KeyboardInterrupt."""
    progress = progress or NullProgress()
    fd = _open_log(log_path)
    start = clock()
    done = total = 0
    compiled: list[str] = []
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {' '.join(cmd)}\n# cwd: {cwd}\n")
        for k in sorted(env):
            if k in ("MAX_JOBS", "NVCC_THREADS", "CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "PATH") or k.startswith(
                ("FLASH_", "BUILD_")
            ):
                log.write(f"# {k}={env[k]}\n")
        log.flush()
        try:
            # The one guarded start (a Ctrl-C as it starts is raised once the child is recorded, and
            # stop_started stops it), in a session of its own: we stop the whole tree (pip, ninja, nvcc).
            proc = start_child(
                cmd[0],
                cmd[1:],
                env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                what="the build",
                cwd=cwd,
            )
        except TargetScriptError as exc:
            log.write(f"cannot start {cmd[0]}: {exc.detail}\n")
            return RunResult(
                127, 0.0, log_path, 0, 0, (), FirstError(1, f"cannot start {cmd[0]}: {exc.detail}")
            )
        progress.started(expected_steps)
        rc: int | None = None
        assert proc.stdout is not None
        out = io.TextIOWrapper(proc.stdout, errors="replace")  # the locale's encoding, as text=True read it
        try:
            for line in out:
                log.write(line)
                log.flush()
                step = parse_ninja_line(line)
                if step is not None:
                    done, total = max(done, step.done), step.total
                    if step.unit:
                        compiled.append(step.unit)
                    progress.step(done, total, step.unit, clock() - start)
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            log.write("\n[flashdoctor: interrupted]\n")
            raise
        finally:
            _stop(proc)  # once it has exited: only reaped and forgotten
            out.close()
            progress.finished(rc == 0, clock() - start)
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


def _open_log(path: Path) -> int:
    """The log, emptied, as the install log is opened: never through a link planted at its predictable
    name (<cache>/logs/build-<variant>-<profile>.log), only a regular file of this user. UsageError
    (exit 2) before anything runs when it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_own_file(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(
            f"cannot write the build log {path}: {exc.strerror or exc}",
            hint="--log FILE names a regular file of yours (a link is not followed)",
        ) from None
    os.ftruncate(fd, 0)
    return fd


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the build and its session: SIGTERM first (pip removes its temporary directories), then what
    is left after 10 s is killed and the build reaped and forgotten by interpreter.stop."""
    if proc.poll() is None:
        if os.name == "nt":  # no process groups: stop pip, ninja is its child
            proc.terminate()
            proc.wait()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    stop(proc)
