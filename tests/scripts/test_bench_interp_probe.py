"""scripts/bench_interp_probe.py runs end to end: its fake environment is one the probe reads (the
distributions that require flash-attn are found), and it compares two trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.venvs import child_env

sys.path.insert(0, str(ROOT / "scripts"))
import bench_interp_probe


@pytest.mark.system
def test_the_fake_environment_is_read_by_the_probe(tmp_path: Path) -> None:
    bench_interp_probe.make_site(tmp_path, 30)
    cfg = bench_interp_probe.config(ROOT)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, str(ROOT / "flashdoctor/probe/_interp.py"), cfg],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    deps = [d for d in json.loads(out.stdout)["dependents"] if d["dist"].startswith("pkg")]
    assert sorted(d["dist"] for d in deps) == ["pkg0000", "pkg0010", "pkg0020"]
    assert {d["requires"] for d in deps} == {"flash-attn<=2.6.3,>=2.1"}


@pytest.mark.system
def test_it_compares_two_trees() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_interp_probe.py"), "--baseline", str(ROOT), "--dists", "5", "--repeats", "1"],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "this - baseline:" in p.stdout and "with 5 distributions" in p.stdout
