"""The one way flashdoctor runs a script in the target interpreter and reads what it printed.

Every question put to the target interpreter goes through here: the environment probe (_interp.py),
the import test, the build-tools probe, the installer's state (_state.py), ``check --deep`` and the smoke
test's runner (which starts the process here and watches its own event file). A script prints one JSON
object on its last line (behind whatever a sitecustomize or a .pth wrote there at start-up without a
newline); whatever goes wrong is one error type, :class:`TargetScriptError`, whose
``kind`` says which of five things happened:

- ``no-interpreter``: the path names no program that can be run (missing, not executable, not a binary);
- ``signal``: the interpreter was killed by a signal (a segfault in an extension, an abort, the OOM
  killer), also when a wrapper shell reports it as exit 128+N;
- ``timeout``: it did not finish in time (it is killed with everything it started);
- ``exit``: it exited non-zero (a traceback: the script or an import failed);
- ``bad-output``: it exited 0 without a JSON object on its last line (not a Python, or a broken one).
- ``unsupported``: it is a Python flashdoctor does not probe (Python 2: the environment probe says so).

The process runs in a session of its own, so that a timeout kills what it started too (a JIT compiler,
a ptxas); output is kept in temporary files and only its tail is read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal as _signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any, Literal

from flashdoctor.probe.system import interrupts_held, signal_name, spawn, stop_process

FailureKind = Literal["no-interpreter", "signal", "timeout", "exit", "bad-output", "unsupported"]

STDOUT_LIMIT = 16 * 2**20  # a script's JSON line (the installer's state lists files: can be large)
STDERR_LIMIT = 8000  # a traceback's tail
# Signals a wrapper shell reports as exit 128+N: crashes, and the OOM killer's SIGKILL.
_SHELL_SIGNALS = {int(s): s.name for s in (_signal.SIGSEGV, _signal.SIGABRT, _signal.SIGBUS, _signal.SIGILL)}
_SHELL_SIGNALS.update({int(_signal.SIGFPE): "SIGFPE", int(_signal.SIGKILL): "SIGKILL"})


class TargetScriptError(Exception):
    """A script could not be run to a result in the target interpreter; ``str()`` is one clear line."""

    def __init__(
        self,
        python: str,
        what: str,
        kind: FailureKind,
        detail: str = "",
        *,
        returncode: int | None = None,
        signal: str | None = None,
        timeout_s: float | None = None,
        stderr: str = "",
    ) -> None:
        self.python = python
        self.what = what
        self.kind: FailureKind = kind
        self.detail = detail
        self.returncode = returncode
        self.signal = signal
        self.timeout_s = timeout_s
        self.stderr = stderr
        super().__init__(self.message)

    def _words(self, form: int) -> str:
        detail = self.detail
        return _WORDING[self.kind][form].format(
            python=self.python,
            what=self.what,
            signal=self.signal,
            timeout_s=self.timeout_s,
            returncode=self.returncode,
            detail=detail,
            tail=f": {detail}" if detail else "",
            paren=f" ({detail})" if detail else "",
        )

    @property
    def short(self) -> str:
        """What happened, without the interpreter's name: 'the interpreter was killed by SIGSEGV'."""
        return self._words(0)

    @property
    def message(self) -> str:
        return self._words(1)


# How each kind of failure is told: (short, without the interpreter's name; the full message).
_WORDING: dict[FailureKind, tuple[str, str]] = {
    "no-interpreter": (
        "cannot run {python}: {detail}",
        "cannot run the target interpreter {python}: {detail}",
    ),
    "signal": (
        "the interpreter was killed by {signal}",
        "the target interpreter {python} was killed by {signal} while running {what}",
    ),
    "timeout": (
        "did not finish within {timeout_s:g} s (killed)",
        "{what} did not finish within {timeout_s:g} s in the target interpreter {python}",
    ),
    "exit": (
        "exit {returncode}{tail}",
        "{what} failed in the target interpreter {python} (exit {returncode}){tail}",
    ),
    "bad-output": (
        "printed no result{paren}",
        "{what} printed no result in the target interpreter {python}{paren}",
    ),
    "unsupported": ("{detail}", "{detail}"),
}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def exit_signal(returncode: int | None) -> str | None:
    """The signal that ended a process: rc -N, or 128+N from a wrapper shell for a crash signal."""
    name = signal_name(returncode)
    if name is None and returncode is not None and returncode - 128 in _SHELL_SIGNALS:
        name = _SHELL_SIGNALS[returncode - 128]
    return name


@dataclass(frozen=True)
class TargetRun:
    """One finished run: exit status, output tails, and what (if anything) went wrong."""

    python: str
    what: str
    returncode: int | None  # None: it never started
    stdout: str
    stderr: str
    timed_out: bool
    timeout_s: float
    elapsed_s: float
    start_error: str | None = None

    @property
    def signal(self) -> str | None:
        return exit_signal(self.returncode)

    def failure(self) -> TargetScriptError | None:
        """The error for a run that did not exit 0 in time; None when it did."""
        return classify(
            self.python,
            self.what,
            self.returncode,
            timed_out=self.timed_out,
            timeout_s=self.timeout_s,
            stderr=self.stderr,
            start_error=self.start_error,
        )

    def result(self) -> dict[str, Any]:
        """The JSON object on the last line of its output; raises TargetScriptError otherwise."""
        failure = self.failure()
        if failure is not None:
            raise failure
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        if not lines:
            raise TargetScriptError(self.python, self.what, "bad-output", "no output", returncode=0)
        try:
            doc = json.loads(lines[-1])
        except (ValueError, RecursionError) as exc:  # not JSON, or nested deeper than Python's stack
            doc = _after_banner(lines[-1])
            if doc is None:
                raise TargetScriptError(
                    self.python, self.what, "bad-output", f"its last line is not JSON: {exc}", returncode=0
                ) from None
        if not isinstance(doc, dict):
            raise TargetScriptError(
                self.python, self.what, "bad-output", "its last line is not a JSON object", returncode=0
            )
        return doc


def _after_banner(line: str) -> dict[str, Any] | None:
    """The JSON object that ends ``line`` behind text written before it without a newline (a
    sitecustomize or a .pth printing a banner at start-up); None when no object ends it."""
    decoder = json.JSONDecoder()
    start = line.find("{", 1)  # the whole line is not JSON
    for _ in range(64):  # a banner's braces, not every brace of a huge line
        if start < 0:
            break
        try:
            doc, end = decoder.raw_decode(line, start)
        except (ValueError, RecursionError):
            doc, end = None, -1
        if isinstance(doc, dict) and line[end:].strip() == "":
            return doc
        start = line.find("{", start + 1)
    return None


def classify(
    python: str,
    what: str,
    returncode: int | None,
    *,
    timed_out: bool = False,
    timeout_s: float | None = None,
    stderr: str = "",
    start_error: str | None = None,
) -> TargetScriptError | None:
    """The one reading of how a target process ended (None: it exited 0 in time)."""
    if start_error is not None:
        return TargetScriptError(python, what, "no-interpreter", start_error, stderr=stderr)
    if timed_out:
        return TargetScriptError(
            python, what, "timeout", returncode=returncode, timeout_s=timeout_s, stderr=stderr
        )
    sig = exit_signal(returncode)
    if sig is not None:
        return TargetScriptError(python, what, "signal", returncode=returncode, signal=sig, stderr=stderr)
    if returncode in (126, 127) and not stderr.lstrip().startswith("Traceback"):
        # A wrapper shell that could not run the interpreter it names.
        return TargetScriptError(
            python, what, "no-interpreter", _last_line(stderr) or f"exit {returncode}", stderr=stderr
        )
    if returncode:
        return TargetScriptError(
            python, what, "exit", _last_line(stderr), returncode=returncode, stderr=stderr
        )
    return None


def start(
    python: str,
    args: Sequence[str],
    environ: Mapping[str, str],
    *,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    what: str = "a script",
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` in a session of its own (stdin closed), recorded for stop_started: the one
    way flashdoctor starts a child that runs long out of the terminal's reach (a target script, the smoke
    runner, a build's pip; a command whose output is captured, install's pip or git, runs through
    system.run_process). Raises TargetScriptError (no-interpreter) when ``python`` cannot be started."""
    global _STARTING
    stopping = TargetScriptError(python, what, "signal", "flashdoctor is stopping", signal="SIGKILL")
    with interrupts_held():
        with _STARTED_LOCK:
            if _STOPPING.is_set():  # a worker after Ctrl-C/SIGTERM stopped the others: the exit would wait
                raise stopping
            _STARTING += 1
        try:
            try:
                proc = spawn([python, *args], environ, own_group=True, stdout=stdout, stderr=stderr, cwd=cwd)
            except OSError as exc:
                raise TargetScriptError(python, what, "no-interpreter", exc.strerror or str(exc)) from None
            with _STARTED_LOCK:
                late = _STOPPING.is_set()
                if not late:
                    _STARTED.add(proc)
            if late:  # stop_started came while Popen ran (in a worker): it waits for this stop
                stop(proc)
                raise stopping
        finally:
            with _STARTED_LOCK:
                _STARTING -= 1
                _STARTED_CHANGED.notify_all()
    return proc


# Every target script started and not yet reaped: a Ctrl-C or SIGTERM that reaches the main thread while
# worker threads wait on them (probe_environment's pool) stops them all, or leaving the pool would wait
# for each to time out (INTERP_TIMEOUT) and the child, in a session of its own, would outlive us.
_STARTED: set[subprocess.Popen[bytes]] = set()
# Re-entrant: a cluster rank's SIGTERM handler calls stop_started in the main thread, which may be holding it.
_STARTED_LOCK = threading.RLock()
# Set by stop_started (the process is leaving): a worker starts no script after it (leaving would join that
# worker for the script's whole timeout, INTERP_TIMEOUT), and one inside Popen then stops its child itself.
_STOPPING = threading.Event()
# Starts in flight (inside Popen: the child may run, its pid not yet known), each in a worker thread; a
# cluster rank leaves by os._exit without joining its threads, so stop_started waits for them.
_STARTING = 0
_STARTED_CHANGED = threading.Condition(_STARTED_LOCK)
START_WAIT = 10.0  # the most stop_started waits for them (a Popen returns within milliseconds)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a started process and everything in its session, and reap it (and close the pipes it was
    started with: a build's output, of no more use; one stopped by stop_started has no other owner)."""
    stop_process(proc, own_group=True)
    _forget(proc)


def _forget(proc: subprocess.Popen[bytes]) -> None:
    """``proc`` is reaped: stop_started has nothing more to do with it."""
    with _STARTED_LOCK:
        _STARTED.discard(proc)


def stop_started() -> None:
    """Stop every target script this process started that is still running, and any started from now on
    (only called as the process leaves: Ctrl-C, SIGTERM, a cluster rank's end). One a worker thread is
    starting at this moment is stopped by that worker before this returns (bounded by START_WAIT): a
    caller that leaves by os._exit next joins no thread."""
    with _STARTED_LOCK:
        _STOPPING.set()
        procs = list(_STARTED)
        _STARTED.clear()  # a nested call (a signal handler's) does not wait on one this call is stopping
    for proc in procs:
        stop(proc)
    with _STARTED_CHANGED:
        _STARTED_CHANGED.wait_for(lambda: _STARTING == 0, timeout=START_WAIT)


@contextlib.contextmanager
def stopped_on_interrupt() -> Iterator[None]:
    """Around code whose worker threads wait on target scripts: on Ctrl-C or SIGTERM (an exception that is
    not an Exception) in the main thread, stop them all before the threads are joined."""
    try:
        yield
    except Exception:
        raise
    except BaseException:
        stop_started()
        raise


def wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``proc`` to exit, at most ``timeout`` seconds (then subprocess.TimeoutExpired), waking
    the moment it exits. Popen.wait(timeout) polls with sleeps growing to 50 ms, which is up to 50 ms
    late for a child that takes a tenth of a second (the environment probe); on Linux a pidfd says when
    the child has exited. Elsewhere, or where the kernel has no pidfd_open, Popen's own wait."""
    try:
        fd = os.pidfd_open(proc.pid)  # type: ignore[attr-defined,unused-ignore]  # Linux only
    except (AttributeError, OSError):
        proc.wait(timeout=timeout)
        _forget(proc)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(max(0, math.ceil(timeout * 1000)) if math.isfinite(timeout) else None):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    proc.wait()  # it has exited: reap it
    _forget(proc)


def read_tail(fh: IO[bytes], limit: int) -> str:
    """The last ``limit`` bytes written to ``fh``, decoded (bad bytes replaced)."""
    fh.flush()
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", errors="replace")


class Launched:
    """A target process started when this is made, ahead of when its answer is needed: it runs on its
    own core while the caller goes on (imports, reading the wheel index). ``finish`` waits for it,
    ``cancel`` stops it; output goes to private temporary files, read bounded. Cleanup (``stack``) runs
    at either. run_target is ``Launched(...).finish()``."""

    def __init__(
        self,
        python: str,
        args: Sequence[str],
        environ: Mapping[str, str],
        timeout: float,
        what: str,
        stack: contextlib.ExitStack | None = None,
    ) -> None:
        self.python, self.what, self.timeout = python, what, timeout
        self._stack = stack or contextlib.ExitStack()
        self._t0 = time.monotonic()
        self._out = self._stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
        self._err = self._stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
        self._start_error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = start(python, args, environ, stdout=self._out, stderr=self._err, what=what)
        except TargetScriptError as exc:
            self._start_error = exc.detail
        except BaseException:  # Ctrl-C as it started: no caller will finish or cancel (stop_started stops it)
            self._stack.close()
            raise

    def finish(self) -> TargetRun:
        """Wait for the process (to ``timeout`` after its start) and read what it wrote."""
        with self._stack:
            proc = self._proc
            if proc is None:
                return TargetRun(
                    self.python, self.what, None, "", "", False, self.timeout, 0.0, self._start_error
                )
            timed_out = False
            try:
                wait(proc, max(0.0, self.timeout - (time.monotonic() - self._t0)))
            except subprocess.TimeoutExpired:
                timed_out = True
                stop(proc)
            except BaseException:  # Ctrl-C: the child is in its own session and would outlive us
                stop(proc)
                raise
            return TargetRun(
                python=self.python,
                what=self.what,
                returncode=proc.returncode,
                stdout=read_tail(self._out, STDOUT_LIMIT),
                stderr=read_tail(self._err, STDERR_LIMIT),
                timed_out=timed_out,
                timeout_s=self.timeout,
                elapsed_s=time.monotonic() - self._t0,
            )

    def cancel(self) -> None:
        """Stop it (a caller that will not ``finish``: an error or Ctrl-C on the way; the child is in a
        session of its own, so the terminal's Ctrl-C does not reach it). Harmless after ``finish``."""
        with self._stack:
            if self._proc is not None and self._proc.poll() is None:
                stop(self._proc)


def run_target(
    python: str, args: Sequence[str], environ: Mapping[str, str], timeout: float, what: str
) -> TargetRun:
    """Run ``python ARGS`` to its end or ``timeout``; never raises for what the interpreter does."""
    return Launched(python, args, environ, timeout, what).finish()


@contextlib.contextmanager
def script_file(package: str, name: str) -> Iterator[Path]:
    """The path of a script shipped in ``package`` (a real file, also from a zipped install)."""
    with resources.as_file(resources.files(package).joinpath(name)) as path:
        yield Path(path)


def run_script(
    python: str,
    script: Path | str,
    args: Sequence[str],
    environ: Mapping[str, str],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Run a script (a file, or code when ``script`` is a str) in the target interpreter and return
    the JSON object it printed last. Raises TargetScriptError for anything else."""
    argv = [str(script)] if isinstance(script, Path) else ["-c", script]
    return run_target(python, [*argv, *args], environ, timeout, what).result()
