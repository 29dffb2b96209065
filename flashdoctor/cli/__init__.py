"""Command line: parse options, call one service, render, return an exit code. No decisions here.

One module per command group (check, install + lock, build, wheels, smoke + bench, explain); the options
they share are declared once in options.py. This module holds the group and the entry point: user errors
are one message and their exit code, bugs exit 3 with a crash log (credentials redacted), a dependency
that cannot be imported exit 2 with the pip command, Ctrl-C 130, SIGTERM 143 (after the same clean-up).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import re
import signal
import stat
import sys
import traceback
from collections.abc import Sequence

import click

from flashdoctor import __version__
from flashdoctor.cli.build import build
from flashdoctor.cli.check import check
from flashdoctor.cli.explain import explain
from flashdoctor.cli.install import install, lock
from flashdoctor.cli.options import AS_MODULE, examples, refuse_empty_values
from flashdoctor.cli.smoke import bench, smoke
from flashdoctor.cli.wheels import wheels
from flashdoctor.errors import (
    EXIT_HUNG_UP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    FlashdoctorError,
    Terminated,
    missing_dependency,
)
from flashdoctor.render.text import echo, in_github_actions


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=examples(
        "flashdoctor check                      # what works here, and what to fix",
        "flashdoctor install --fa2 --dry-run    # the wheel that fits, and why",
        "flashdoctor install --fa2 --yes        # install it, verified, or roll back",
        "flashdoctor smoke                      # run the kernels against a reference",
        'eval "$(_FLASHDOCTOR_COMPLETE=bash_source flashdoctor)"   # shell completion (bash)',
    ),
)
@click.version_option(__version__, prog_name="flashdoctor")
def cli() -> None:
    """Make FlashAttention work on this machine, and prove that it does."""


for _command in (check, build, wheels, install, lock, smoke, bench, explain):
    cli.add_command(_command)
refuse_empty_values(cli.commands.values())  # --target "" is an error, not "no --target"


# -- entry point ------------------------------------------------------------------------------------
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"\\]+")


def _redacted(text: str) -> str:
    """``text`` with every URL in it redacted (no user:password, no secret-looking query values) and no
    GITHUB_TOKEN value anywhere."""
    from flashdoctor.actions.net.urls import redact, redact_text

    return redact_text(_URL.sub(lambda m: redact(m.group(0)), text), (os.environ.get("GITHUB_TOKEN"),))


def _crash_log(exc: BaseException) -> str | None:
    try:
        from platformdirs import user_log_dir

        d = user_log_dir("flashdoctor", appauthor=False)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "crash.log")
        # os.uname, not platform.platform(): the latter runs `uname -p` in a subprocess
        uname = " ".join(os.uname()) if hasattr(os, "uname") else sys.platform
        text = (
            f"flashdoctor {__version__}\n"
            f"python {sys.version}\nplatform {uname}\n"
            f"argv {sys.argv}\ntime {datetime.datetime.now().isoformat()}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_redacted(text))
        return path
    except (OSError, ImportError):  # the crash report itself must not crash (platformdirs missing)
        return None


def _replace_unencodable() -> None:
    """Standard output and error that cannot encode a character (an ASCII or Latin-1 locale,
    PYTHONIOENCODING=ascii) print '?' for it: "✓" and "·" made every command crash with exit 3."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def _raise_terminated(signum: int, frame: object) -> None:
    if signum == getattr(signal, "SIGHUP", None):
        # The terminal is gone: a write to it fails (EIO), and that OSError would take the place of the
        # hang-up (a crash, exit 1, no clean-up). What went to it goes nowhere now; files and pipes stay.
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                if stat.S_ISCHR(os.fstat(fd).st_mode):  # a terminal (isatty fails on a hung-up one)
                    os.dup2(null, fd)
            os.close(null)
    raise Terminated(signal.Signals(signum).name)


# Raised as Terminated: SIGTERM, and SIGHUP (the terminal closed: Python's default would end the process at
# once, and install's pip, in a session of its own, would go on changing the environment).
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def main(argv: Sequence[str] | None = None, *, as_module: bool = False) -> None:
    """Console-script entry point. User errors: one message and their exit code; bugs: exit 3 with a
    log to paste into an issue; Ctrl-C: 130; SIGTERM: 143, after the clean-up Ctrl-C gets (Python's
    default would end the process at once: an install half done, a probe's child left running).
    ``as_module``: run as ``python -m flashdoctor`` (that Python is the default target: cli.options.machine)."""
    _replace_unencodable()
    previous = {}
    for signum in _TERMINATING:
        if signum == getattr(signal, "SIGHUP", None) and signal.getsignal(signum) == signal.SIG_IGN:
            continue  # started under nohup: a hang-up is to be ignored
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread (an embedding program): its handlers stay
            break
    try:
        _main(argv, as_module=as_module)
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a C handler, which Python cannot put back
                signal.signal(signum, handler)


def _annotate(text: str, code: int) -> None:
    """In GitHub Actions, the error that ends a command is an ::error annotation too, so that the run's
    page says why, not only "Process completed with exit code 2"."""
    if in_github_actions():
        from flashdoctor.render.github import annotation

        click.echo(annotation("error", f"flashdoctor (exit code {code})", text), err=True)


def _main(argv: Sequence[str] | None, *, as_module: bool) -> None:
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="flashdoctor",
            standalone_mode=False,
            obj={AS_MODULE: as_module},
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # click's message quotes what was given (a path, an extra argument): shown as text (render.text.echo)
        shown = io.StringIO()
        exc.show(file=shown)
        echo(shown.getvalue().rstrip("\n"), err=True)
        code = exc.exit_code if exc.exit_code else EXIT_USAGE
        _annotate(f"flashdoctor: error: {exc.format_message()}", code)
        sys.exit(code)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        # A target script that no caller owned yet (the signal landed as it started) is stopped too:
        # it runs in a session of its own, out of the terminal's reach.
        from flashdoctor.probe.interpreter import stop_started

        stop_started()
        # click turns a KeyboardInterrupt (and so a Terminated) into Abort, the interrupt its cause
        term = exc if isinstance(exc, Terminated) else exc.__cause__
        if isinstance(term, Terminated):
            hung_up = term.signame == "SIGHUP"
            echo(f"\nflashdoctor: {'hung up' if hung_up else 'terminated'} ({term.signame})", err=True)
            sys.exit(EXIT_HUNG_UP if hung_up else EXIT_TERMINATED)
        echo("\nflashdoctor: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except FlashdoctorError as exc:
        # Redacted here too: whatever raised it should have, but no credential reaches the terminal anyway.
        echo(_redacted(exc.text()), err=True)
        _annotate(_redacted(exc.text()), exc.return_code)
        sys.exit(exc.return_code)
    except Exception as exc:
        missing = missing_dependency(exc)
        if missing:
            echo(missing.text(), err=True)
            _annotate(missing.text(), missing.return_code)
            sys.exit(missing.return_code)
        log = _crash_log(exc)
        text = _redacted(f"flashdoctor: an unexpected error has occurred: {type(exc).__name__}: {exc}")
        echo(text, err=True)
        if log:
            echo(f"  the traceback is in {log}; please attach it to an issue", err=True)
        _annotate(text, EXIT_INTERNAL)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)


__all__ = ["cli", "main"]
