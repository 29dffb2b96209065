"""The commands whose output is kept as golden captures (tests/golden/cli-*.txt), and the two ways of
getting that output: from a real terminal (tmux, at a given width) and from the CLI in-process with
COLUMNS set (what a pipe or a CI log gets), folded where a terminal folds.

Regenerate the files from tmux:  FLASHDOCTOR_UPDATE_GOLDEN=1 pytest tests/render/test_golden_cli.py -k tmux
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.cells import cell_len

from tests.support.paths import GOLDEN, ROOT

TARGETS = "tests/targets"
LOG = "tests/data/explain/import-undefined-symbol.log"
WIDTHS = (80, 200)
# the day taken as today (the wheel index's age in `check`): the captures do not change with the calendar
FIXED_ENV = {"FLASHDOCTOR_TODAY": "2026-12-05"}

# name -> the command line (run from the repository root, with relative paths: nothing varies)
COMMANDS: dict[str, tuple[str, ...]] = {
    "check-h100": ("check", "--target", f"{TARGETS}/h100.json"),
    "check-cpu-box": ("check", "--target", f"{TARGETS}/cpu-box.json"),
    "check-t4": ("check", "--target", f"{TARGETS}/t4.json"),
    "install-dry-run-a100": ("install", "--fa2", "--dry-run", "--target", f"{TARGETS}/a100.json"),
    "wheels-no-torch": ("wheels", "--target", f"{TARGETS}/no-torch.json"),
    "explain": ("explain", LOG, "--target", f"{TARGETS}/h100.json"),
    "build-dry-run-h100": ("build", "--dry-run", "--target", f"{TARGETS}/h100.json"),
}


def golden_path(name: str, width: int) -> Path:
    return GOLDEN / f"cli-{name}-{width}.txt"


def fold(text: str, width: int) -> str:
    """``text`` as a terminal of ``width`` columns shows it: a line longer than the width continues on
    the next row (at cell ``width``); trailing spaces are not kept (tmux's capture drops them)."""
    rows: list[str] = []
    for line in text.split("\n"):
        row, used = "", 0
        for ch in line:
            w = cell_len(ch)
            if used + w > width:
                rows.append(row)
                row, used = "", 0
            row += ch
            used += w
        rows.append(row)
    out = "\n".join(r.rstrip() for r in rows)
    return out.rstrip("\n") + "\n"


def render_in_process(name: str, width: int) -> str:
    """The command run through click's runner (standard output not a terminal) with COLUMNS=width."""
    from click.testing import CliRunner

    from flashdoctor.cli import cli

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        r = CliRunner().invoke(
            cli, list(COMMANDS[name]), env={"COLUMNS": str(width), **FIXED_ENV}, catch_exceptions=False
        )
    finally:
        os.chdir(cwd)
    return fold(r.stdout, width)


END = "__flashdoctor_capture_end__"


def capture_in_tmux(name: str, width: int, timeout: float = 60.0) -> str:
    """The command run in a real terminal: a detached tmux pane ``width`` columns wide, its screen and
    scrollback captured as text once the command has finished."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "tmux.sock")
        conf = Path(tmp) / "tmux.conf"
        conf.write_text("set -g history-limit 50000\nset -g status off\n")

        def tmux(*args: str) -> str:
            return subprocess.run(
                ["tmux", "-S", sock, "-f", str(conf), *args], capture_output=True, text=True, timeout=30
            ).stdout

        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT), **FIXED_ENV)
        cmd = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "flashdoctor", *COMMANDS[name]))
        # The pane may start at tmux's default size and be resized an instant later: wait for the width.
        script = (
            f'while [ "$(stty size | cut -d" " -f2)" != {width} ]; do sleep 0.05; done; '
            f"cd {shlex.quote(str(ROOT))} && {cmd}; echo {END}; sleep 600"
        )
        subprocess.run(
            ["tmux", "-S", sock, "-f", str(conf), "new-session", "-d", "-s", "g", "-x", str(width), "-y", "50",
             "sh", "-c", script],
            env=env,
            check=True,
            timeout=30,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            screen = ""
            while time.monotonic() < deadline:
                screen = tmux("capture-pane", "-p", "-S", "-", "-E", "-", "-t", "g")
                if END in screen:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"{name} did not finish in tmux:\n{screen}")
        finally:
            tmux("kill-server")
    text = screen.split(END, 1)[0]
    return "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n") + "\n"
