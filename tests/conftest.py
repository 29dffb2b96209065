"""Test fixtures and the rules every test runs under (docs/testing.md).

- Nothing leaves loopback: a socket address or name lookup past 127.0.0.0/8, ::1 and localhost raises
  (tests/support/guards.py), except inside the fixtures that fetch from PyPI; the tests that use those
  are marked ``network`` here, at collection, and ``slow`` (the download and unpacking take seconds, so
  they stay out of the unit tier).
- Unit tests may not touch the real system: an autouse guard makes starting a process (subprocess,
  fork, spawn, os.system) or a server (listen) raise unless the test is marked ``system``.
- ``gpu`` tests are skipped, with the reason, where torch sees no CUDA GPU.
- Every test gets a private HOME / XDG dirs so nothing is written to the user's home.
- Hypothesis runs the ``ci`` profile (derandomised, no example database) unless HYPOTHESIS_PROFILE names
  another (``random``: new examples on each run, for a local search).

The markers are declared in pyproject.toml ([tool.pytest.ini_options], --strict-markers).
"""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import settings

from tests.support.guards import install_loopback_guard, refuse_system

# Fixtures shared across folders: torch_venv, fresh_venv, server, no_proxy (venvs); tls_ca, tls_server,
# mirror (tls); fa2_sdist, fa2_pristine, fa2_tree (sdist).
pytest_plugins = ("tests.support.venvs", "tests.support.tls", "tests.support.sdist")

# Fixtures that reach past loopback (PyPI) on purpose: a test that uses one is marked ``network``.
NETWORK_FIXTURES = frozenset({"fa2_sdist", "torch_venv"})

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("random", derandomize=False, database=None, deadline=None, print_blob=True)
settings.load_profile(
    "random" if os.environ.get("FLASHDOCTOR_FUZZ_RANDOM") else os.environ.get("HYPOTHESIS_PROFILE", "ci")
)

install_loopback_guard()

# "Today", for the wheel index's 60-day staleness warning, is the bundled index's own date in every test
# (subprocesses inherit it): the suite gives the same answers next year. Tests of the warning set their own.
os.environ.setdefault("FLASHDOCTOR_TODAY", "2026-12-05")


def _leaves_system_tests_out(markexpr: str) -> bool:
    """Whether ``-m markexpr`` deselects every test marked ``system``, whatever its other markers are:
    the unit tier."""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        expr = Expression.compile(markexpr)
        others = ("slow", "network", "gpu")
        for n in range(2 ** len(others)):
            marks = {"system"} | {m for i, m in enumerate(others) if n >> i & 1}
            if expr.evaluate(lambda name, marks=marks, **kwargs: name in marks):
                return False
        return True
    except Exception:  # a pytest whose private expression API moved: keep xdist's own choice
        return False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (addopts): two workers for a run with system tests, which wait on processes and
    servers; the unit tier (``-m "not slow and not system"``) runs in this process, where starting two
    workers (each imports torch and collects every test) costs more than it saves (docs/testing.md)."""
    if _leaves_system_tests_out(config.getoption("markexpr", "")):
        return 0
    return None  # xdist's count, capped at 2 by --maxprocesses


def _no_gpu_reason() -> str | None:
    """None where torch sees a CUDA GPU, else why the ``gpu`` tests are skipped."""
    try:
        import torch
    except ImportError:
        return "needs an NVIDIA GPU: torch is not installed"
    if not torch.cuda.is_available():
        return f"needs an NVIDIA GPU: torch {torch.__version__} sees no CUDA device"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu: str | None = None
    checked = False
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
            item.add_marker(pytest.mark.slow)  # the fixture downloads (PyPI) and unpacks: seconds
        if item.get_closest_marker("gpu") is not None:
            if not checked:
                no_gpu, checked = _no_gpu_reason(), True
            if no_gpu:
                item.add_marker(pytest.mark.skip(reason=no_gpu))
    # The modules with a slow test run first, each kept whole (its module fixtures are made once per worker, as
    # before): the end of the run is then short tests, which the two workers share out (--dist worksteal in
    # addopts), not one worker alone on the GPU script's 20 s while the other waits (docs/testing.md).
    slow_modules = {
        getattr(item, "module", None) for item in items if item.get_closest_marker("slow") is not None
    }
    items.sort(key=lambda item: getattr(item, "module", None) not in slow_modules)


# Started in the background of a non-interactive shell (`.ci/run &`), the suite inherits SIGINT ignored, and
# so would every flashdoctor it starts (an ignored signal stays ignored across exec): the Ctrl-C tests need
# what a terminal gives. A handler, unlike SIG_IGN, is reset to the default in a child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolate(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("home")
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()) if var != "HOME" else str(home))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    # A test that ran the CLI's Ctrl-C path in this process left "stopping" set (the process was leaving)
    from flashdoctor.probe import interpreter

    interpreter._STOPPING.clear()
    if request.node.get_closest_marker("system") is None:
        refuse_system(monkeypatch)
