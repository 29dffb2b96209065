"""`flashdoctor lock --format requirements|uv|dockerfile|all`: each form carries the digest and says how
it was verified, and each is replayed by the real installer it is for, against a loopback server —
pip for the requirements file and for the Dockerfile's RUN line (run by /bin/sh, as docker runs it),
uv for the pyproject dependency (when uv is on PATH; tomllib parses it always). Other bytes at the
same URL are refused by each of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashdoctor.actions.install.lock import FORMATS, LockEntry
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import WheelRef
from tests.cli.test_install_cli import write_plan
from tests.support.install_helpers import H100_V, lock_h100_cmd, make_wheel, sha256_of
from tests.support.venvs import child_env

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

V = H100_V  # locked for tests/targets/h100.json: the wheel must fit it
PUBLISHED = "sha256 matches the published digest"
RECORDED = "sha256 recorded (no published digest)"


# -- the texts (no processes) ---------------------------------------------------------------------------
def _entry(sha256_from: str) -> LockEntry:
    name = f"flash_attn-{V}-cp312-cp312-linux_x86_64.whl"
    url = f"https://github.com/D/f/releases/download/v2.8.3/{name.replace('+', '%2B')}"
    return LockEntry("fa2", WheelRef(name, url, None, "official", "2.8.3"), "ab" * 32, sha256_from)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_form_carries_the_digest_and_its_wording(fmt: str) -> None:
    write = FORMATS[fmt].text
    env = Environment(python="3.12", platform="linux_x86_64", torch="2.8.0+cu128", torch_cuda="12.8")
    recorded = write([_entry("computed")], env, "probe")
    published = write([_entry("index")], env, "probe")
    assert "ab" * 32 in recorded and "ab" * 32 in published
    assert RECORDED in recorded and "publishes no sha256" in recorded and "verified" not in recorded
    assert PUBLISHED in published and RECORDED not in published
    assert "torch 2.8.0+cu128 (CUDA 12.8)" in recorded


def test_the_uv_form_is_toml_with_a_direct_reference_and_its_hash() -> None:
    e = _entry("index")
    doc = tomllib.loads(FORMATS["uv"].text([e], Environment(), "probe"))
    assert doc == {"project": {"dependencies": [f"flash-attn @ {e.wheel.url}#sha256={'ab' * 32}"]}}


def test_the_dockerfile_form_quotes_the_url_for_the_shell() -> None:
    e = _entry("index")
    e = LockEntry(
        "fa2", WheelRef(e.wheel.filename, e.wheel.url + "?a=$(id)&b='", None, "x", "2"), "cd" * 32, "index"
    )
    text = FORMATS["dockerfile"].text([e], Environment(), "probe")
    run = _run_line(text)
    import shlex

    words = shlex.split(run)
    assert words[:6] == ["python3", "-m", "pip", "install", "--no-deps", "--require-hashes"]
    assert words[6] == f"flash-attn @ {e.wheel.url}#sha256={'cd' * 32}"  # one word, nothing expanded


def _run_line(dockerfile: str) -> str:
    """The shell command of the snippet's RUN instruction, continuation lines joined (as docker does)."""
    logical = dockerfile.replace("\\\n", " ")
    runs = [ln for ln in logical.splitlines() if ln.startswith("RUN ")]
    assert len(runs) == 1, dockerfile
    return runs[0][len("RUN ") :]


# -- replayed by the real installers ------------------------------------------------------------------------
class Static:
    """Files of a directory over HTTP on 127.0.0.1 (GET and HEAD: uv asks HEAD first)."""

    def __init__(self, root: Path) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.root = root
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, wheel: Path) -> str:
        shutil.copy(wheel, self.root / wheel.name)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{wheel.name}"

    def replace(self, wheel: Path, other: Path) -> None:
        shutil.copy(other, self.root / wheel.name)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Static]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    (tmp_path / "www").mkdir()
    s = Static(tmp_path / "www")
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _evil(tmp_path: Path) -> Path:
    return make_wheel(
        tmp_path / "evil",
        version=V,
        tag="py3-none-any",
        requires=(),
        files={"flash_attn/__init__.py": "x=1\n"},
    )


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A plain venv with pip (the test wheel has no dependencies: nothing else is needed)."""
    d = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
    return d / "bin"


def _installed(bin_dir: Path) -> str | None:
    r = subprocess.run(
        [str(bin_dir / "python"), "-c", "import importlib.metadata as m; print(m.version('flash-attn'))"],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


def _uninstall(bin_dir: Path) -> None:
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "uninstall", "-qy", "flash-attn"], check=True)


def _lock_all(tmp_path: Path, url: str, wheel: Path) -> tuple[Path, dict[str, object]]:
    plan = write_plan(tmp_path, url, wheel, sha=False)  # no digest in the index: recorded from the download
    base = tmp_path / "flash"
    cmd = lock_h100_cmd(plan)
    env = child_env(NO_PROXY="127.0.0.1,localhost")
    r = subprocess.run([*cmd, "--format", "all", "-o", str(base)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("target:")  # the first line names the machine (a long path wraps)
    assert "wrote " in r.stdout and RECORDED in r.stdout
    j = subprocess.run(
        [*cmd, "--format", "all", "-o", str(base), "--json"], capture_output=True, text=True, env=env
    )
    assert j.returncode == 0, j.stderr
    return base, json.loads(j.stdout)


@pytest.mark.system
@pytest.mark.slow
def test_requirements_and_dockerfile_replay_with_pip_and_refuse_other_bytes(
    loopback: Static, venv: Path, tmp_path: Path
) -> None:
    w = make_wheel(tmp_path / "w", version=V, tag="py3-none-any", requires=())
    url = loopback.add(w)
    base, doc = _lock_all(tmp_path, url, w)
    sha = sha256_of(w)
    files = {f: Path(str(base) + FORMATS[f].suffix) for f in FORMATS}
    for f, path in files.items():
        text = path.read_text()
        assert sha in text and RECORDED in text, (f, text)
        assert doc["exports"][f] == text and doc["outputs"][f] == str(path)  # type: ignore[index]
    assert doc["entries"][0]["direct_reference"] == f"flash-attn @ {url}#sha256={sha}"  # type: ignore[index]

    env = {
        **os.environ,
        "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    pip_r = [
        str(venv / "python"),
        "-m",
        "pip",
        "install",
        "--require-hashes",
        "-r",
        str(files["requirements"]),
    ]
    run_line = _run_line(files["dockerfile"].read_text())
    for name, cmd in (("requirements", pip_r), ("dockerfile", ["/bin/sh", "-c", run_line])):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert p.returncode == 0, (name, p.stdout + p.stderr)
        assert _installed(venv) == V.replace("TRUE", "true") or _installed(venv) == V, name
        _uninstall(venv)

    # the same URL now serves other bytes: both refuse them, by the digest in the file
    loopback.replace(w, _evil(tmp_path))
    for name, cmd in (("requirements", pip_r), ("dockerfile", ["/bin/sh", "-c", run_line])):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert p.returncode != 0 and "DO NOT MATCH THE HASHES" in p.stdout + p.stderr, (
            name,
            p.stdout + p.stderr,
        )
        assert _installed(venv) is None, name


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_the_uv_form_replays_with_uv_sync_and_refuses_other_bytes(loopback: Static, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V, tag="py3-none-any", requires=())
    url = loopback.add(w)
    base, _doc = _lock_all(tmp_path, url, w)
    snippet = tomllib.loads(Path(str(base) + FORMATS["uv"].suffix).read_text())
    deps = snippet["project"]["dependencies"]
    assert deps == [f"flash-attn @ {url}#sha256={sha256_of(w)}"]

    def project(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "pyproject.toml").write_text(
            '[project]\nname = "demo"\nversion = "0.1.0"\n'
            f"dependencies = {json.dumps(deps)}\n\n[tool.uv]\npackage = false\n"
        )
        return d

    uv = shutil.which("uv")
    assert uv is not None
    env = {
        **os.environ,
        "UV_PYTHON_DOWNLOADS": "never",
        "NO_PROXY": "127.0.0.1,localhost",
    }

    def sync(d: Path) -> subprocess.CompletedProcess[str]:
        # --no-index: nothing but the direct URL on loopback is fetched
        return subprocess.run(
            [uv, "sync", "--no-index", "--python", sys.executable, "--cache-dir", str(d / "cache")],
            cwd=d,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    good = project("good")
    p = sync(good)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"sha256:{sha256_of(w)}" in (good / "uv.lock").read_text()  # the digest, recorded in uv.lock
    assert (good / ".venv").is_dir() and list((good / ".venv").rglob("flash_attn/__init__.py"))
    loopback.replace(w, _evil(tmp_path))
    p = sync(project("tampered"))
    assert p.returncode != 0 and "hash" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
