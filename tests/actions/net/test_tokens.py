"""issue 15 row 1: GITHUB_TOKEN goes only where the HTTP client really connects.

``https://127.0.0.1:PORT\\@github.com/...`` reads as github.com to urllib.parse, but requests rewrites the
backslash and connects to 127.0.0.1: the token reached a loopback TLS server on three routes (a plan url,
an --index-url page link, an index ``url`` used by ``lock``). A TLS server with a self-signed CA (trusted
through REQUESTS_CA_BUNDLE, so that a request *would* go through) must never see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions, obtain
from flashdoctor.actions.net.download import DownloadError, DownloadPolicy, download
from flashdoctor.model.plan import WheelRef
from tests.support.install_helpers import make_wheel
from tests.support.loopback import Response, Server
from tests.support.paths import ROOT
from tests.support.tls import CA

pytestmark = pytest.mark.system

TOKEN = "ghp_SECRETtokenFORtests0123456789"
FAST = DownloadPolicy(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01, backoff_max=0.05)
FA3 = "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"


def port(server: Server) -> str:
    return server.base.rsplit(":", 1)[1]


def tricky(server: Server, path: str) -> str:
    return f"https://127.0.0.1:{port(server)}\\@github.com{path}"


def no_token_seen(server: Server) -> bool:
    return all(
        "Bearer" not in r.headers.get("Authorization", "") and TOKEN not in str(r.headers)
        for r in server.requests
    )


def test_a_plan_url_that_reads_as_github_but_goes_to_loopback(tls_server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w")
    tls_server.route(f"/%5C@github.com/w/{wheel.name}", Response(200, wheel.read_bytes()))
    ref = WheelRef(wheel.name, tricky(tls_server, f"/w/{wheel.name}"), None, "official", "2.8.3")
    with pytest.raises(DownloadError) as exc:
        obtain(ref, FetchOptions(WheelCache(tmp_path / "c"), FAST), {"GITHUB_TOKEN": TOKEN}, "flash-attn")
    assert no_token_seen(tls_server)
    assert f"127.0.0.1:{port(tls_server)}" in exc.value.message  # the host it would really go to
    assert TOKEN not in exc.value.message + (exc.value.hint or "")


def test_an_index_url_page_link_that_reads_as_github(tls_server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w")
    tls_server.route(f"/%5C@github.com/files/{wheel.name}", Response(200, wheel.read_bytes()))
    link = tricky(tls_server, f"/files/{wheel.name}")
    tls_server.route("/simple/flash-attn/", Response(200, f'<a href="{link}">{wheel.name}</a>'))
    ref = WheelRef(
        wheel.name, "https://github.com/x/y/releases/download/v1/" + wheel.name, None, "official", "1"
    )
    opts = FetchOptions(WheelCache(tmp_path / "c"), FAST, index_url=tls_server.base + "/simple")
    with pytest.raises(DownloadError, match=f"would go to 127.0.0.1:{port(tls_server)}"):
        obtain(ref, opts, {"GITHUB_TOKEN": TOKEN}, "flash-attn")
    assert [r.path for r in tls_server.requests] == ["/simple/flash-attn/"]  # the page, nothing more
    assert no_token_seen(tls_server)


def test_an_index_url_used_by_lock(tls_server: Server, tls_ca: CA, tmp_path: Path) -> None:
    """`flashdoctor lock` with an index whose FA3 entry has the confusable URL and no sha256 (so lock
    downloads it to hash it), as a real process with GITHUB_TOKEN set."""
    tls_server.route(f"/%5C@github.com/whl/cu130/{FA3}", Response(200, b"PK\x03\x04 not really"))
    doc = json.loads((ROOT / "wheels_index.json").read_text())
    entry = next(w for w in doc["wheels"] if w["filename"] == FA3 and w.get("cuda") == "13.0")
    doc["wheels"] = [{**entry, "url": tricky(tls_server, f"/whl/cu130/{FA3}"), "sha256": None}]
    index = tmp_path / "index.json"
    index.write_text(json.dumps(doc))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GITHUB_TOKEN": TOKEN,
        "REQUESTS_CA_BUNDLE": str(tls_ca.bundle),
        "NO_PROXY": "127.0.0.1,localhost",
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    args = ["lock", "--fa3", "--index", str(index), "--target", str(ROOT / "tests/targets/h100.json")]
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 4, p.stdout + p.stderr
    assert no_token_seen(tls_server), tls_server.requests
    assert f"127.0.0.1:{port(tls_server)}" in p.stderr and TOKEN not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr


def test_userinfo_that_names_github_does_not_get_the_token(tls_server: Server, tmp_path: Path) -> None:
    """``https://github.com@127.0.0.1:PORT/...`` goes to 127.0.0.1 by every parser: no token there."""
    wheel = make_wheel(tmp_path / "w")
    tls_server.route(f"/{wheel.name}", Response(200, wheel.read_bytes()))
    url = f"https://github.com@127.0.0.1:{port(tls_server)}/{wheel.name}"
    res = download(url, tmp_path / "x.part", policy=FAST, environ={"GITHUB_TOKEN": TOKEN})
    assert res.size == wheel.stat().st_size and res.final_url.startswith("https://***@127.0.0.1:")
    assert tls_server.requests and no_token_seen(tls_server)


def test_a_mirrors_credentials_follow_a_redirect_on_its_host_only(
    mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror's own credentials (.netrc, or user:password in --index-url) went with the first request
    only: every redirect dropped them, even one to the same host (a missing trailing slash, Artifactory's
    and devpi's file redirects), so the next answer was 401. They follow a redirect on the same host and
    port, as requests has them; never one to another host, and GITHUB_TOKEN keeps its own rule."""
    from flashdoctor.actions.net.http import Http, HttpPolicy

    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login mirror-user password mirror-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    other = mirror.base.replace("127.0.0.1", "localhost")
    mirror.route("/simple/flash-attn", Response(301, "", {"Location": "/simple/flash-attn/"}))
    mirror.route("/simple/flash-attn/", Response(200, "<html></html>"))
    mirror.route("/away", Response(302, "", {"Location": other + "/simple/flash-attn/"}))
    with Http(HttpPolicy(retries=0), {"GITHUB_TOKEN": TOKEN}) as http:
        http.get(mirror.base + "/simple/flash-attn")
        http.get(other.replace("http://", "http://u:pw@") + "/simple/flash-attn")  # no .netrc entry
        http.get(mirror.base + "/away")
    auth = [(r.path, r.headers.get("Authorization", "")) for r in mirror.requests]
    netrc_basic, url_basic = "Basic bWlycm9yLXVzZXI6bWlycm9yLXB3", "Basic dTpwdw=="
    assert auth == [
        ("/simple/flash-attn", netrc_basic),
        ("/simple/flash-attn/", netrc_basic),
        ("/simple/flash-attn", url_basic),
        ("/simple/flash-attn/", url_basic),
        ("/away", netrc_basic),
        ("/simple/flash-attn/", ""),  # localhost: another host, and no .netrc entry for it
    ]
    assert no_token_seen(mirror)


def test_credentials_in_the_url_win_over_netrc_as_pip_has_them(
    mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With user:password in the URL and other credentials for the same host in .netrc, requests sent
    .netrc's (it prefers them to the URL's) where pip sends the URL's: a mirror that takes only the ones
    the user wrote into --index-url answered 401, also after a redirect on its host. The URL's go now, and
    to later URLs on its host and port that carry none (before .netrc's, as pip); .netrc's go where neither
    gives any, and to no other host after a redirect."""
    from flashdoctor.actions.net.http import Http, HttpPolicy

    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url_basic = "Basic dTpwdw=="  # u:pw (the server takes no other)
    mirror.require(url_basic)
    mirror.route("/simple/flash-attn", Response(301, "", {"Location": "/simple/flash-attn/"}))
    mirror.route("/simple/flash-attn/", Response(200, "<html></html>"))
    other = mirror.base.replace("127.0.0.1", "localhost")
    mirror.route("/away", Response(302, "", {"Location": other + "/simple/flash-attn/"}))
    with Http(HttpPolicy(retries=0), {}) as http:
        page = http.get(mirror.base.replace("http://", "http://u:pw@") + "/simple/flash-attn")
        assert page.status == 200, [(r.path, r.headers.get("Authorization")) for r in mirror.requests]
        # a URL without its own: the index URL's, remembered for the host and port, before .netrc's (as pip)
        assert http.get(mirror.base + "/simple/flash-attn/").status == 200
        http.get(mirror.base.replace("http://", "http://u:pw@") + "/away")
    auth = [(r.path, r.headers.get("Authorization", "")) for r in mirror.requests]
    assert auth == [
        ("/simple/flash-attn", url_basic),
        ("/simple/flash-attn/", url_basic),
        ("/simple/flash-attn/", url_basic),
        ("/away", url_basic),
        ("/simple/flash-attn/", ""),  # localhost: another host; neither the URL's nor 127.0.0.1's .netrc
    ]
