"""issue 15 row 6, the lock file: `lock --index-url https://user:SECRET@host/simple` used to pin the page
link resolved against the credentialed index URL, so the password went into the lock file (0644) or onto
standard output. The credentials are used to fetch (the TLS mirror sees Basic auth) and never written: the
locked URL carries no userinfo, and the output says once that they were removed and how pip gets them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.install_helpers import H100_TAG, H100_V, make_wheel, sha256_of
from tests.support.loopback import Response, Server
from tests.support.paths import ROOT
from tests.support.tls import CA

pytestmark = pytest.mark.system

SECRET = "s3cr3t-LOCK-99"
V = H100_V  # locked for tests/targets/h100.json: the wheel must fit it


def _run(
    tls_server: Server, tls_ca: CA, tmp_path: Path, *extra: str, link: str | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``link``: the page's href for the wheel ({name} filled in); default relative, with its #sha256."""
    w = make_wheel(tmp_path / "w", version=V, tag=H100_TAG)
    digest = sha256_of(w)
    tls_server.route(f"/files/{w.name}", Response(200, w.read_bytes()))
    href = (link or f"../../files/{{name}}#sha256={digest}").format(name=w.name)
    page = f'<a href="{href}">{w.name}</a>'  # the #sha256 page route
    tls_server.route("/simple/flash-attn/", Response(200, page))
    plan = {
        "schema": "flashdoctor/plan/1",
        "action": "wheel",
        "variant": "fa2",
        "wheel": {
            "filename": w.name,
            "url": f"https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/{w.name}",
            "sha256": None,
            "source": "official",
            "version": V,
        },
        "reasons": [],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REQUESTS_CA_BUNDLE": str(tls_ca.bundle),
        "NO_PROXY": "127.0.0.1,localhost",
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    tls_server.require("Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode())
    index_url = f"https://user:{SECRET}@127.0.0.1:{tls_server.base.rsplit(':', 1)[1]}/simple"
    args = ["lock", "--plan", str(tmp_path / "plan.json"), "--target", str(ROOT / "tests/targets/h100.json")]
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args, "--index-url", index_url, *extra],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    basic = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert any(r.headers.get("Authorization") == basic for r in tls_server.requests)  # used to fetch
    assert SECRET not in p.stdout + p.stderr
    return p, w


def _check_lock_text(text: str, wheel: Path, port: str) -> None:
    assert SECRET not in text and "@127.0.0.1" not in text
    assert f"flash-attn @ https://127.0.0.1:{port}/files/{wheel.name}" in text  # no userinfo
    assert len([line for line in text.splitlines() if "credentials" in line]) == 1, text  # said once
    assert "removed" in text and "netrc" in text and "keyring" in text and "PIP_INDEX_URL" in text


@pytest.mark.slow  # 2-3 s: lock in a subprocess over TLS
def test_lock_to_a_file_writes_no_credentials(tls_server: Server, tls_ca: CA, tmp_path: Path) -> None:
    out = tmp_path / "flash.lock"
    p, w = _run(tls_server, tls_ca, tmp_path, "-o", str(out))
    _check_lock_text(out.read_text(), w, tls_server.base.rsplit(":", 1)[1])
    assert "credentials" in p.stdout + p.stderr  # the terminal is told too


@pytest.mark.slow  # 2-3 s: lock in a subprocess over TLS
def test_lock_to_stdout_and_json_print_no_credentials(tls_server: Server, tls_ca: CA, tmp_path: Path) -> None:
    p, w = _run(tls_server, tls_ca, tmp_path, "--format", "all")
    port = tls_server.base.rsplit(":", 1)[1]
    chunks = p.stdout.split("# ==> ")[1:]
    assert len(chunks) == 3
    for chunk in chunks:
        _check_lock_text(chunk, w, port)
    tls_server.requests.clear()
    (tmp_path / "j").mkdir()
    p, w = _run(tls_server, tls_ca, tmp_path / "j", "--json")
    doc = json.loads(p.stdout)
    entry = doc["entries"][0]
    assert entry["url"] == f"https://127.0.0.1:{port}/files/{w.name}"
    assert entry["credentials_removed"] is True


def test_an_absolute_link_without_userinfo_on_the_mirror_is_fetched_with_its_credentials(
    tls_server: Server, tls_ca: CA, tmp_path: Path
) -> None:
    """Nexus, Artifactory and devpi link files with absolute URLs without userinfo: the mirror's
    credentials go there too (its host and port), as pip sends them; the page lists no digest, so lock
    downloads the wheel to hash it. Nothing written or printed holds them."""
    out = tmp_path / "flash.lock"
    link = tls_server.base + "/files/{name}"
    p, w = _run(tls_server, tls_ca, tmp_path, "-o", str(out), "--json", link=link)
    assert [r.path for r in tls_server.requests] == ["/simple/flash-attn/", f"/files/{w.name}"]
    assert json.loads(p.stdout)["entries"][0]["url"] == tls_server.base + f"/files/{w.name}"
    written = [f for f in tmp_path.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
    assert not written
