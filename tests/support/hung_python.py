"""A `--python` that never answers, and the checks around it: the probe's interpreter it stands for runs
in a session of its own, so a test can see whether flashdoctor stops it or leaves it running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def hung_python(directory: Path) -> tuple[Path, Path]:
    """An executable ``python`` in ``directory`` that writes its pid to the returned pid file and sleeps."""
    pidfile = directory / "child.pid"
    hang = directory / "python"
    hang.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 300\n')
    hang.chmod(0o755)
    return hang, pidfile


def started(pidfile: Path, within: float = 60.0) -> int:
    """The pid of the hung interpreter once it runs (bounded)."""
    deadline = time.monotonic() + within
    while not (pidfile.is_file() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the probe never started"
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    os.kill(pid, 0)  # running
    return pid


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether ``pid`` has exited (and been reaped) within ``within`` seconds; one still running is killed,
    so that the test leaves nothing behind either."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return False


def interrupted(proc: subprocess.Popen[str], sig: int, within: float = 30.0) -> str:
    """Send ``sig`` to ``proc`` (a flashdoctor command) and wait for it to exit (bounded: one still
    running after ``within`` seconds is killed, with its process group); its stderr."""
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=within)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def signal_while_child_runs(
    argv: list[str], env: dict[str, str], cwd: Path, pidfile: Path, sig: int
) -> tuple[subprocess.Popen[str], str, int]:
    """Start the flashdoctor command ``argv`` (in a session of its own, so that the test can kill it all),
    wait until the child it runs writes ``pidfile``, send ``sig``: the command, its stderr, the child's pid."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        text=True,
        start_new_session=True,
    )
    child = started(pidfile, within=120)
    return proc, interrupted(proc, sig), child


@contextlib.contextmanager
def sigterm_once_started(pidfile: Path) -> Iterator[None]:
    """Inside the block, a SIGTERM reaches this process's main thread alone (as `kill PID` or a cancelled CI
    job sends it: the children get nothing) once the child that writes ``pidfile`` runs; it raises
    Terminated, as under flashdoctor's main()."""
    from flashdoctor.errors import Terminated

    main = threading.main_thread().ident
    assert main is not None

    def terminated(signum: int, frame: object) -> None:
        raise Terminated()

    def stop() -> None:
        started(pidfile)
        signal.pthread_kill(main, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, terminated)  # what flashdoctor's main() installs
    sender = threading.Thread(target=stop)
    sender.start()
    try:
        yield
    finally:
        sender.join()
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signal_inside_popen(monkeypatch: pytest.MonkeyPatch, sig: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Inside the block, every subprocess.Popen raises ``sig`` (SIGINT or SIGTERM) in this process right
    after its child is started: the moment a Ctrl-C could land between the fork and the caller holding the
    child. SIGTERM raises Terminated, as under flashdoctor's main(). The block gets the children started,
    so that a test can see what became of one that was never returned to its caller."""
    from flashdoctor.errors import Terminated

    real = subprocess.Popen
    children: list[subprocess.Popen[bytes]] = []

    def popen_then_signal(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = real(*args, **kwargs)  # type: ignore[call-overload]
        children.append(proc)
        signal.raise_signal(getattr(signal, sig))  # the signal lands here, the child already running
        return proc

    def terminated(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)  # what flashdoctor's main() installs
    try:
        with monkeypatch.context() as m:
            m.setattr(subprocess, "Popen", popen_then_signal)
            yield children
    finally:
        signal.signal(signal.SIGTERM, previous)


def stopped_after_a_signal_as_it_starts(
    directory: Path, monkeypatch: pytest.MonkeyPatch, sig: str, start: Callable[[Path], object]
) -> bool:
    """``start(python)`` starts the hung interpreter of ``directory``, and ``sig`` lands inside its Popen:
    whether the child is gone once stop_started (what flashdoctor's exit on Ctrl-C/SIGTERM runs) has run."""
    from flashdoctor.probe import interpreter

    hang, pidfile = hung_python(directory)
    with signal_inside_popen(monkeypatch, sig), pytest.raises(KeyboardInterrupt):
        start(hang)
    child = started(pidfile)
    interpreter.stop_started()
    return gone(child)
