"""Fixtures for the installer tests: a misbehaving loopback server, test wheels, a real venv with torch."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from tests.support.install_helpers import FaultServer
from tests.support.paths import ROOT as REPO


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must not go to a proxy configured on the machine."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server(no_proxy: None) -> Iterator[FaultServer]:
    s = FaultServer()
    yield s
    s.close()


def _venv_python(d: Path) -> Path:
    return d / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _one_pip_run() -> list[str] | None:
    """pip's arguments that install ensurepip's own pip from its bundled wheel (as ``venv`` does), or None
    where that cannot be done here: a pip without --python (< 22.3), or a Python whose ensurepip has no
    bundled wheels (Debian's and Fedora's read them from elsewhere): then the venv is made as before."""
    try:
        import ensurepip
    except ImportError:
        return None
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    if Version(version("pip")) < Version("22.3") or not any(bundled.glob("pip-*.whl")):
        return None
    return ["--find-links", str(bundled), f"pip=={ensurepip.version()}"]


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real venv with the CPU torch==2.13.0 (pinned: an open range would download GBs), shared by
    the session. Tests reset flash-attn state with ``fresh_venv``. --no-compile: byte-compiling torch's
    thousands of modules is most of the install time, and nothing here imports torch.

    One pip run makes it what ``python -m venv`` then ``pip install torch`` make (the same packages and
    versions, pip included): the venv is created without pip and this process's pip (``--python``, pip >=
    22.3) installs ensurepip's own pip (its bundled wheel, as ``venv`` does) with torch. ensurepip's
    byte-compiling pip install and a second pip start cost about 3 s of CPU and 5 s of wall per worker."""
    d = tmp_path_factory.mktemp("venv") / "env"
    install = ["install", "-q", "--no-compile", "--disable-pip-version-check"]
    one_run = _one_pip_run()
    if one_run is not None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True)
        py = _venv_python(d)
        r = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(py), *install, *one_run, "torch==2.13.0"],
            capture_output=True,
            text=True,
        )
    if one_run is None or r.returncode != 0:  # what `python -m venv` then `pip install torch` make
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        py = _venv_python(d)
        r = subprocess.run([str(py), "-m", "pip", *install, "torch==2.13.0"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(
            f"cannot install torch==2.13.0 into a test venv (offline, no local wheel?): {r.stderr[-500:]}"
        )
    return py


@functools.cache
def site_packages(py: Path) -> Path:
    """The venv's purelib directory (asked once per interpreter)."""
    out = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(out)


def reset_flash(py: Path) -> None:
    """No flash-attn (nor the test dependency fdtestdep) in the venv; pip uninstalls what pip installed
    (it is run only when there is something for it to uninstall: most tests leave nothing)."""
    site = site_packages(py)
    if any(site.glob("flash_attn-*.*-info")) or any(site.glob("fdtestdep-*.*-info")):
        subprocess.run(
            [str(py), "-m", "pip", "uninstall", "-y", "-q", "flash-attn", "fdtestdep"],
            capture_output=True,
            check=False,
        )
    for p in site.glob("flash_attn*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


@pytest.fixture
def fresh_venv(torch_venv: Path) -> Path:
    """The session venv with no flash-attn in it."""
    reset_flash(torch_venv)
    return torch_venv


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a flashdoctor subprocess: this checkout importable, the test's HOME/XDG."""
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        str(REPO) + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else str(REPO)
    )
    env.update(extra)
    return env
