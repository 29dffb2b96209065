"""scripts/profile_check.py runs end to end here (no GPU, no NVML): every part gets a time, then a profile."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.venvs import child_env


@pytest.mark.system
def test_it_times_each_part_and_profiles_one_check() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/profile_check.py"), "--repeats", "1"],
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    for part in ("environment probe", "probe_nvidia", "probe_environment", "check (subprocess)"):
        assert any(line.startswith(part) and " ms" in line for line in p.stdout.splitlines()), part
    assert "nvmlInit + nvmlShutdown" in p.stdout
    assert "cumulative time" in p.stdout or "cumtime" in p.stdout
