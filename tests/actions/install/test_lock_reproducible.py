"""`flashdoctor lock` writes the same lock for the same request, whatever the download cache holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.install_helpers import H100_TAG, H100_V, FaultServer, make_wheel, sha256_of
from tests.support.paths import ROOT, TARGETS

V = H100_V  # locked for tests/targets/h100.json: the wheel must fit it


def _lock(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "flashdoctor", "lock", "--target", str(TARGETS / "h100.json"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def _plan(tmp_path: Path, wheel: Path, sha256: str | None) -> str:
    url = (
        f"https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/{wheel.name}"  # never fetched
    )
    ref = {"filename": wheel.name, "url": url, "sha256": sha256, "source": "official", "version": V}
    plan = {"schema": "flashdoctor/plan/1", "action": "wheel", "variant": "fa2", "wheel": ref, "reasons": []}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return str(path)


@pytest.mark.system
@pytest.mark.slow
def test_a_mirror_lock_names_the_mirror_when_the_wheel_is_already_cached(
    server: FaultServer, tmp_path: Path
) -> None:
    """A plan with the index's sha256, locked against an --index-url mirror: the first run downloads
    from the mirror and writes the mirror's URL. The second found the wheel in the cache by its digest
    and wrote the upstream URL (github.com) instead, which an air-gapped machine cannot reach."""
    w = make_wheel(tmp_path / "w", version=V, tag=H100_TAG)
    server.add(f"/files/{w.name}", w.read_bytes())
    server.add("/simple/flash-attn/", f'<a href="../../files/{w.name}">{w.name}</a>'.encode())
    plan = _plan(tmp_path, w, sha256_of(w))
    args = ("--plan", plan, "--index-url", server.url("/simple"), "--json")
    first, second = _lock(tmp_path, *args), _lock(tmp_path, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    urls = [json.loads(p.stdout)["entries"][0]["url"] for p in (first, second)]
    assert urls == [server.url(f"/files/{w.name}")] * 2


@pytest.mark.system
@pytest.mark.slow
def test_a_lock_pins_what_its_url_serves_not_a_wheelhouse_copy(server: FaultServer, tmp_path: Path) -> None:
    """No published digest, and a wheel of that name in --wheelhouse (a local rebuild): the lock wrote
    the served URL with the digest of the wheelhouse file, so `pip install --require-hashes` fails on
    every machine that fetches the URL."""
    served = make_wheel(tmp_path / "served", version=V, tag=H100_TAG)
    local = make_wheel(
        tmp_path / "house", version=V, tag=H100_TAG, files={"flash_attn/__init__.py": "# rebuilt\n"}
    )
    assert served.name == local.name and sha256_of(served) != sha256_of(local)
    server.add(f"/files/{served.name}", served.read_bytes())
    plan = _plan(tmp_path, served, None)
    doc = json.loads(Path(plan).read_text())
    doc["wheel"]["url"] = server.url(f"/files/{served.name}")
    Path(plan).write_text(json.dumps(doc))
    p = _lock(tmp_path, "--plan", plan, "--wheelhouse", str(tmp_path / "house"), "--json")
    assert p.returncode == 0, p.stderr
    entry = json.loads(p.stdout)["entries"][0]
    assert (entry["url"], entry["sha256"]) == (server.url(f"/files/{served.name}"), sha256_of(served))
