"""issue 15, "Also": a digest taken from a hand-written --plan file was described as "sha256 matches the
published digest (flashdoctor's wheel index)". It is named for where it came from: the plan file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.install_helpers import FaultServer, make_wheel, sha256_of
from tests.support.paths import ROOT

pytestmark = pytest.mark.system

V = "2.8.3+cu12torch2.13cxx11abiTRUE"


def test_a_digest_from_a_plan_file_is_named_for_it(server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V)
    server.add(f"/files/{w.name}", w.read_bytes())
    server.add("/simple/flash-attn/", f'<a href="../../files/{w.name}">{w.name}</a>'.encode())  # no #sha256
    url = f"https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/{w.name}"  # not contacted
    wheel = {"filename": w.name, "url": url, "sha256": sha256_of(w), "source": "official", "version": V}
    plan = {
        "schema": "flashdoctor/plan/1",
        "action": "wheel",
        "variant": "fa2",
        "wheel": wheel,
        "reasons": [],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    args = ["lock", "--plan", str(tmp_path / "plan.json"), "--target", str(ROOT / "tests/targets/h100.json")]
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args, "--index-url", server.url("/simple"), "--json"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    verification = json.loads(p.stdout)["entries"][0]["verification"]
    assert verification["digest_from"] == "plan-file"
    assert verification["text"] == "sha256 matches the published digest (the plan file)"
