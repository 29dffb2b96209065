"""The uv path: an environment made by uv (no pip in it) is installed into with `uv pip`, and restored
with it. Runs when `uv` is on PATH (CI machines without uv skip it, saying so)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions
from flashdoctor.actions.install.executor import InstallContext, execute
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, WheelRef
from tests.support.install_helpers import make_wheel, sha256_of

pytestmark = [pytest.mark.system, pytest.mark.slow]

UV = shutil.which("uv")


@pytest.mark.skipif(UV is None, reason="uv is not on PATH")
def test_uv_managed_environment(tmp_path: Path) -> None:
    env_dir = tmp_path / "uvenv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(env_dir)], check=True)  # type: ignore[list-item]
    py = env_dir / "bin" / "python"
    assert (
        subprocess.run([str(py), "-c", "import pip"], capture_output=True).returncode != 0
    )  # uv venvs have no pip
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    good = make_wheel(tmp_path / "g", version="2.8.2", tag=f"{tag}-{tag}-linux_x86_64", requires=())
    bad = make_wheel(
        tmp_path / "b",
        version="2.8.3",
        tag=f"{tag}-{tag}-linux_x86_64",
        requires=(),
        files={"flash_attn/__init__.py": "raise ImportError('boom')\n"},
    )

    def plan(w: Path, v: str) -> Plan:
        return Plan(
            action="wheel",
            variant="fa2",
            wheel=WheelRef(w.name, w.resolve().as_uri(), sha256_of(w), "local", v),
        )

    ctx = InstallContext(
        python=str(py),
        environ=dict(os.environ),
        fetch=FetchOptions(cache=WheelCache(tmp_path / "c")),
        env=Environment(),
    )
    res = execute(plan(good, "2.8.2"), ctx)
    assert res.status == "installed" and res.installer == "uv pip", res
    res = execute(plan(bad, "2.8.3"), ctx)
    assert res.status == "rolled-back" and res.installed == "2.8.2", res
    out = subprocess.run(
        [UV, "pip", "list", "--python", str(py)], capture_output=True, text=True, check=True
    ).stdout  # type: ignore[list-item]
    assert "flash-attn" in out and "2.8.2" in out
    assert subprocess.run([str(py), "-c", "import flash_attn"], capture_output=True).returncode == 0
