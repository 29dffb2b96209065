"""Getting sources: the PEP 691 index lookup and cached, verified download against a real HTTP
server on 127.0.0.1 (also misbehaving), safe unpacking, source trees, FA3 git checkouts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flashdoctor.actions.net.errors import RefusedURL
from flashdoctor.actions.net.http import Http, HttpPolicy
from flashdoctor.actions.source_build.source import (
    SIMPLE_JSON,
    download,
    fetch_sdist,
    find_sdist,
    resolve_fa2,
    resolve_fa3,
    unpack,
)
from flashdoctor.decide.source_build.hopper import fa3_setup_facts
from flashdoctor.errors import NetworkError, UsageError
from tests.support.fake_sdist import make_fake_sdist, tar_gz_bytes
from tests.support.paths import ROOT


def make_sdist(
    version: str = "2.8.3.post2", extra: dict[str, bytes] | None = None, cutlass: bool = True
) -> bytes:
    """A small archive shaped like the FA2 sdist."""
    top = f"flash_attn-{version}"
    files = {
        f"{top}/setup.py": b"print('fake')\n",
        f"{top}/flash_attn/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    if cutlass:
        files[f"{top}/csrc/cutlass/include/cutlass/cutlass.h"] = b"#pragma once\n"
    files.update(extra or {})
    return tar_gz_bytes(files)


class Index:
    """A loopback index: routes path -> (status, content type, body); counts hits."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                status, ctype, body = outer.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def publish(
        self, version: str, body: bytes, sha: str | None = None, yanked: bool = False, hashed: bool = True
    ) -> None:
        fname = f"flash_attn-{version}.tar.gz"
        self.routes[f"/files/{fname}"] = (200, "application/gzip", body)
        page = json.loads(self.routes.get("/simple/flash-attn/", (200, "", b'{"files": []}'))[2])
        page["files"].append(
            {
                "filename": fname,
                "url": f"../../files/{fname}",
                "hashes": {"sha256": sha or hashlib.sha256(body).hexdigest()} if hashed else {},
                "yanked": yanked,
            }
        )
        self.routes["/simple/flash-attn/"] = (200, SIMPLE_JSON, json.dumps(page).encode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def index() -> Iterator[Index]:
    ix = Index()
    yield ix
    ix.close()


@pytest.mark.system  # a real HTTP server on loopback
def test_find_and_download_verified_and_cached(index: Index, tmp_path: Path) -> None:
    body = make_sdist()
    index.publish("2.8.3", make_sdist("2.8.3"))
    index.publish("2.8.3.post2", body)
    ref = find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    assert ref.filename == "flash_attn-2.8.3.post2.tar.gz" and ref.url.startswith(index.url + "/files/")
    path = download(ref, tmp_path / "cache")
    assert path.read_bytes() == body
    assert path == tmp_path / "cache" / "sha256" / ref.sha256[:2] / ref.sha256 / ref.filename  # type: ignore[index]
    assert download(ref, tmp_path / "cache") == path
    assert index.hits["/files/flash_attn-2.8.3.post2.tar.gz"] == 1  # the second call used the cache


@pytest.mark.system  # a real HTTP server on loopback
def test_a_wrong_digest_leaves_nothing_behind(index: Index, tmp_path: Path) -> None:
    index.publish("2.8.3.post2", make_sdist(), sha="0" * 64)
    ref = find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    with pytest.raises(NetworkError, match="sha256"):
        download(ref, tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


@pytest.mark.system  # a real HTTP server on loopback
def test_a_flaky_file_server_is_retried(index: Index, tmp_path: Path) -> None:
    from flashdoctor.actions.net.download import DownloadPolicy

    body = make_sdist()
    index.publish("2.8.3.post2", body)
    ref = find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    index.routes["/files/flash_attn-2.8.3.post2.tar.gz"] = (502, "text/plain", b"bad gateway")
    naps: list[float] = []
    with pytest.raises(NetworkError, match="failed after 3 attempts"):
        download(ref, tmp_path, policy=DownloadPolicy(expect_zip=False, retries=2), sleep=naps.append)
    assert index.hits["/files/flash_attn-2.8.3.post2.tar.gz"] == 3 and len(naps) == 2


@pytest.mark.system  # a real HTTP server on loopback
def test_server_errors_are_retried_then_reported(index: Index) -> None:
    index.routes["/simple/flash-attn/"] = (503, "text/plain", b"busy")
    naps: list[float] = []
    http = Http(HttpPolicy(retries=2, backoff=0.5), {}, sleep=naps.append)
    with pytest.raises(NetworkError, match="after 3 attempts: HTTP 503"):
        find_sdist("2.8.3.post2", index_url=f"{index.url}/simple", http=http)
    assert index.hits["/simple/flash-attn/"] == 3 and naps == [0.5, 1.0]  # the one retry stack


@pytest.mark.system  # a real HTTP server on loopback
def test_bad_index_answers(index: Index) -> None:
    with pytest.raises(NetworkError, match="not found"):
        find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    index.routes["/simple/flash-attn/"] = (200, "application/json", b'{"meta": {}}')
    with pytest.raises(NetworkError, match="PEP 691"):
        find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    index.routes.pop("/simple/flash-attn/")
    index.publish("2.8.2", make_sdist("2.8.2"), yanked=False)
    index.publish("2.8.3.post2", make_sdist(), yanked=True)
    with pytest.raises(UsageError, match="no sdist"):
        find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")


@pytest.mark.system  # a real HTTP server on loopback
def test_an_html_page_lists_the_sdist_too_with_its_published_digest(index: Index, tmp_path: Path) -> None:
    """One PEP 503/691 reader for every fetch: the sdist finder reads PEP 503 HTML as well as JSON."""
    body = make_sdist()
    sha = hashlib.sha256(body).hexdigest()
    name = "flash_attn-2.8.3.post2.tar.gz"
    index.routes[f"/files/{name}"] = (200, "application/gzip", body)
    html = f'<html><body><a href="../../files/{name}#sha256={sha}" data-requires-python="&gt;=3.9">{name}</a>'
    index.routes["/simple/flash-attn/"] = (200, "text/html", html.encode())
    ref = find_sdist("2.8.3.post2", index_url=f"{index.url}/simple")
    got = fetch_sdist(ref, tmp_path / "cache")
    assert got.path.read_bytes() == body and got.sha256 == sha
    assert (got.verification.kind, got.verification.digest_from) == ("published-digest", "pep503-page")
    assert got.verification.describe().startswith("sha256 matches the published digest")


@pytest.mark.system  # a real HTTP server on loopback
def test_an_sdist_listed_without_a_digest_is_recorded_and_says_so(index: Index, tmp_path: Path) -> None:
    """issue 15 row 5: before, an unhashed sdist was downloaded, cached and unpacked without a word."""
    body = make_sdist()
    index.publish("2.8.3.post2", body, hashed=False)
    tree = resolve_fa2(
        None, "2.8.3.post2", tmp_path / "w", tmp_path / "cache", index_url=f"{index.url}/simple"
    )
    v = tree.verification
    assert v is not None and v.kind == "recorded"
    assert v.describe().startswith("sha256 recorded (no published digest)")
    assert "lists no sha256" in v.describe()
    sha = hashlib.sha256(body).hexdigest()
    cached = tmp_path / "cache" / "wheels" / "sha256" / sha[:2] / sha / "flash_attn-2.8.3.post2.tar.gz"
    assert cached.read_bytes() == body  # hashed and recorded under its digest
    index.routes.pop("/simple/flash-attn/")
    index.publish("2.8.3.post2", body)  # now with the digest: "matches"
    tree = resolve_fa2(
        None, "2.8.3.post2", tmp_path / "w2", tmp_path / "cache", index_url=f"{index.url}/simple"
    )
    assert tree.verification is not None and tree.verification.describe().startswith(
        "sha256 matches the published digest"
    )


@pytest.mark.system  # a real HTTP server on loopback
def test_a_plain_http_index_is_refused_before_anything_is_sent(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 15 row 5: `build --index-url http://...` sent the request. The loopback server plays the
    proxy every plain-http request would go through (nothing leaves loopback)."""
    monkeypatch.setenv("HTTP_PROXY", index.url)
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(RefusedURL, match="refusing plain http") as exc:
        find_sdist("2.8.3.post2", index_url="http://pypi-mirror.example/simple")
    assert "--allow-http" in (exc.value.hint or "")
    assert index.hits == {}
    index.routes["http://pypi-mirror.example/simple/flash-attn/"] = (200, SIMPLE_JSON, b'{"files": []}')
    with pytest.raises(UsageError, match="no sdist"):  # --allow-http: a trusted mirror may
        find_sdist("2.8.3.post2", index_url="http://pypi-mirror.example/simple", allow_http=True)
    assert index.hits == {"http://pypi-mirror.example/simple/flash-attn/": 1}


def test_unreachable_index_is_a_network_error() -> None:
    naps: list[float] = []  # the retries' waits, recorded instead of slept
    with pytest.raises(NetworkError):
        find_sdist(
            "2.8.3.post2",
            index_url="http://127.0.0.1:9/simple",
            http=Http(HttpPolicy(), {}, sleep=naps.append),
        )
    assert len(naps) == HttpPolicy().retries  # retried with backoff before giving up


@pytest.mark.system  # a real HTTP server on loopback
def test_resolve_from_index_archive_and_directory(index: Index, tmp_path: Path) -> None:
    index.publish("2.8.3.post2", make_sdist())
    tree = resolve_fa2(
        None, "2.8.3.post2", tmp_path / "w1", tmp_path / "cache", index_url=f"{index.url}/simple"
    )
    assert (
        tree.version == "2.8.3.post2" and tree.origin == "pypi:flash_attn-2.8.3.post2.tar.gz" and tree.owned
    )
    archive = tmp_path / "local.tar.gz"
    archive.write_bytes(make_sdist("2.7.4.post1"))
    tree = resolve_fa2(str(archive), "x", tmp_path / "w2", tmp_path / "cache")
    assert tree.version == "2.7.4.post1" and tree.origin.startswith("archive:")
    checkout = unpack(archive, tmp_path / "checkout")
    (checkout / ".git").mkdir()
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    tree = resolve_fa2(str(checkout), "x", tmp_path / "w3", tmp_path / "cache")
    assert not (tree.root / ".git").exists()  # setup.py would run `git submodule update` with it
    assert tree.root != checkout


def test_trees_without_cutlass_or_version_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "nocutlass.tar.gz"
    archive.write_bytes(make_sdist(cutlass=False))
    with pytest.raises(UsageError, match="csrc/cutlass is empty") as exc:
        resolve_fa2(str(archive), "x", tmp_path / "w", tmp_path / "c")
    assert "submodule" in (exc.value.hint or "")
    with pytest.raises(UsageError, match="no such file"):
        resolve_fa2(str(tmp_path / "missing.tar.gz"), "x", tmp_path / "w", tmp_path / "c")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(UsageError, match="not a readable source archive"):
        resolve_fa2(str(junk), "x", tmp_path / "w", tmp_path / "c")


def test_unpack_refuses_paths_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UsageError):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()


def test_fa3_setup_facts_of_the_real_hopper_setup_py(fa2_tree: Path) -> None:
    facts = fa3_setup_facts((fa2_tree / "hopper" / "setup.py").read_text())
    assert facts.offline_switch and facts.toolchain_download
    assert {
        "FLASH_ATTENTION_DISABLE_HDIM128",
        "FLASH_ATTENTION_DISABLE_SM80",
        "FLASH_ATTENTION_DISABLE_BACKWARD",
    } <= facts.switches


def test_the_fa2_sdists_hopper_folder_is_not_an_fa3_source(fa2_tree: Path) -> None:
    with pytest.raises(UsageError, match="no CUDA sources"):
        resolve_fa3(str(fa2_tree), None, fa2_tree.parent / "cache")


def _git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)


@pytest.mark.system
def test_fa3_from_a_git_url_and_tag(tmp_path: Path) -> None:
    repo = tmp_path / "flash-attention"
    (repo / "hopper" / "instantiations").mkdir(parents=True)
    (repo / "hopper" / "setup.py").write_text('import os\nos.getenv("FLASH_ATTENTION_OFFLINE_BUILD")\n')
    (repo / "hopper" / "__init__.py").write_text('__version__ = "3.0.0"\n')
    (repo / "hopper" / "instantiations" / "flash_fwd_hdim128_bf16_sm90.cu").write_text("// kernel\n")
    (repo / "csrc" / "cutlass" / "include" / "cutlass").mkdir(parents=True)
    (repo / "csrc" / "cutlass" / "include" / "cutlass" / "cutlass.h").write_text("#pragma once\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "fa3", cwd=repo)
    _git("tag", "v3.0.0", cwd=repo)
    url = f"file://{repo}"
    tree = resolve_fa3(url, "v3.0.0", tmp_path / "cache")
    assert tree.version == "3.0.0" and tree.setup_dir.name == "hopper" and tree.origin == f"git:{url}@v3.0.0"
    # The clone is cached by URL and ref: it is reused without the origin.
    import shutil

    shutil.rmtree(repo)
    assert resolve_fa3(url, "v3.0.0", tmp_path / "cache").root == tree.root
    with pytest.raises(NetworkError, match="git clone"):
        resolve_fa3(url, "v9.9.9", tmp_path / "cache")
    with pytest.raises(UsageError, match="--ref"):
        resolve_fa3(url, None, tmp_path / "cache")


@pytest.mark.system
def test_a_clone_killed_half_way_is_not_taken_for_a_checkout(tmp_path: Path) -> None:
    """Ctrl-C or a kill while git fetched CUTLASS (minutes, after the superproject's checkout) left the
    cache's clone with hopper/setup.py but no submodule. The old code reused any clone with a setup.py,
    so every later `build --fa3 --source URL --ref TAG` failed with "csrc/cutlass is empty" in a cache
    directory the user never named. A clone is now put in place only once git has finished it."""
    import signal
    import sys
    import time

    from tests.support.venvs import child_env

    cutlass = tmp_path / "cutlass"
    (cutlass / "include" / "cutlass").mkdir(parents=True)
    (cutlass / "include" / "cutlass" / "cutlass.h").write_text("#pragma once\n")
    _git("init", "-q", "-b", "main", cwd=cutlass)
    _git("add", "-A", cwd=cutlass)
    _git("commit", "-qm", "cutlass", cwd=cutlass)
    repo = tmp_path / "flash-attention"
    (repo / "hopper" / "instantiations").mkdir(parents=True)
    (repo / "hopper" / "setup.py").write_text('import os\nos.getenv("FLASH_ATTENTION_OFFLINE_BUILD")\n')
    (repo / "hopper" / "__init__.py").write_text('__version__ = "3.0.0"\n')
    (repo / "hopper" / "instantiations" / "flash_fwd_hdim128_bf16_sm90.cu").write_text("// kernel\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git(
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        f"file://{cutlass}",
        "csrc/cutlass",
        cwd=repo,
    )
    submodule = "ssh://example.invalid/cutlass.git"  # the clone reaches it through git's ssh command
    _git("config", "-f", ".gitmodules", "submodule.csrc/cutlass.url", submodule, cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "fa3", cwd=repo)
    _git("tag", "v3.0.0", cwd=repo)
    url, cache = f"file://{repo}", tmp_path / "cache"
    fetching = tmp_path / "fetching-cutlass"
    hang = tmp_path / "ssh.sh"
    hang.write_text(f"#!/bin/sh\ntouch {fetching}\nexec sleep 60\n")
    hang.chmod(0o755)
    code = "import sys, pathlib; from flashdoctor.actions.source_build.source import resolve_fa3\n"
    code += "resolve_fa3(sys.argv[1], 'v3.0.0', pathlib.Path(sys.argv[2]))\n"
    child = subprocess.Popen(
        [sys.executable, "-c", code, url, str(cache)],
        env=child_env(GIT_SSH_COMMAND=str(hang)),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not fetching.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fetching.exists(), "git never reached the submodule"
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # flashdoctor, git and the "ssh" at once
        child.wait()
    assert list((cache / "git").rglob("hopper/setup.py")), "the superproject was checked out"
    environ = {
        **os.environ,
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": f"url.file://{cutlass}.insteadOf",
        "GIT_CONFIG_VALUE_0": submodule,
        "GIT_CONFIG_KEY_1": "protocol.file.allow",
        "GIT_CONFIG_VALUE_1": "always",
    }
    tree = resolve_fa3(url, "v3.0.0", cache, environ)
    assert (tree.root / "csrc" / "cutlass" / "include" / "cutlass" / "cutlass.h").is_file()
    assert tree.version == "3.0.0"


@pytest.mark.system
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_git_clone_starts_leaves_no_git_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str
) -> None:
    """git_clone (up to 30 minutes) started git with a subprocess.run of its own, outside the guard the
    target scripts' start has: a SIGTERM to flashdoctor alone or a Ctrl-C that reached the main thread
    inside Popen, after the fork, lost git, which went on cloning after flashdoctor had exited. It runs
    through system.run now: the signal is raised once git is held, and git is stopped and reaped first."""
    from flashdoctor.actions.source_build.source import git_clone
    from tests.support.hung_python import gone, hung_python, signal_inside_popen

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hang, _ = hung_python(bin_dir)
    hang.rename(bin_dir / "git")
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with signal_inside_popen(monkeypatch, sig) as children, pytest.raises(KeyboardInterrupt):
        git_clone("https://127.0.0.1:9/fa.git", "v3.0.0", tmp_path / "clone", environ)
    assert len(children) == 1
    assert gone(children[0].pid), "git outlived the signal"


# -- the build outcome says which verification happened ----------------------------------------------
@pytest.mark.system
@pytest.mark.parametrize("hashed", [False, True])
def test_build_outcome_says_how_the_sdist_was_verified(index: Index, tmp_path: Path, hashed: bool) -> None:
    import sys

    from flashdoctor.actions.source_build.api import BuildOptions, build
    from flashdoctor.decide.source_build.plan import BuildRequest
    from flashdoctor.render.build import outcome_to_json
    from tests.support.targets import target_env

    body = make_fake_sdist(tmp_path).read_bytes()
    index.publish("0.0.1", body, hashed=hashed)
    opts = BuildOptions(
        request=BuildRequest(archs=(90,)),
        version="0.0.1",
        index_url=f"{index.url}/simple",
        wheelhouse=tmp_path / "wh",
        log=tmp_path / "build.log",
    )
    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = build(target_env("h100"), opts, sys.executable, None, environ)
    assert out.status == "built", (out.run and out.run.first_error, out.notes)
    doc = outcome_to_json(out)
    text = doc["source_verification"]["text"]
    want = "sha256 matches the published digest" if hashed else "sha256 recorded (no published digest)"
    assert text.startswith(want) and doc["source_verification"]["kind"] == (
        "published-digest" if hashed else "recorded"
    )
    assert any(want in n for n in doc["notes"])  # the human output prints the notes


@pytest.mark.system
def test_build_cli_refuses_a_plain_http_index_unless_allowed(index: Index, tmp_path: Path) -> None:
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HTTP_PROXY": index.url,  # where a plain-http request would go: the test sees it
        "NO_PROXY": "",
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
    }
    args = ["build", "--index-url", "http://pypi-mirror.example/simple", "--ignore-preflight"]
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args, "--flash-version", "2.8.3.post2"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--index-url: refusing plain http" in p.stderr and "--allow-http" in p.stderr
    assert "Traceback" not in p.stderr and index.hits == {}


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(tar_gz_bytes(members))
    return path


def test_unpack_refuses_an_archive_that_inflates_past_its_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tar.gz bomb (zeros compress about 1000:1) or a million empty members filled the disk or its
    inodes: nothing bounded what an sdist from a mirror or --source unpacked. Bounds lowered here so the
    test writes megabytes, not gigabytes; nothing past them is written."""
    import flashdoctor.actions.source_build.source as source

    monkeypatch.setattr(source, "MAX_UNPACKED_BYTES", 1 << 20)
    bomb = _tar_gz(tmp_path / "bomb.tar.gz", {"p/a": bytes(600_000), "p/b": bytes(600_000)})
    with pytest.raises(UsageError, match="more than 1 MiB"):
        unpack(bomb, tmp_path / "d1")
    assert not (tmp_path / "d1").exists() or not any((tmp_path / "d1").rglob("*"))
    monkeypatch.setattr(source, "MAX_MEMBERS", 50)
    many = _tar_gz(tmp_path / "many.tar.gz", {f"p/{i}": b"" for i in range(51)})
    with pytest.raises(UsageError, match="more than 50 members"):
        unpack(many, tmp_path / "d2")
    assert not (tmp_path / "d2").exists() or not any((tmp_path / "d2").rglob("*"))
    ok = _tar_gz(tmp_path / "ok.tar.gz", {f"p/{i}": bytes(10_000) for i in range(50)})
    assert unpack(ok, tmp_path / "d3") == tmp_path / "d3" / "p"


def git_on_path(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose PATH starts with a `git` that runs the sh script ``body`` (the clone's
    destination is its last argument, the URL the one before)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text("#!/bin/sh\n" + body)
    git.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.system
def test_a_clone_whose_credentials_cannot_be_removed_is_not_kept(tmp_path: Path) -> None:
    """git writes a URL's user:password into the clone's .git/config; `git remote set-url` removes them. Its
    failure was ignored, and the password stayed on disk in a clone that is reused (review, stop 42)."""
    from flashdoctor.actions.source_build.source import git_clone
    from flashdoctor.errors import NetworkError

    environ = git_on_path(
        tmp_path,
        'case "$*" in\n'
        '  *" clone "*) for a; do url=$dest; dest=$a; done; mkdir -p "$dest/.git";'
        ' echo "url = $url" > "$dest/.git/config"; exit 0 ;;\n'
        '  *"set-url"*) echo "error: could not lock config file .git/config" >&2; exit 255 ;;\n'
        "esac\nexit 1\n",
    )
    dest = tmp_path / "clone"
    with pytest.raises(NetworkError) as exc:
        git_clone("https://user:s3cret@127.0.0.1:9/fa.git", "v3.0.0", dest, environ)
    assert "could not be removed" in exc.value.message and "could not lock config file" in exc.value.message
    assert "s3cret" not in exc.value.message
    assert not dest.exists()


@pytest.mark.system
def test_a_clone_stopped_half_way_leaves_no_credentials_behind(tmp_path: Path) -> None:
    """A Ctrl-C while git cloned `https://USER:PASS@host/...` left the half-made clone, its .git/config holding
    the password, in flashdoctor's cache until a later run with the same source (review, stop 42)."""
    import signal
    import threading

    from flashdoctor.actions.source_build.source import resolve_fa3

    environ = git_on_path(
        tmp_path,
        'for a; do url=$dest; dest=$a; done; mkdir -p "$dest/.git"; echo "url = $url" > "$dest/.git/config"\n'
        "exec sleep 300\n",
    )
    cache = tmp_path / "cache"
    main = threading.main_thread().ident
    assert main is not None

    def ctrl_c() -> None:
        deadline = time.monotonic() + 60
        while not list(cache.glob("git/*.partial/.git/config")) and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)

    sender = threading.Thread(target=ctrl_c)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            resolve_fa3("https://user:s3cret@127.0.0.1:9/fa.git", "v3.0.0", cache, environ=environ)
    finally:
        sender.join()
    left = [p for p in cache.rglob("*") if p.is_file() and "s3cret" in p.read_text(errors="replace")]
    assert left == []
