"""issue 15, "Also": a digest taken from a hand-written --plan file was described as "sha256 matches the
published digest (flashdoctor's wheel index)". It is named for where it came from: the plan file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.install_helpers import (
    H100_BUILD,
    H100_TAG,
    H100_V,
    FaultServer,
    make_wheel,
    sha256_of,
    write_manifest,
)
from tests.support.paths import ROOT

pytestmark = pytest.mark.system

V = H100_V  # locked for tests/targets/h100.json: the wheel must fit it


def test_a_digest_from_a_plan_file_is_named_for_it(server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V, tag=H100_TAG)
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


@pytest.mark.slow
def test_a_plan_files_wheelhouse_wheel_is_not_worded_as_a_builds_record(tmp_path: Path) -> None:
    """A plan file may say "source": "wheelhouse" of any wheel; its digest was still the plan file's
    (build.json was never read), and is named so. A reviewed "build" plan that a local build in --wheelhouse
    replaces keeps its build's record: that digest does come from build.json."""
    from flashdoctor.model.install import DIGEST_BUILD_RECORD, DIGEST_PUBLISHED

    w = make_wheel(
        tmp_path / "loose", version="2.8.3.post2+fd.sm90.hd128.bf16", tag="cp312-cp312-linux_x86_64"
    )
    wheel = {"filename": w.name, "url": w.resolve().as_uri(), "sha256": sha256_of(w), "source": "wheelhouse",
             "version": "2.8.3.post2"}  # fmt: skip
    plan = {"action": "wheel", "variant": "fa2", "wheel": wheel, "reasons": []}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    h100 = str(ROOT / "tests/targets/h100.json")

    def lock(plan_file: Path, *extra: str) -> dict[str, object]:
        p = subprocess.run(
            [sys.executable, "-m", "flashdoctor", "lock", "--plan", str(plan_file), "--target", h100,
             *extra, "--json"],
            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        entry: dict[str, object] = json.loads(p.stdout)["entries"][0]
        return entry

    entry = lock(tmp_path / "plan.json")
    assert entry["sha256_check"] == DIGEST_PUBLISHED  # was "... flashdoctor's record of the build"
    # the reviewed "build" plan, turned into the local build of a wheelhouse
    wh = tmp_path / "wh" / "5f1c0ffee0ddba11"
    built = make_wheel(wh, version="2.8.3.post2+fd.sm90.hd128.bf16", tag="cp312-cp312-linux_x86_64")
    write_manifest(built, H100_BUILD)
    (tmp_path / "build.json").write_text(json.dumps({"action": "build", "variant": "fa2", "reasons": []}))
    entry = lock(tmp_path / "build.json", "--wheelhouse", str(tmp_path / "wh"))
    assert entry["sha256_check"] == DIGEST_BUILD_RECORD
