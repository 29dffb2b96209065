"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves on purpose (README "Downloads").

Each fault must end in a correct retry or a clear error, and never leave a partial file in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import ChecksumError, FetchOptions, obtain
from flashdoctor.actions.net.download import (
    DiskError,
    DownloadError,
    DownloadPolicy,
    NotAWheelError,
    check_url,
    download,
    redact,
)
from flashdoctor.model.plan import WheelRef
from tests.support.install_helpers import FaultServer, make_wheel, sha256_of
from tests.support.venvs import child_env

pytestmark = pytest.mark.system

FAST = DownloadPolicy(connect_timeout=2, read_timeout=0.5, retries=3, backoff=0.01, backoff_max=0.05)
DRIVER = Path(__file__).with_name("fetch_driver.py")


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    # ~300 KiB of incompressible data so that "mid-body" means something
    return make_wheel(tmp_path / "src", pad_bytes=300_000)


def ref_for(url: str, wheel: Path, sha: bool = True) -> WheelRef:
    return WheelRef(
        filename=wheel.name,
        url=url,
        sha256=sha256_of(wheel) if sha else None,
        source="official",
        version="2.8.3+cu12torch2.13cxx11abiTRUE",
    )


def cache_files(root: Path) -> dict[str, list[str]]:
    """Every file in the cache, by area: what a reader could see under a final name vs scratch."""
    out: dict[str, list[str]] = {"final": [], "tmp": [], "urls": []}
    for area, key in (("sha256", "final"), ("tmp", "tmp"), ("urls", "urls")):
        d = root / area
        if d.is_dir():
            out[key] = sorted(str(p.relative_to(root)) for p in d.rglob("*") if p.is_file())
    return out


def assert_cache_clean(root: Path) -> None:
    files = cache_files(root)
    assert files["final"] == [] and files["tmp"] == [] and files["urls"] == [], files


def fetch(server_url: str, wheel: Path, root: Path, policy: DownloadPolicy = FAST, sha: bool = True):  # type: ignore[no-untyped-def]
    return obtain(
        ref_for(server_url, wheel, sha), FetchOptions(cache=WheelCache(root), policy=policy), {}, "flash-attn"
    )


# -- correct retries -------------------------------------------------------------------------------
def test_plain_download_lands_in_content_addressed_cache(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes())
    art = fetch(url, wheel, tmp_path / "c")
    assert art.origin == "download" and art.sha256 == sha256_of(wheel) and art.sha256_from == "index"
    assert art.path == WheelCache(tmp_path / "c").path_for(art.sha256, wheel.name)
    assert art.path.read_bytes() == wheel.read_bytes()
    assert cache_files(tmp_path / "c")["tmp"] == []
    # second time: from the cache, no request
    art2 = fetch(url, wheel, tmp_path / "c")
    assert art2.origin == "cache" and server.hits("/w.whl") == 1


def test_connection_dropped_mid_body_resumes_with_range(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["drop:131072", "ok"])
    art = fetch(url, wheel, tmp_path / "c")
    assert art.resumed and art.attempts == 2
    ranges = [h.get("range") for p, h in server.requests if p == "/w.whl"]
    assert ranges == [None, "bytes=131072-"]
    assert art.path.read_bytes() == wheel.read_bytes()


def test_drop_on_a_server_without_ranges_restarts_cleanly(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["drop:100000", "ok"], ranges=False)
    art = fetch(url, wheel, tmp_path / "c")
    assert not art.resumed and art.attempts == 2
    assert art.path.read_bytes() == wheel.read_bytes()


def test_500_then_200_is_retried_with_backoff(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["status:500", "status:503", "ok"])
    waits: list[float] = []
    res = download(
        url, tmp_path / "x.part", policy=DownloadPolicy(backoff=0.5, backoff_max=8), sleep=waits.append
    )
    assert res.attempts == 3 and waits == [0.5, 1.0]  # exponential
    assert res.sha256 == sha256_of(wheel)


def test_5xx_forever_gives_up_after_the_bound(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["status:502"])
    with pytest.raises(DownloadError, match=r"failed after 4 attempts: HTTP 502"):
        fetch(url, wheel, tmp_path / "c")
    assert server.hits("/w.whl") == 4
    assert_cache_clean(tmp_path / "c")


def test_truncated_body_is_resumed(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["truncate:200000", "ok"])
    art = fetch(url, wheel, tmp_path / "c")
    assert art.resumed and art.path.read_bytes() == wheel.read_bytes()


def test_always_truncated_body_is_a_clear_error(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["truncate:200000"], ranges=False)
    with pytest.raises(DownloadError, match=r"broke mid-body|cut short"):
        fetch(url, wheel, tmp_path / "c")
    assert_cache_clean(tmp_path / "c")


def test_stalling_server_times_out_then_retry_succeeds(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["stall:65536", "ok"])
    t0 = time.monotonic()
    art = fetch(url, wheel, tmp_path / "c")
    assert art.attempts == 2 and time.monotonic() - t0 < 10
    assert art.path.read_bytes() == wheel.read_bytes()


def test_stalling_server_forever_is_a_timeout_error(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), script=["stall:1000"])
    with pytest.raises(DownloadError, match="read timeout"):
        fetch(url, wheel, tmp_path / "c", policy=DownloadPolicy(read_timeout=0.3, retries=1, backoff=0.01))
    assert_cache_clean(tmp_path / "c")


# -- clear errors, nothing cached --------------------------------------------------------------------
def test_404_fails_at_once_with_a_hint(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as ei:
        fetch(server.url("/missing.whl"), wheel, tmp_path / "c")
    assert "HTTP 404" in ei.value.message and ei.value.hint and "index is stale" in ei.value.hint
    assert server.hits("/missing.whl") == 1  # not retried
    assert ei.value.return_code == 4
    assert_cache_clean(tmp_path / "c")


def test_wrong_bytes_fail_loudly_and_are_deleted(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    other = make_wheel(tmp_path / "other", files={"flash_attn/__init__.py": "x = 1\n"})
    url = server.add("/w.whl", other.read_bytes())
    with pytest.raises(ChecksumError) as ei:
        fetch(url, wheel, tmp_path / "c")
    assert f"expected {sha256_of(wheel)}, got {sha256_of(other)}" in ei.value.message
    assert_cache_clean(tmp_path / "c")


@pytest.mark.parametrize("kind", ["html", "html-octet"])
def test_html_error_page_served_as_the_wheel(
    server: FaultServer, wheel: Path, tmp_path: Path, kind: str
) -> None:
    url = server.add("/w.whl", script=[kind])
    with pytest.raises(NotAWheelError, match="HTML page"):
        fetch(url, wheel, tmp_path / "c", sha=False)
    assert server.hits("/w.whl") == 1  # retrying a login page cannot help
    assert_cache_clean(tmp_path / "c")


def test_a_zip_that_is_not_this_wheel_is_refused(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    other = make_wheel(tmp_path / "o", dist="flash_attn", version="2.7.0")  # right project, wrong version
    url = server.add("/w.whl", other.read_bytes())
    with pytest.raises(NotAWheelError, match=r"contains version 2\.7\.0"):
        fetch(url, wheel, tmp_path / "c", sha=False)
    assert_cache_clean(tmp_path / "c")


def test_redirect_loop(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    server.add("/a.whl", script=["redirect:/b.whl"])
    server.add("/b.whl", script=["redirect:/a.whl"])
    with pytest.raises(DownloadError, match="redirects in a loop"):
        fetch(server.url("/a.whl"), wheel, tmp_path / "c")
    assert server.hits("/a.whl") + server.hits("/b.whl") <= 12  # bounded
    assert_cache_clean(tmp_path / "c")


def test_redirect_to_plain_http_elsewhere_is_refused_before_it_is_followed(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    server.add("/w.whl", script=["redirect:http://wheels.example.invalid/w.whl"])
    with pytest.raises(DownloadError, match="refusing plain http"):
        fetch(server.url("/w.whl"), wheel, tmp_path / "c")
    assert_cache_clean(tmp_path / "c")


def test_url_policy() -> None:
    check_url("https://github.com/x.whl", allow_http=False)
    check_url("http://127.0.0.1:8080/x.whl", allow_http=False)
    check_url("http://localhost/x.whl", allow_http=False)
    check_url("http://[::1]:9/x.whl", allow_http=False)
    check_url("http://mirror.corp/x.whl", allow_http=True)
    for bad in ("http://mirror.corp/x.whl", "ftp://x/y.whl", "file:///etc/passwd", "https:///nohost"):
        with pytest.raises(DownloadError):
            check_url(bad, allow_http=False)
    assert redact("https://u:p@h.example/a.whl?X-Amz-Signature=abc&x=1&token=t") == (
        "https://***@h.example/a.whl?X-Amz-Signature=REDACTED&x=1&token=REDACTED"
    )


def test_github_token_only_to_token_hosts_never_across_redirects(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    """localhost stands in for github.com, 127.0.0.1 for the storage host it redirects to."""
    secret = "ghp_SECRET_test_token_123"
    server.add("/gh.whl", script=[f"redirect:{server.url('/store.whl')}"])
    server.add("/store.whl", wheel.read_bytes())
    pol = DownloadPolicy(token_hosts=frozenset({"localhost"}), backoff=0.01)
    res = download(
        server.url("/gh.whl", host="localhost"),
        tmp_path / "a.part",
        policy=pol,
        environ={"GITHUB_TOKEN": secret},
    )
    assert res.sha256 == sha256_of(wheel)
    auth = {p: h.get("authorization") for p, h in server.requests}
    assert auth == {"/gh.whl": f"Bearer {secret}", "/store.whl": None}
    # a host not on the list never sees it
    download(server.url("/store.whl"), tmp_path / "b.part", policy=pol, environ={"GITHUB_TOKEN": secret})
    assert server.requests[-1][1].get("authorization") is None
    # and it is never in a message
    with pytest.raises(DownloadError) as ei:
        download(
            server.url("/nope.whl", host="localhost"),
            tmp_path / "c.part",
            policy=pol,
            environ={"GITHUB_TOKEN": secret},
        )
    assert secret not in ei.value.message and secret not in (ei.value.hint or "")


def test_proxy_from_the_environment_is_used(
    server: FaultServer, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests' trust_env: HTTP_PROXY is honoured (the loopback server plays the proxy; nothing leaves)."""
    target = "http://wheels.example.invalid/w.whl"
    server.add(target, wheel.read_bytes())  # a proxy receives the absolute URL as the request path
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.setenv("NO_PROXY", "")
    res = download(target, tmp_path / "p.part", policy=DownloadPolicy(allow_http=True, backoff=0.01))
    assert res.sha256 == sha256_of(wheel) and server.hits(target) == 1


def test_corrupted_cache_entry_is_dropped_and_fetched_again(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes())
    art = fetch(url, wheel, tmp_path / "c")
    art.path.write_bytes(b"bit rot")
    art2 = fetch(url, wheel, tmp_path / "c")
    assert art2.origin == "download" and art2.path.read_bytes() == wheel.read_bytes()


def test_index_without_sha256_is_computed_and_remembered(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/w.whl", wheel.read_bytes())
    art = fetch(url, wheel, tmp_path / "c", sha=False)
    assert art.sha256_from == "computed" and art.sha256 == sha256_of(wheel)
    art2 = fetch(url, wheel, tmp_path / "c", sha=False)
    assert art2.origin == "cache" and server.hits("/w.whl") == 1


# -- processes: disk full, SIGKILL, two at once ----------------------------------------------------------
def run_driver(
    root: Path, url: str, wheel: Path, sha: bool = True, **popen_kw: object
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(DRIVER),
            str(root),
            url,
            wheel.name,
            "2.8.3+cu12torch2.13cxx11abiTRUE",
            sha256_of(wheel) if sha else "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(NO_PROXY="127.0.0.1,localhost"),
        **popen_kw,  # type: ignore[arg-type]
    )


def test_disk_full_during_the_write(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes write() fail with EFBIG past 64 KiB in the child (Python ignores SIGXFSZ), the
    same code path as ENOSPC: portable, needs no root, no mount, and cannot fill the real disk."""
    url = server.add("/w.whl", wheel.read_bytes())

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    p = run_driver(tmp_path / "c", url, wheel, preexec_fn=limit)
    out, err = p.communicate(timeout=60)
    res = json.loads(out.strip().splitlines()[-1])
    assert not res["ok"] and res["type"] == "DiskError", (out, err)
    assert "cannot write" in res["error"] and "File too large" in res["error"]
    assert server.hits("/w.whl") == 1  # not retried: retrying cannot free the disk
    assert_cache_clean(tmp_path / "c")
    assert issubclass(DiskError, DownloadError)


def test_sigkill_mid_download_leaves_nothing_under_a_final_name(
    wheel: Path, tmp_path: Path, no_proxy: None
) -> None:
    s = FaultServer()
    try:
        url = s.add("/w.whl", wheel.read_bytes(), delay_per_chunk=0.3)  # ~1.5 s for the whole body
        root = tmp_path / "c"
        p = run_driver(root, url, wheel)
        deadline = time.monotonic() + 20
        part = root / "tmp" / f"{sha256_of(wheel)}.part"
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
            time.sleep(0.02)
        assert part.exists(), "the download never started"
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL
        files = cache_files(root)
        assert files["final"] == [] and files["urls"] == [], files  # nothing visible under a final name
        # a later run succeeds, resuming the partial file
        s.routes["/w.whl"].delay_per_chunk = 0
        art = fetch(url, wheel, root)
        assert art.origin == "download" and art.path.read_bytes() == wheel.read_bytes()
        assert s.requests[-1][1].get("range", "").startswith("bytes=")
        assert cache_files(root)["tmp"] == []
    finally:
        s.close()


def test_two_fetches_at_once_download_once(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    url = server.add("/w.whl", wheel.read_bytes(), delay_per_chunk=0.05)
    root = tmp_path / "c"
    procs = [run_driver(root, url, wheel) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert all(r["ok"] for r in results), results
    assert sorted(r["origin"] for r in results) == ["cache", "download"]
    assert server.hits("/w.whl") == 1
    assert len(cache_files(root)["final"]) == 1 and cache_files(root)["tmp"] == []
    assert Path(results[0]["path"]).read_bytes() == wheel.read_bytes()


def test_download_policy_defaults_are_bounded() -> None:
    p = DownloadPolicy()
    assert 0 < p.retries <= 10 and p.backoff_max <= 60 and p.read_timeout <= 120 and p.max_redirects <= 30
    assert os.environ.get("GITHUB_TOKEN") is None  # conftest keeps tests away from a real token


# -- --index-url: a PEP 503 mirror on loopback ------------------------------------------------------------
def _mirror(server: FaultServer, wheel: Path, sha: str | None) -> str:
    frag = f"#sha256={sha}" if sha else ""
    page = f'<html><body><a href="../../files/{wheel.name}{frag}">{wheel.name}</a></body></html>'.encode()
    server.add("/simple/flash-attn/", page)
    server.add(f"/files/{wheel.name}", wheel.read_bytes())
    return server.url("/simple")


def test_mirror_serves_the_planned_wheel(server: FaultServer, wheel: Path, tmp_path: Path) -> None:
    ref = ref_for("https://github.com/never/contacted/" + wheel.name, wheel, sha=False)
    index = _mirror(server, wheel, sha256_of(wheel))
    art = obtain(
        ref, FetchOptions(cache=WheelCache(tmp_path / "c"), policy=FAST, index_url=index), {}, "flash-attn"
    )
    assert art.origin == "download" and art.sha256_from == "index"  # the mirror's #sha256= counts
    assert art.ref.url == server.url(f"/files/{wheel.name}")


def test_mirror_without_the_file_or_with_another_digest(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    index = _mirror(server, wheel, "0" * 64)
    opts = FetchOptions(cache=WheelCache(tmp_path / "c"), policy=FAST, index_url=index)
    with pytest.raises(DownloadError, match="refusing a wheel that differs"):
        obtain(ref_for("https://github.com/x/" + wheel.name, wheel), opts, {}, "flash-attn")
    other = WheelRef(
        "flash_attn-9.9.9-cp311-cp311-linux_x86_64.whl",
        "https://github.com/x/y.whl",
        None,
        "official",
        "9.9.9",
    )
    with pytest.raises(DownloadError, match="is not on the index"):
        obtain(other, opts, {}, "flash-attn")
    assert_cache_clean(tmp_path / "c")


def test_progress_bar_shows_size_speed_and_eta_on_a_terminal(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    import io

    from rich.console import Console

    from flashdoctor.render.install import RichProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    url = server.add("/w.whl", wheel.read_bytes(), script=["drop:131072", "ok"])
    download(url, tmp_path / "w.part", policy=FAST, progress=RichProgress(console), name=wheel.name)
    out = buf.getvalue()
    size_kb = f"{wheel.stat().st_size / 1000:.1f}"
    assert wheel.name in out and f"{size_kb}/{size_kb} kB" in out and "/s" in out, out[-400:]


def test_a_mirror_digest_that_is_a_path_never_names_a_file_outside_the_cache(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    """A hostile --index-url page's ``#sha256=../../../victim``: the cache named its paths by that text, so
    a used cache (sha256/ present) deleted victim/<wheel name> and put lock files outside its root."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / wheel.name).write_text("not yours to delete")
    root = tmp_path / "a" / "b" / "c"
    (root / "sha256").mkdir(parents=True)
    index = _mirror(server, wheel, "../../../victim")
    opts = FetchOptions(cache=WheelCache(root), policy=FAST, index_url=index)
    with pytest.raises(ChecksumError, match="not one") as err:
        obtain(ref_for("https://github.com/never/" + wheel.name, wheel, sha=False), opts, {}, "flash-attn")
    assert "--index-url page" in err.value.message
    assert (victim / wheel.name).read_text() == "not yours to delete"
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in outside) == [
        f"src/{wheel.name}",
        f"victim/{wheel.name}",
    ]
    assert server.hits(f"/files/{wheel.name}") == 0  # refused before the download


def test_the_cache_refuses_keys_and_names_that_are_not_its_own(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    for key in ("../x", "a" * 63, "url-../../x", "A" * 64 + "/.."):
        with pytest.raises(ValueError, match="not a cache key"):
            cache.tmp_path(key)
    with pytest.raises(ValueError, match="not a file name"):
        cache.path_for("a" * 64, "../x.whl")
    assert cache.get(sha256="../../x", filename="x.whl") is None
    assert cache.tmp_path("url-" + "0" * 32).name == "url-" + "0" * 32 + ".part"


# -- Content-Encoding: the bytes on the wire are the file ------------------------------------------------
def test_a_gzip_labelled_download_is_stored_as_sent_not_inflated(tmp_path: Path) -> None:
    """A server that labels a body Content-Encoding: gzip (though identity was asked): the file is the
    bytes sent, as pip stores them. Inflating it wrote 60 MB to disk for 60 KB received (a hostile server's
    gzip stream of a zip header and zeros inflates to whatever it likes), and five attempts of it."""
    import gzip

    from tests.support.loopback import Response, serve

    body = gzip.compress(b"PK\x03\x04" + bytes(60 << 20), compresslevel=9)
    with serve() as srv:
        srv.route("/w.whl", Response(200, body, {"Content-Encoding": "gzip"}))
        with pytest.raises(NotAWheelError, match="not a zip archive"):
            download(srv.base + "/w.whl", tmp_path / "w.part", policy=FAST, sleep=lambda s: None)
        assert len(srv.hits("/w.whl")) == 1
        # An sdist that a server labels Content-Encoding: gzip (a common misconfiguration): its bytes and
        # sha256 are the file's, so they match the digest its index publishes.
        sdist = gzip.compress(b"a tar archive" * 1000)
        srv.route("/s.tar.gz", Response(200, sdist, {"Content-Encoding": "gzip"}))
        res = download(srv.base + "/s.tar.gz", tmp_path / "s.part", policy=DownloadPolicy(expect_zip=False))
        assert res.sha256 == hashlib.sha256(sdist).hexdigest() and res.size == len(sdist)
        assert (tmp_path / "s.part").read_bytes() == sdist


# -- a file has a most: a server cannot fill the disk ---------------------------------------------------
def test_a_body_past_the_largest_file_is_refused_as_it_arrives(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    """No Content-Length and no end (a zip header, then zeros): the download stops at the policy's most,
    deletes what it wrote and does not try again. Before, only the hour's deadline ended it."""
    import dataclasses

    small = dataclasses.replace(FAST, max_file_bytes=2 << 20)
    url = server.add("/endless.whl", script=["endless:64"])
    with pytest.raises(DownloadError, match="sent more: more than any wheel or sdist") as ei:
        download(url, tmp_path / "w.part", policy=small, sleep=lambda s: None)
    assert ei.value.return_code == 4
    assert server.hits("/endless.whl") == 1  # not retried
    assert not (tmp_path / "w.part").exists()


def test_an_announced_size_past_the_largest_file_is_refused_before_the_body(
    server: FaultServer, wheel: Path, tmp_path: Path
) -> None:
    url = server.add("/huge.whl", body=wheel.read_bytes(), script=[f"huge-length:{8 << 30}"])
    with pytest.raises(DownloadError, match=f"announces {8 << 30} bytes"):
        fetch(url, wheel, tmp_path / "c")
    assert server.hits("/huge.whl") == 1
    assert_cache_clean(tmp_path / "c")
    # the default most is far above any real wheel: the same file of its true size downloads
    ok = server.add("/ok.whl", body=wheel.read_bytes())
    assert fetch(ok, wheel, tmp_path / "c2").path.read_bytes() == wheel.read_bytes()
