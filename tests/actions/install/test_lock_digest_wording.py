"""A lock file words its digest by where the digest came from, as `install` does
(flashdoctor.model.install.digest_wording): a local build's is flashdoctor's record of it, not a
publisher's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.model.install import DIGEST_BUILD_RECORD, DIGEST_PUBLISHED
from tests.support.install_helpers import H100_BUILD, make_wheel, write_manifest
from tests.support.paths import ROOT, TARGETS


@pytest.mark.system
@pytest.mark.slow
def test_a_locked_local_build_is_not_said_to_match_a_published_digest(tmp_path: Path) -> None:
    """`lock --wheelhouse DIR` pinning a flashdoctor build said "sha256 matches the published digest"
    in the file, on the terminal and in --json, where `install` of the same wheel says the digest is
    flashdoctor's record of the build: nobody published it."""
    w = make_wheel(tmp_path / "wh" / "5f1c0ffee0ddba11", version="2.8.3.post2+fd.sm90.hd128.bf16",
                   tag="cp312-cp312-linux_x86_64")  # fmt: skip
    write_manifest(w, H100_BUILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    # --version: the release only the local build is of (an index wheel would be locked instead: lock keeps
    # the selector's wheel, a public URL, and turns only a "build" plan into a local build)
    base = [sys.executable, "-m", "flashdoctor", "lock", "--fa2", "--target", str(TARGETS / "h100.json"),
            "--wheelhouse", str(tmp_path / "wh"), "--version", "==2.8.3.post2"]  # fmt: skip
    out = tmp_path / "flash.txt"
    for extra in (["--json"], ["-o", str(out)]):
        p = subprocess.run(
            [*base, *extra], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
        )
        assert p.returncode == 0, p.stdout + p.stderr
        assert DIGEST_PUBLISHED not in p.stdout and DIGEST_BUILD_RECORD in p.stdout
    entry = json.loads(subprocess.run([*base, "--json"], capture_output=True, text=True, env=env,
                                      timeout=120, cwd=tmp_path).stdout)["entries"][0]  # fmt: skip
    assert entry["sha256_check"] == DIGEST_BUILD_RECORD
    assert f"{w.name}: {DIGEST_BUILD_RECORD}." in out.read_text()
