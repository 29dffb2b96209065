"""Test fixtures.

Unit tests may not touch the real system: an autouse guard makes subprocess.Popen raise unless the
test is marked ``system`` (real interpreters, real pip, real servers on loopback). Every test gets
a private HOME / XDG dirs so nothing is written to the user's home.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target

TARGETS = Path(__file__).parent / "targets"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "system: touches the real system (subprocesses, venvs, loopback servers)"
    )


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
    if request.node.get_closest_marker("system") is None:

        def _refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("unit tests must not start processes; mark the test @pytest.mark.system")

        monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)


def target_env(name: str, **overrides: object) -> Environment:
    """An Environment from tests/targets/<name>.json, with optional key overrides."""
    import json

    spec = json.loads((TARGETS / f"{name}.json").read_text())
    spec.update(overrides)
    return environment_from_target(spec)
