"""Which interpreter flashdoctor diagnoses and installs into when --python is not given: the environment
the user is in, the way uv and pip-audit pick theirs.

1. an activated virtual environment (VIRTUAL_ENV), then an activated conda environment (CONDA_PREFIX);
2. else the first ``python3`` / ``python`` on PATH that is not flashdoctor's own interpreter — so that
   flashdoctor installed as an isolated tool (``pipx install``, ``uv tool install``, its own venv) checks
   the user's environment, not its own;
3. else flashdoctor's own interpreter.

The choice and its reason are printed first by every command that probes (README "Set-up"). Only files
and the mapping passed in are read: tests give their own PATH and environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_NAMES_POSIX = ("python3", "python")
_NAMES_WINDOWS = ("python.exe", "python3.exe")


@dataclass(frozen=True)
class Interpreter:
    path: str
    reason: str  # why this one: "--python", "VIRTUAL_ENV", "CONDA_PREFIX", "PATH", "flashdoctor's own"

    def describe(self) -> str:
        why = {
            "--python": "given with --python",
            "VIRTUAL_ENV": "the activated virtual environment (VIRTUAL_ENV)",
            "CONDA_PREFIX": "the activated conda environment (CONDA_PREFIX)",
            "PATH": "the first Python on PATH that is not flashdoctor's own",
            "own": "flashdoctor's own (no activated environment and no other Python on PATH)",
        }[self.reason]
        return f"{self.path} ({why})"


def _is_exe(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _env_python(prefix: str, windows: bool) -> Path | None:
    root = Path(prefix)
    candidates = (
        [root / "Scripts" / "python.exe", root / "python.exe"]
        if windows
        else [root / "bin" / "python3", root / "bin" / "python"]
    )
    return next((c for c in candidates if _is_exe(c)), None)


def _prefix_of(python: Path) -> Path:
    """The environment a python executable belongs to: <prefix>/bin/python -> <prefix> (not resolving the
    link: a venv's python is a link to the base interpreter, yet it is the venv's)."""
    parent = python.parent
    return parent.parent if parent.name in ("bin", "Scripts") else parent


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def choose_interpreter(
    environ: Mapping[str, str],
    own_executable: str | None = None,
    own_prefix: str | None = None,
    explicit: str | None = None,
    windows: bool | None = None,
) -> Interpreter:
    """The interpreter to diagnose (see the module docstring for the order)."""
    own_executable = own_executable or sys.executable
    own_prefix = own_prefix or sys.prefix
    windows = os.name == "nt" if windows is None else windows
    if explicit:
        return Interpreter(explicit, "--python")
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = environ.get(var, "").strip()
        if prefix:
            found = _env_python(prefix, windows)
            if found is not None:
                return Interpreter(str(found), var)
    names = _NAMES_WINDOWS if windows else _NAMES_POSIX
    own = Path(own_prefix)
    for directory in environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        for name in names:
            cand = Path(directory) / name
            if not _is_exe(cand):
                continue
            if _same(_prefix_of(cand), own) or _same(cand, Path(own_executable)):
                continue  # flashdoctor's own environment: not the user's
            return Interpreter(str(cand), "PATH")
    return Interpreter(own_executable, "own")
