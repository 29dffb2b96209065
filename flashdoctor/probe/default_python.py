"""Which interpreter flashdoctor diagnoses and installs into when --python is not given: the environment
the user is in, the way uv and pip-audit pick theirs.

1. ``python -m flashdoctor``: the Python the user named by running it (as ``python -m pip`` does; also
   what torchrun starts);
2. an activated virtual environment (VIRTUAL_ENV), then an activated conda environment (CONDA_PREFIX);
3. else the first ``python3`` / ``python`` on PATH that is not flashdoctor's own interpreter — so that
   flashdoctor installed as an isolated tool (``pipx install``, ``uv tool install``, its own venv) checks
   the user's environment, not its own. flashdoctor's own environment counts as the user's when torch is
   installed in it (flashdoctor installed into the training environment, first on PATH);
4. else flashdoctor's own interpreter.

The choice and its reason are printed first by every command that probes (README "Set-up"). Only files
and the mapping passed in are read: tests give their own PATH and environment.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_NAMES_POSIX = ("python3", "python")
_NAMES_WINDOWS = ("python.exe", "python3.exe")


WHY = {
    "--python": "given with --python",
    "python -m": "the Python that runs `python -m flashdoctor`",
    "VIRTUAL_ENV": "the activated virtual environment (VIRTUAL_ENV)",
    "CONDA_PREFIX": "the activated conda environment (CONDA_PREFIX)",
    "PATH": "the first Python on PATH that is not flashdoctor's own",
    "own-torch": "the first Python on PATH: flashdoctor's own environment, which has torch",
    "own": "flashdoctor's own (no activated environment and no other Python on PATH)",
}


@dataclass(frozen=True)
class Interpreter:
    path: str
    reason: str  # why this one: a key of WHY ("own": flashdoctor's own)

    @property
    def why(self) -> str:
        return WHY[self.reason]

    def describe(self) -> str:
        return f"{self.path} ({self.why})"

    @property
    def linked_venv(self) -> LinkedVenv | None:
        """The venv this path links to without running as it (see LinkedVenv)."""
        return linked_venv(self.path)

    def to_json(self) -> dict[str, str]:
        """The ``interpreter`` field of a JSON document (``linked_venv`` only where there is one)."""
        out = {"path": self.path, "reason": self.reason, "why": self.why}
        linked = self.linked_venv
        if linked is not None:
            out["linked_venv"] = linked.prefix
        return out


def _is_exe(p: Path) -> bool:
    # os.path.isfile, not Path.is_file: that raises for a PATH entry it may not look into (EACCES)
    return os.path.isfile(p) and os.access(p, os.X_OK)


def _env_python(prefix: str, windows: bool) -> Path | None:
    root = Path(os.path.abspath(prefix))
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


def _is_venv(prefix: Path) -> bool:
    return os.path.isfile(prefix / "pyvenv.cfg")


MAX_LINKS = 40  # as the kernel's own limit on a chain of symbolic links


def _link_chain(python: Path) -> Iterator[Path]:
    """``python``, then each link it goes through, one at a time (at most MAX_LINKS of them)."""
    cur = python
    for _ in range(MAX_LINKS + 1):
        yield cur
        if not cur.is_symlink():
            return
        try:
            target = Path(os.readlink(cur))
        except OSError:
            return
        cur = target if target.is_absolute() else cur.parent / target


def _is_own(python: Path, own_prefix: Path, own_executable: Path) -> bool:
    """Whether running ``python`` runs flashdoctor's own environment. A venv's python is a link to the
    base interpreter, so resolving it to the end says nothing about which environment it starts: the
    chain is followed one link at a time, and the first link that lies in a virtual environment decides
    (Python finds its pyvenv.cfg next to the path it was started by, before resolving links)."""
    own_venv = _is_venv(own_prefix)
    for cur in _link_chain(python):
        prefix = _prefix_of(cur)
        if _same(prefix, own_prefix):
            return True
        if _is_venv(prefix):
            return False  # another virtual environment: the user's
        if not cur.is_symlink():
            # a base interpreter: flashdoctor's own only when flashdoctor runs in it (not in a venv)
            return not own_venv and _same(cur, own_executable)
    return False


@dataclass(frozen=True)
class LinkedVenv:
    """A python path outside any venv that links to a venv's python (~/bin/py -> ~/venvs/x/bin/python):
    Python looks for pyvenv.cfg only next to the path it was started by, so it runs as the base
    interpreter (as ``~/bin/py -m pip`` installs into the base), not as the venv."""

    prefix: str  # the venv it links to
    python: str  # that venv's python (the link in the chain that lies in it)
    base: str  # the interpreter it runs as (the chain resolved to the end)

    def message(self, path: str, reason: str = "--python") -> str:
        """The warning for ``path``, chosen for ``reason`` (a key of WHY), with the advice that fits it: a
        --python value to pass instead, or (run as ``path -m flashdoctor``, nothing passed) the python to
        run flashdoctor with."""
        if reason == "python -m":
            advice = f"run flashdoctor with the venv's own python ({self.python} -m flashdoctor ...)"
        elif reason == "--python":
            advice = f"pass {self.python}"
        else:
            advice = f"pass --python {self.python}"
        return (
            f"{path} runs as the base Python {self.base}, not as the virtual environment it links to "
            f"({self.prefix}): Python finds a venv next to the path it is started by, not next to a "
            f"link's target; {advice} to work on that environment"
        )


def linked_venv(python: str) -> LinkedVenv | None:
    """The venv ``python`` links to while not running as it (see LinkedVenv), else None."""
    chain = iter(_link_chain(Path(python)))
    if _is_venv(_prefix_of(next(chain))):
        return None  # started by a path in a venv: it runs as that venv
    for cur in chain:
        prefix = _prefix_of(cur)
        if _is_venv(prefix):
            # real paths (a relative link gives x/bin/../venv), but the venv's python kept as the link it is
            python_in = os.path.join(os.path.realpath(cur.parent), cur.name)
            return LinkedVenv(os.path.realpath(prefix), python_in, os.path.realpath(python))
    return None


def _own_has_torch() -> bool:
    """Whether torch is installed in flashdoctor's own environment (found on its path, not imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def is_bare_name(python: str) -> bool:
    """``python3.11`` (a command name), not ``./python`` or ``.venv/bin/python`` (a path)."""
    return os.sep not in python and (os.altsep is None or os.altsep not in python)


def locate_python(python: str, path: str | None) -> str | None:
    """The file ``--python`` names, or None where there is none. A path is the user's, relative to where
    they ran flashdoctor: builds and installs run elsewhere (abspath, not resolve: a venv's python is a
    link that must stay one). A bare name is a command, found on ``path`` (PATH) as a shell would
    (`--python python3`); else a file of that name here."""
    if is_bare_name(python) and path:
        on_path = shutil.which(python, path=path)
        if on_path:
            return os.path.abspath(on_path)  # a relative PATH entry (".") gives a relative one
    return os.path.abspath(python) if os.path.exists(python) else None


def choose_interpreter(
    environ: Mapping[str, str],
    own_executable: str | None = None,
    own_prefix: str | None = None,
    explicit: str | None = None,
    windows: bool | None = None,
    module_run: bool = False,
    own_has_torch: bool | None = None,
) -> Interpreter:
    """The interpreter to diagnose (see the module docstring for the order). ``module_run``: flashdoctor
    runs as ``python -m flashdoctor``; ``own_has_torch``: whether torch is in flashdoctor's own
    environment (default: looked up when it matters)."""
    own_executable = own_executable or sys.executable
    own_prefix = own_prefix or sys.prefix
    windows = os.name == "nt" if windows is None else windows
    if explicit:
        # one that names no file is kept as given (a path made absolute), for the caller's message
        named = locate_python(explicit, environ.get("PATH"))
        if named is None and not is_bare_name(explicit):
            named = os.path.abspath(explicit)
        return Interpreter(named or explicit, "--python")
    if module_run:
        return Interpreter(own_executable, "python -m")
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
            # absolute (not resolved): "." would give "python3", which running looks up on PATH again
            cand = Path(os.path.abspath(directory)) / name
            if not _is_exe(cand):
                continue
            if _is_own(cand, own, Path(own_executable)):
                if own_has_torch is None:
                    own_has_torch = _own_has_torch()
                if own_has_torch:
                    return Interpreter(own_executable, "own-torch")
                continue  # flashdoctor's own environment, a tool's: not the user's
            return Interpreter(str(cand), "PATH")
    return Interpreter(own_executable, "own")
