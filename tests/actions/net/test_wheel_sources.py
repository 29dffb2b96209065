"""The wheel source kinds (listing and digest lookup) and the live index build, against real HTTP servers
on 127.0.0.1 that speak the GitHub Releases API, PEP 691/503 simple pages and the PyPI JSON API (and
misbehave on purpose)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.http import TOKEN_HOSTS, Http, HttpPolicy
from flashdoctor.actions.net.pep503 import fetch_project
from flashdoctor.actions.net.sources import (
    GITHUB_API,
    KINDS,
    PYPI,
    SourceContext,
    github_releases,
    list_source,
)
from flashdoctor.decide.wheels import builder
from flashdoctor.decide.wheels.index import load_index
from flashdoctor.errors import NetworkError
from tests.support.loopback import Response, Server, serve
from tests.support.paths import ROOT, SCRIPTS

pytestmark = pytest.mark.system  # real servers on loopback

TOKEN = "ghp_TESTTOKEN0123456789secret"
OFFICIAL = "Dao-AILab/flash-attention"
GH = "https://github.com/Dao-AILab/flash-attention/releases/download"
FA2 = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
FA2_LATE = "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
FA2_OLD = "flash_attn-2.8.2+cu12torch2.7cxx11abiFALSE-cp311-cp311-linux_x86_64.whl"
FA3 = "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"


def releases_path(repo: str, page: int | None = None) -> str:
    return f"/repos/{repo}/releases?per_page=100" + (f"&page={page}" if page else "")


def asset(name: str, tag: str, created: str, digest: str | None = None) -> dict[str, Any]:
    a = {
        "name": name,
        "browser_download_url": f"{GH}/{tag}/{name.replace('+', '%2B')}",
        "created_at": created,
    }
    if digest:
        a["digest"] = digest
    return a


PAGE1 = [
    {
        "tag_name": "v2.8.3",
        "published_at": "2025-08-14T23:00:00Z",
        "assets": [
            asset(FA2, "v2.8.3", "2025-08-15T01:00:00Z", "sha256:" + "ab" * 32),
            asset(FA2_LATE, "v2.8.3", "2025-10-01T00:00:00Z"),  # uploaded weeks later
            asset("SHA256SUMS.txt", "v2.8.3", "2025-08-15T01:00:00Z"),
        ],
    },
    {"tag_name": "v9.9.9-draft", "draft": True, "published_at": None, "assets": []},
]
PAGE2 = [
    {
        "tag_name": "v2.8.2",
        "published_at": "2025-07-10T00:00:00Z",
        "assets": [asset(FA2_OLD, "v2.8.2", "2025-07-10T02:00:00Z")],
    }
]


@pytest.fixture
def gh() -> Iterator[Server]:
    with serve() as s:
        s.route(
            releases_path(OFFICIAL),
            Response(
                200, PAGE1, {"Link": f'<{{base}}{releases_path(OFFICIAL, 2)}>; rel="next", <x>; rel="last"'}
            ),
        )
        s.json(releases_path(OFFICIAL, 2), PAGE2)
        yield s


@pytest.fixture
def other() -> Iterator[Server]:
    with serve() as s:
        yield s


def ctx_for(gh: Server, token: str | None = TOKEN, retries: int = 2, max_pages: int = 50) -> SourceContext:
    """The kinds' context with the GitHub API (and its token) on ``gh``."""
    env = {"GITHUB_TOKEN": token} if token else {}
    port = gh.base.rsplit(":", 1)[1]
    policy = HttpPolicy(retries=retries, backoff=0, token_hosts=TOKEN_HOSTS | {f"127.0.0.1:{port}"})
    return SourceContext(Http(policy, env), {GITHUB_API: gh.base}, max_pages=max_pages)


def releases(gh: Server, repo: str, **kw: Any) -> list[dict[str, Any]]:
    return github_releases.releases(ctx_for(gh, **kw), repo)


# -- GitHub ----------------------------------------------------------------------------------------------
def test_github_releases_follow_pages_with_the_token(gh: Server) -> None:
    got = releases(gh, OFFICIAL)
    assert [r["tag_name"] for r in got] == ["v2.8.3", "v9.9.9-draft", "v2.8.2"]
    assert len(gh.requests) == 2
    for req in gh.requests:
        assert req.headers["Authorization"] == f"Bearer {TOKEN}"
        assert req.headers["Accept"] == "application/vnd.github+json"
        assert req.headers["User-Agent"].startswith("flashdoctor/")


def test_the_token_wins_over_a_netrc_entry_for_its_host(
    gh: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GITHUB_TOKEN, given for this run, went out replaced by a ~/.netrc entry for the same host: requests adds
    .netrc's credentials to any request without ``auth`` and they overwrite an Authorization header (a stale
    entry answered 401, and the hint blamed the token)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login old-user password old-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    releases(gh, OFFICIAL)
    assert [r.headers["Authorization"] for r in gh.requests] == [f"Bearer {TOKEN}"] * 2
    releases(gh, OFFICIAL, token=None)  # no token: the .netrc entry is what there is (as before)
    assert gh.requests[-1].headers["Authorization"].startswith("Basic ")


def test_no_token_no_authorization_header(gh: Server) -> None:
    releases(gh, OFFICIAL, token=None)
    assert all("Authorization" not in r.headers for r in gh.requests)


def test_the_token_goes_to_github_only(gh: Server, other: Server) -> None:
    other.json("/pypi/flash-attn-4/json", {"releases": {}})
    other.route("/whl/cu130/flash-attn-3/", Response(200, "<html><body></body></html>"))
    ctx = ctx_for(gh)
    list_source(ctx, "pypi", {"kind": "pypi-json", "project": "flash-attn-4", "base": other.base}, "x")
    fetch_project(ctx.http, other.base + "/whl/cu130", "flash-attn-3")
    assert len(other.requests) == 2
    assert all("Authorization" not in r.headers for r in other.requests)


def test_rows_from_releases(gh: Server) -> None:
    rows = github_releases.rows_from_releases("official", OFFICIAL, releases(gh, OFFICIAL), "2026-11-25")
    by_name = {r["filename"]: r for r in rows}
    assert set(by_name) == {FA2, FA2_LATE, FA2_OLD, "SHA256SUMS.txt"} - {"SHA256SUMS.txt"}
    assert by_name[FA2]["sha256"] == "ab" * 32
    assert by_name[FA2]["in_tag_matrix"] is True
    assert by_name[FA2_LATE]["in_tag_matrix"] is False
    assert "(added after the release)" in by_name[FA2_LATE]["evidence"]
    assert by_name[FA2_OLD]["sha256"] is None


def test_server_errors_are_retried(gh: Server) -> None:
    path = releases_path("a/b")
    gh.route(path, Response(500, "boom"), Response(503, "busy"), Response(200, []))
    assert releases(gh, "a/b", retries=3) == []
    assert len(gh.hits(path)) == 3


def test_persistent_server_error_is_a_network_error(gh: Server) -> None:
    gh.route(releases_path("a/b"), Response(502, "bad gateway"))
    with pytest.raises(NetworkError, match="HTTP 502"):
        releases(gh, "a/b", retries=1)


def test_error_bodies_never_show_the_token(gh: Server) -> None:
    gh.route(
        releases_path("a/b"),
        Response(404, f"no such repo (you sent Bearer {TOKEN})", {"Content-Type": "text/plain"}),
    )
    with pytest.raises(NetworkError) as exc:
        releases(gh, "a/b")
    assert "HTTP 404" in exc.value.message
    assert TOKEN not in exc.value.message and "***" in exc.value.message


def test_rate_limit_says_what_to_do(gh: Server) -> None:
    gh.route(
        releases_path("a/b"),
        Response(403, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0"}),
    )
    with pytest.raises(NetworkError, match="rate limit") as exc:
        releases(gh, "a/b", token=None)
    assert exc.value.hint is not None and "GITHUB_TOKEN" in exc.value.hint


def test_bad_credentials(gh: Server) -> None:
    gh.route(releases_path("a/b"), Response(401, {"message": "Bad credentials"}))
    with pytest.raises(NetworkError, match="HTTP 401 from the GitHub API") as exc:
        releases(gh, "a/b")
    assert exc.value.hint == "check GITHUB_TOKEN"


def test_html_instead_of_json(gh: Server) -> None:
    gh.route(releases_path("a/b"), Response(200, "<html>maintenance</html>"))
    with pytest.raises(NetworkError, match="not JSON"):
        releases(gh, "a/b")


def endless(server: Server, path: str, pages: int = 6) -> list[str]:
    """``pages`` distinct pages from ``path``, each linking the next (as a listing that never ends)."""
    paths = [path] + [f"{path}&page={n}" for n in range(2, pages + 1)]
    for here, there in zip(paths, [*paths[1:], paths[-1] + "0"]):
        server.route(here, Response(200, [], {"Link": f'<{{base}}{there}>; rel="next"'}))
    return paths


def test_pagination_is_bounded(gh: Server) -> None:
    paths = endless(gh, releases_path("a/b"))
    with pytest.raises(NetworkError, match="more than 3 pages"):
        releases(gh, "a/b", max_pages=3)
    assert [r.path for r in gh.requests] == paths[:3]


def test_pagination_that_loops_stops_at_the_first_page_read_again(gh: Server) -> None:
    # Page 2 links back to page 1: refused at once, not re-read up to max_pages (each read spends the
    # API's rate limit: 60 an hour without a token).
    first, second = releases_path("a/b"), releases_path("a/b", 2)
    gh.route(first, Response(200, [], {"Link": f'<{{base}}{second}>; rel="next"'}))
    gh.route(second, Response(200, [], {"Link": f'<{{base}}{first}>; rel="next"'}))
    with pytest.raises(NetworkError, match="the pages loop") as exc:
        releases(gh, "a/b")
    assert [r.path for r in gh.requests] == [first, second]
    assert exc.value.message.startswith(f"{gh.base}{second}: ")


def test_a_next_page_on_another_host_is_refused_and_gets_no_token(gh: Server, other: Server) -> None:
    # GitHub's Link header names api.github.com: a "next" page elsewhere would put another host's answer
    # into the official listing (and the listing cut short there must not replace the index's entries).
    other.json("/x", [{"tag_name": "v6.6.6", "assets": [asset(FA2, "v6.6.6", "2025-08-15T01:00:00Z")]}])
    gh.route(releases_path("a/b"), Response(200, [], {"Link": f'<{other.base}/x>; rel="next"'}))
    with pytest.raises(NetworkError, match="the next page is on another host") as exc:
        releases(gh, "a/b")
    assert other.requests == [] and TOKEN not in exc.value.message
    assert "127.0.0.1:" + other.base.rsplit(":", 1)[1] in exc.value.message


def test_a_relative_next_link_is_read_against_the_page(gh: Server) -> None:
    gh.route(releases_path("a/b"), Response(200, [], {"Link": '<?per_page=100&page=2>; rel="next"'}))
    gh.json("/repos/a/b/releases?per_page=100&page=2", [{"tag_name": "v1", "assets": []}])
    assert [r["tag_name"] for r in releases(gh, "a/b")] == ["v1"]


def test_connection_refused() -> None:
    with serve() as s:
        base = s.base
    ctx = SourceContext(Http(HttpPolicy(retries=0)), {GITHUB_API: base})
    with pytest.raises(NetworkError, match="failed after 1 attempts: connection refused"):
        github_releases.releases(ctx, "a/b")


# -- PEP 691 / PEP 503 ---------------------------------------------------------------------------------
def test_simple_page_json(other: Server) -> None:
    other.route(
        "/whl/cu128/flash-attn-3/",
        Response(
            200,
            {
                "meta": {"api-version": "1.1"},
                "name": "flash-attn-3",
                "files": [
                    {"filename": FA3, "url": f"../../{FA3}", "hashes": {"sha256": "cd" * 32}},
                    {
                        "filename": "flash_attn_3-3.0.0.tar.gz",
                        "url": "x.tar.gz",
                        "hashes": {},
                        "yanked": "bad",
                    },
                ],
            },
            {"Content-Type": "application/vnd.pypi.simple.v1+json"},
        ),
    )
    page, files = fetch_project(Http(), other.base + "/whl/cu128", "flash-attn-3")
    assert page.url == other.base + "/whl/cu128/flash-attn-3/"
    assert (files[0].filename, files[0].url, files[0].sha256, files[0].yanked) == (
        FA3,
        f"{other.base}/whl/{FA3}",
        "cd" * 32,
        False,
    )
    assert files[1].yanked is True and files[1].yanked_reason == "bad"
    assert "application/vnd.pypi.simple.v1+json" in other.requests[0].headers["Accept"]


def test_simple_page_html(other: Server) -> None:
    html = (
        "<!DOCTYPE html><html><body><h1>Links for flash-attn-3</h1>\n"
        f'<a href="/whl/cu128/{FA3.replace("+", "%2B")}#sha256={"ef" * 32}">{FA3}</a><br/>\n'
        f'<a href="old/{FA3}" data-yanked="broken">{FA3}</a>\n</body></html>'
    )
    other.route("/whl/cu128/flash-attn-3/", Response(200, html))
    _page, files = fetch_project(Http(), other.base + "/whl/cu128", "flash-attn-3")
    assert [(f.filename, f.url, f.sha256, f.yanked, f.yanked_reason) for f in files] == [
        (FA3, f"{other.base}/whl/cu128/{FA3}", "ef" * 32, False, None),
        (FA3, f"{other.base}/whl/cu128/flash-attn-3/old/{FA3}", None, True, "broken"),
    ]


# -- PyPI JSON -----------------------------------------------------------------------------------------
PYPI_DOC = {
    "info": {"name": "flash-attn-4", "version": "4.0.0b2"},
    "releases": {
        "0.0.1": [{"filename": "flash_attn_4-0.0.1-py3-none-any.whl", "url": "/files/flash_attn_4-0.0.1-py3-none-any.whl",
                   "digests": {"sha256": "01" * 32}, "yanked": True, "requires_python": ">=3.10",
                   "packagetype": "bdist_wheel", "python_version": "py3", "upload_time": "2026-02-09T17:45:40"}],
        "4.0.0b2": [
            {"filename": "flash_attn_4-4.0.0b2-py3-none-any.whl", "url": "../../files/flash_attn_4-4.0.0b2-py3-none-any.whl",
             "digests": {"sha256": "02" * 32}, "yanked": False, "requires_python": ">=3.10",
             "packagetype": "bdist_wheel", "python_version": "py3", "upload_time": "2026-03-01T00:00:00"},
            {"filename": "flash_attn_4-4.0.0b2.tar.gz", "url": "/files/flash_attn_4-4.0.0b2.tar.gz",
             "digests": {"sha256": "03" * 32}, "yanked": False, "requires_python": ">=3.10",
             "packagetype": "sdist", "python_version": "source", "upload_time": "2026-03-01T00:00:00"},
        ],
    },
}  # fmt: skip


def test_pypi_files(other: Server) -> None:
    other.json("/pypi/flash-attn-4/json", PYPI_DOC)
    ctx = SourceContext(Http(), {PYPI: other.base})
    rows = KINDS["pypi-json"].list_rows(ctx, "pypi", {"project": "flash-attn-4"}, "2026-11-25").rows
    assert [(r["filename"], r["url"], r["sha256"], r["yanked"]) for r in rows] == [
        ("flash_attn_4-0.0.1-py3-none-any.whl", f"{other.base}/files/flash_attn_4-0.0.1-py3-none-any.whl", "01" * 32, True),
        ("flash_attn_4-4.0.0b2-py3-none-any.whl", f"{other.base}/files/flash_attn_4-4.0.0b2-py3-none-any.whl", "02" * 32, False),
    ]  # fmt: skip
    assert rows[1]["requires_python"] == ">=3.10"
    assert "uploaded 2026-03-01T00:00:00" in rows[1]["evidence"]


def test_fa4_urls_are_the_json_apis_hashed_paths_never_the_legacy_path() -> None:
    """issue 17: the legacy "packages/py3/f/flash-attn-4/<file>" path returned 404 where pip fetched the
    file from the hashed path the JSON API gives; the committed index must carry the latter."""
    index = load_index(ROOT / "wheels_index.json")
    fa4 = index.for_variant("fa4")
    assert fa4, "the committed index lists FA4 wheels"
    for e in fa4:
        assert "/packages/py3/f/flash-attn-4/" not in e.url, e.url
        assert e.url.startswith("https://files.pythonhosted.org/packages/") and e.url.endswith(e.filename)
        assert e.sha256 and len(e.sha256) == 64


# -- the script, live, end to end ----------------------------------------------------------------------
def serve_everything(gh: Server, other: Server) -> None:
    sources = builder.wheel_sources()
    bundled = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))["wheels"]
    for name, src in sources.items():
        if src["kind"] == "github-releases" and src["repo"] != OFFICIAL:
            # one release with one of its files (a listing of none keeps the source's entries as they were)
            w = next(w for w in bundled if w["source"] == name)
            url = f"https://github.com/{src['repo']}/releases/download/{w['tag']}/{quote(w['filename'])}"
            gh.json(
                releases_path(src["repo"]),
                [{"tag_name": w["tag"], "published_at": "2026-05-01T00:00:00Z", "assets": [
                    {"name": w["filename"], "browser_download_url": url, "created_at": "2026-05-01T00:00:00Z"}]}],
            )  # fmt: skip
    mjun = "mjun0812/flash-attention-prebuild-wheels"
    rebuilt = "flash_attn-2.8.3+cu130torch2.11-cp312-cp312-linux_x86_64.whl"
    mjun_url = "https://github.com/mjun0812/flash-attention-prebuild-wheels/releases/download"
    gh.json(
        releases_path(mjun),
        [
            {"tag_name": "v0.9.4", "published_at": "2026-05-01T00:00:00Z", "assets": [
                {"name": rebuilt, "browser_download_url": f"{mjun_url}/v0.9.4/{rebuilt}", "created_at": "2026-05-01T00:00:00Z"}]},
            {"tag_name": "v0.9.1", "published_at": "2026-04-01T00:00:00Z", "assets": [
                {"name": rebuilt, "browser_download_url": f"{mjun_url}/v0.9.1/{rebuilt}", "created_at": "2026-04-01T00:00:00Z"}]},
        ],
    )  # fmt: skip
    for cuda in sources["pytorch-index"]["indexes"]:
        tag = "cu" + cuda.replace(".", "")
        other.route(
            f"/whl/{tag}/flash-attn-3/",
            Response(200, f'<a href="../{FA3}#sha256={"0f" * 32}">{FA3}</a>'),
        )
    other.json("/pypi/flash-attn-4/json", PYPI_DOC)


def run_script(
    gh: Server, other: Server, out: Path, token: str, *more: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GITHUB_TOKEN=token)
    args = [
        *more,
        "--github-api",
        gh.base,
        "--pytorch-index",
        other.base + "/whl",
        "--pypi",
        other.base,
        "--output",
        str(out),
    ]
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "update_wheels_index.py"), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_live_build_end_to_end(gh: Server, other: Server, tmp_path: Path) -> None:
    serve_everything(gh, other)
    out = tmp_path / "wheels_index.json"
    r = run_script(gh, other, out, TOKEN)
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout + r.stderr
    assert all(req.headers.get("Authorization") == f"Bearer {TOKEN}" for req in gh.requests)
    assert all("Authorization" not in req.headers for req in other.requests)

    index = load_index(out)
    assert index.built_from == "live"
    by = {(e.filename, e.cuda if e.source == "pytorch-index" else None): e for e in index.entries}
    fa2 = by[(FA2, None)]
    assert (fa2.sha256, fa2.url, fa2.glibc) == ("ab" * 32, f"{GH}/v2.8.3/{FA2.replace('+', '%2B')}", (2, 35))
    late = by[(FA2_LATE, None)]
    assert "glibc" in late.inferred and late.archs == ("sm_80", "sm_90", "sm_100", "sm_120")
    old = by[(FA2_OLD, None)]
    assert old.abi is True and "abi" in old.inferred  # FALSE label, torch 2.7: a CXX11-ABI build
    mjun = by[("flash_attn-2.8.3+cu130torch2.11-cp312-cp312-linux_x86_64.whl", None)]
    assert mjun.tag == "v0.9.4" and mjun.alt_tags == ("v0.9.1",)
    assert mjun.alt_urls() == (mjun.url.replace("v0.9.4", "v0.9.1"),)
    fa3 = [e for e in index.entries if e.filename == FA3]
    assert sorted(e.cuda for e in fa3) == ["12.6", "12.8", "12.9", "13.0"]  # type: ignore[type-var]
    assert all(e.sha256 == "0f" * 32 and e.url.startswith(other.base + "/whl/") for e in fa3)
    fa4 = sorted(e.filename for e in index.for_variant("fa4"))
    assert fa4 == ["flash_attn_4-0.0.1-py3-none-any.whl", "flash_attn_4-4.0.0b2-py3-none-any.whl"]
    doc = json.loads(out.read_text())
    assert {i["name"] for i in doc["inputs"]} >= {f"github:{OFFICIAL}", "pypi:flash-attn-4"}


def test_live_build_fails_cleanly(gh: Server, other: Server, tmp_path: Path) -> None:
    serve_everything(gh, other)
    gh.route(releases_path(OFFICIAL), Response(401, {"message": f"Bad credentials {TOKEN}"}))
    out = tmp_path / "wheels_index.json"
    r = run_script(gh, other, out, TOKEN)
    assert r.returncode == 4
    assert "HTTP 401 from the GitHub API" in r.stderr and "check GITHUB_TOKEN" in r.stderr
    assert TOKEN not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_refresh_one_source_keeps_every_other_entry(gh: Server, other: Server, tmp_path: Path) -> None:
    """`--refresh pypi` re-reads only FA4 from (a loopback mirror of) PyPI's JSON API: every other line of
    the committed index stays byte for byte, the FA4 lines are the mirror's, and its input is replaced."""
    serve_everything(gh, other)
    out = tmp_path / "wheels_index.json"
    before = (ROOT / "wheels_index.json").read_text()
    out.write_text(before)
    r = run_script(gh, other, out, TOKEN, "--refresh", "pypi")
    assert r.returncode == 0, r.stderr
    after = out.read_text()
    keep = [ln for ln in before.splitlines() if '"source":"pypi"' not in ln and '"name": "pypi:' not in ln]
    kept = [ln for ln in after.splitlines() if '"source":"pypi"' not in ln and '"name": "pypi:' not in ln]
    assert len(keep) == len(kept)
    changed = [(a, b) for a, b in zip(keep, kept) if a != b]
    # the pypi input only, and the index's date (the day of the refresh: it differs once the committed index
    # is older than today)
    assert all(any(k in a for k in ('"entries"', '"fetched"', '"generated"')) for a, _ in changed), changed[
        :3
    ]
    assert gh.requests == []  # nothing else was read
    fa4 = sorted(e.filename for e in load_index(out).for_variant("fa4"))
    assert fa4 == ["flash_attn_4-0.0.1-py3-none-any.whl", "flash_attn_4-4.0.0b2-py3-none-any.whl"]
    assert all(e.url.startswith(other.base + "/files/") for e in load_index(out).for_variant("fa4"))
    bad = run_script(gh, other, out, TOKEN, "--refresh", "nope")
    assert bad.returncode == 2 and "unknown source(s) nope" in bad.stderr


# -- Hugging Face --------------------------------------------------------------------------------------------
HF_REPO = "lldacing/flash-attention-windows-wheel"
HF_WHEEL = "flash_attn-2.7.4.post1+cu128torch2.7.0cxx11abiFALSE-cp312-cp312-win_amd64.whl"
HF_TREE = f"/api/models/{HF_REPO}/tree/main?recursive=true"


def hf_entry(path: str, lfs: str | None) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "file", "path": path, "size": 123, "oid": "9" * 40}
    if lfs:
        e["lfs"] = {"oid": lfs, "size": 123, "pointerSize": 134}
    return e


def test_huggingface_repo_files_with_their_lfs_sha256(other: Server) -> None:
    other.route(
        HF_TREE,
        Response(
            200,
            [
                {"type": "directory", "path": "old", "oid": "8" * 40},
                hf_entry(HF_WHEEL, "AB" * 32),
                hf_entry("README.md", None),
            ],
            {"Link": f'<{{base}}/api/models/{HF_REPO}/tree/main?recursive=true&cursor=2>; rel="next"'},
        ),
    )
    other.json(
        f"/api/models/{HF_REPO}/tree/main?recursive=true&cursor=2",
        [hf_entry("old/flash_attn-2.7.0.post2+cu124torch2.4.0cxx11abiFALSE-cp310-cp310-win_amd64.whl", None)],
    )
    ctx = SourceContext(Http(), {"https://huggingface.co": other.base})
    listing = KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "2026-12-06")
    rows = listing.rows
    # the canonical download URL ('+' quoted), whatever host answered the listing
    assert [(r["filename"], r["url"], r["sha256"]) for r in rows] == [
        (
            HF_WHEEL,
            f"https://huggingface.co/{HF_REPO}/resolve/main/{HF_WHEEL.replace('+', '%2B')}",
            "ab" * 32,
        ),
        (
            "flash_attn-2.7.0.post2+cu124torch2.4.0cxx11abiFALSE-cp310-cp310-win_amd64.whl",
            f"https://huggingface.co/{HF_REPO}/resolve/main/old/flash_attn-2.7.0.post2%2Bcu124torch2.4.0cxx11abiFALSE-cp310-cp310-win_amd64.whl",
            None,  # not stored with LFS: its oid is a Git blob id, not a sha256 of the file
        ),
    ]
    assert rows[0]["evidence"] == f"huggingface-api:{HF_REPO} {HF_WHEEL} (fetched 2026-12-06)"
    assert listing.inputs == [{"name": f"huggingface:{HF_REPO}", "entries": 2, "fetched": "2026-12-06"}]
    # and the index builder makes entries of them
    entries = [builder.entry_from_row(r) for r in rows]
    assert all(e is not None and e["url"].startswith("https://huggingface.co/") for e in entries)


def test_huggingface_pages_stay_on_the_host_and_are_bounded(other: Server) -> None:
    # A "next" link to another host is refused (the listing cut short there would replace the index's
    # entries of the source with fewer); a listing that loops or never ends stops, with the reason.
    other.route(
        HF_TREE,
        Response(200, [hf_entry(HF_WHEEL, None)], {"Link": '<https://elsewhere.example/x>; rel="next"'}),
    )
    ctx = SourceContext(Http(), {"https://huggingface.co": other.base})
    with pytest.raises(
        DownloadError, match=r"the next page is on another host \(https://elsewhere.example/x\)"
    ):
        KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "d")
    assert len(other.requests) == 1
    other.route(HF_TREE, Response(200, [], {"Link": f'<{{base}}{HF_TREE}>; rel="next"'}))
    with pytest.raises(DownloadError, match=r"the pages loop"):
        KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "d")
    assert len(other.requests) == 2
    endless(other, HF_TREE)
    ctx = SourceContext(Http(), {"https://huggingface.co": other.base}, max_pages=3)
    with pytest.raises(DownloadError, match=r"more than 3 pages"):
        KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "d")


def test_huggingface_errors_are_clear(other: Server) -> None:
    ctx = SourceContext(Http(HttpPolicy(retries=0, backoff=0)), {"https://huggingface.co": other.base})
    other.route(HF_TREE, Response(200, "<html>not json</html>", {"Content-Type": "text/html"}))
    with pytest.raises(DownloadError, match=r"the answer is not JSON"):
        KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "d")
    other.route(HF_TREE, Response(404, "Repository not found"))
    with pytest.raises(DownloadError, match=r"HTTP 404"):
        KINDS["huggingface-repo"].list_rows(ctx, "community:lldacing", {"repo": HF_REPO}, "d")


def test_astrals_index_lists_content_addressed_files_with_dotted_labels(other: Server) -> None:
    # wheels.astral.sh/simple/cu130/flash-attn/ links files stored under /artifacts/<sha256>/.
    name = "flash_attn-2.8.3+cu.13.0.torch.2.11-cp312-cp312-manylinux_2_24_x86_64.whl"
    digest = "a7" * 32
    other.route(
        "/simple/cu130/flash-attn/",
        Response(200, f'<a href="/artifacts/{digest}/{name.replace("+", "%2B")}#sha256={digest}">{name}</a>'),
    )
    config = {"project": "flash-attn", "indexes": {"13.0": "https://wheels.astral.sh/simple/cu130"}}
    ctx = SourceContext(Http(), {"https://wheels.astral.sh": other.base})
    rows = KINDS["simple-index"].list_rows(ctx, "community:astral", config, "2026-12-06").rows
    assert [(r["filename"], r["sha256"], r["cuda_version"]) for r in rows] == [(name, digest, "13.0")]
    entry = builder.entry_from_row(rows[0])
    assert entry is not None and entry["cuda"] == "13.0" and entry["sha256"] == digest
    assert entry["url"].endswith(f"/artifacts/{digest}/{name.replace('+', '%2B')}")


def test_malformed_releases_and_assets_are_skipped_not_a_crash(gh: Server) -> None:
    # A broken or hostile API answer: releases and assets of the wrong shape are left out (as the other
    # kinds leave out entries they cannot read), never an internal error.
    good = asset(FA2, "v2.8.3", "2025-08-15T01:00:00Z", "sha256:" + "ab" * 32)
    gh.json(
        releases_path("a/b"),
        [
            {"tag_name": "v2.8.3", "published_at": 5, "created_at": None,
             "assets": [good, "str", {"name": 7}, {"name": FA2_OLD, "browser_download_url": 5,
                                                    "created_at": [], "digest": {"sha256": "x"}}]},
            {"tag_name": "v1", "published_at": "2025-01-01T00:00:00Z", "assets": 5},
            {"tag_name": 5, "assets": [asset(FA2_LATE, "v9", "2025-08-15T01:00:00Z")]},
            {"tag_name": "v2", "draft": False, "published_at": {"x": 1}, "assets": None},
        ],
    )  # fmt: skip
    rows = github_releases.rows_from_releases("official", "a/b", releases(gh, "a/b"), "2026-11-25")
    assert [(r["filename"], r["release_tag"], r["url"], r["sha256"]) for r in rows] == [
        (FA2, "v2.8.3", good["browser_download_url"], "ab" * 32),
        (FA2_OLD, "v2.8.3", None, None),
    ]


def test_pypi_fields_of_the_wrong_type_read_as_absent(other: Server) -> None:
    f = PYPI_DOC["releases"]["4.0.0b2"][0]  # type: ignore[index]
    other.json("/pypi/flash-attn-4/json", {"releases": {"4.0.0b2": [dict(f, requires_python=5)]}})
    ctx = SourceContext(Http(), {PYPI: other.base})
    (row,) = KINDS["pypi-json"].list_rows(ctx, "pypi", {"project": "flash-attn-4"}, "d").rows
    assert row["requires_python"] is None
    assert builder.entry_from_row(row) is not None
