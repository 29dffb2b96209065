"""scripts/bench_target_wait.py runs end to end: both ways of waiting give an answer, side by side."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.venvs import child_env


@pytest.mark.system
def test_it_compares_the_two_ways_of_waiting() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_target_wait.py"), "--repeats", "1", "--sleep", "0.01"],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["environment", "child"]
    assert all("pidfd median" in line and "Popen.wait(timeout)" in line for line in lines)
