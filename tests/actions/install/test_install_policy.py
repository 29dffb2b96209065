"""The install policy where it used to leak (issue 15): dependencies that the installer would fetch itself
(row 4), and credentials in an --index-url written to logs and cache records (row 6). Real venvs, real
pip, real servers on loopback; a loopback proxy stands in for hosts elsewhere, so nothing leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions
from flashdoctor.actions.install.executor import InstallContext, execute
from flashdoctor.actions.net.download import DownloadPolicy
from flashdoctor.actions.net.http import HttpPolicy
from flashdoctor.actions.wheelfile import dependency_problems, inspect_wheel
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, WheelRef
from tests.support.install_helpers import FaultServer, make_wheel, sha256_of

V = "2.8.3+cu12torch2.13cxx11abiTRUE"
MARKERS = {"sys_platform": "linux", "python_version": "3.11", "platform_machine": "x86_64"}


def pip_list(py: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {d["name"].lower(): str(Version(d["version"])) for d in json.loads(out)}


def context(py: Path, tmp: Path, environ: dict[str, str], **fetch_kw: object) -> InstallContext:
    return InstallContext(
        python=str(py),
        environ=environ,
        fetch=FetchOptions(
            cache=WheelCache(tmp / "cache"), policy=DownloadPolicy(retries=1, backoff=0.01), **fetch_kw
        ),  # type: ignore[arg-type]
        env=Environment(),
        log_dir=tmp / "logs",
    )


def plan(url: str, wheel: Path) -> Plan:
    return Plan("wheel", "fa2", WheelRef(wheel.name, url, sha256_of(wheel), "official", V))


# -- row 4: direct-URL dependencies ---------------------------------------------------------------------------
def test_dependency_problems_policy(tmp_path: Path) -> None:
    reqs = [
        "torch",
        "a @ http://deps.example/a-1.0-py3-none-any.whl",
        f"b @ http://127.0.0.1:9/b-1.0-py3-none-any.whl#sha256={'b' * 64}",  # loopback may be http
        f"c @ https://deps.example/c-1.0-py3-none-any.whl#sha256={'c' * 64}",
        "d @ git+https://github.com/x/d.git",
        "e @ file:///tmp/e-1.0-py3-none-any.whl",
        "torch @ https://download.pytorch.org/whl/cpu/torch-2.0.0-cp311-cp311-linux_x86_64.whl ; python_version >= '3'",
        "f @ http://deps.example/f.whl ; sys_platform == 'win32'",  # not for this machine
        "g @ http://deps.example/g.whl ; extra == 'dev'",  # an extra nobody asked for
    ]
    info = inspect_wheel(make_wheel(tmp_path, requires=reqs))
    problems = dependency_problems(info, "2.13.0+cpu", MARKERS, HttpPolicy())
    text = "\n".join(problems)
    assert len(problems) == 4, problems
    assert "requires a from http://deps.example/a-1.0-py3-none-any.whl" in text and "plain http" in text
    assert "requires d from git+https://github.com/x/d.git" in text and "a git checkout" in text
    assert "requires e from file:///tmp/e-1.0-py3-none-any.whl" in text
    assert "requires torch from https://download.pytorch.org/" in text and "replace torch" in text
    assert not any(k in text for k in (" b from", " c from", " f from", " g from"))
    allowed = dependency_problems(info, "2.13.0+cpu", MARKERS, HttpPolicy(allow_http=True))
    assert len(allowed) == 4 and not any("plain http" in p for p in allowed)  # --allow-http: a trusted mirror
    assert any(" a from" in p and "without a #sha256=" in p for p in allowed)  # but still no digest


def test_a_direct_url_dependency_needs_a_sha256(tmp_path: Path) -> None:
    """Row 4's remainder: `x @ https://host/x.whl` met the https rule, and pip fetched it unchecked. Only
    a direct URL with #sha256= (which pip checks) may be left to the installer."""
    reqs = [
        "torch",
        "c @ https://deps.example/c-1.0-py3-none-any.whl",
        "h @ https://deps.example/h-1.0-py3-none-any.whl#sha256=" + "0" * 63,  # not a digest
        "i @ http://127.0.0.1:9/i-1.0-py3-none-any.whl",  # loopback, still no digest
        f"j @ https://deps.example/j-1.0-py3-none-any.whl#sha256={'a' * 64}",
        f"k @ https://deps.example/k-1.0-py3-none-any.whl#egg=k&sha256={'a' * 64}",
    ]
    info = inspect_wheel(make_wheel(tmp_path, requires=reqs))
    problems = dependency_problems(info, "2.13.0+cpu", MARKERS, HttpPolicy())
    assert [p.split(" from ")[0].rsplit(" ", 1)[1] for p in problems] == ["c", "h", "i"], problems
    assert all("without a #sha256= digest" in p for p in problems)


@pytest.mark.system
def test_a_plain_http_dependency_is_refused_before_anything_changes(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """Before: the dependency step let pip fetch `fdtestdep @ http://deps.example/...` over plain http from
    a non-loopback host and install it. The loopback server is the proxy every plain-http request goes
    through: it serves the dependency, and counts whether anyone asked."""
    dep = make_wheel(
        tmp_path / "dep", dist="fdtestdep", version="1.0", tag="py3-none-any",
        files={"fdtestdep/__init__.py": "X = 1\n"}, requires=(),
    )  # fmt: skip
    dep_url = f"http://deps.example/{dep.name}"
    server.add(dep_url, dep.read_bytes())  # a proxy receives the absolute URL as the request path
    w = make_wheel(tmp_path / "w", version=V, requires=["torch", f"fdtestdep @ {dep_url}"])
    environ = {**os.environ, "HTTP_PROXY": server.url(""), "NO_PROXY": "127.0.0.1,localhost"}
    before = pip_list(fresh_venv)
    res = execute(plan(server.add("/" + w.name, w.read_bytes()), w), context(fresh_venv, tmp_path, environ))
    assert res.status == "refused" and res.exit_code == 5, res
    assert f"requires fdtestdep from {dep_url}" in res.message and "plain http" in res.message
    assert pip_list(fresh_venv) == before and server.hits(dep_url) == 0
    assert "install" not in [s.name for s in res.steps]


# -- row 6: credentials in an --index-url -----------------------------------------------------------------
SECRET = "s3cr3t-PASSWORD-42"


@pytest.mark.system
def test_index_url_credentials_never_reach_logs_records_or_results(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """`--index-url http://user:SECRET@host/simple` (loopback: plain http allowed): the mirror serves the
    wheel, the dependency step hands the URL to pip (which needs it), and nothing written or returned
    carries the password: the install log, the cache's URL records, the result."""
    w = make_wheel(tmp_path / "w", version=V, requires=["torch", "fdtestdep"])  # fdtestdep: not on the mirror
    server.add(f"/files/{w.name}", w.read_bytes())
    server.add("/simple/flash-attn/", f'<a href="../../files/{w.name}">{w.name}</a>'.encode())
    index_url = f"http://user:{SECRET}@127.0.0.1:{server.port}/simple"
    environ = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    environ.pop("HTTP_PROXY", None)
    origin = (
        f"https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/{w.name}"  # not contacted
    )
    res = execute(plan(origin, w), context(fresh_venv, tmp_path, environ, index_url=index_url))
    assert res.status == "installed", res
    assert [s.name for s in res.steps if not s.ok] == ["dependencies"]  # pip ran with the index (and failed)
    assert server.hits("/simple/fdtestdep/") >= 1  # so the credentials did reach pip, which needs them
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "venv" not in p.parts}
    logs = [p for p in written if p.suffix == ".log"]
    records = [p for p in written if p.parent.name == "urls"]
    assert logs and records, sorted(map(str, written))
    leaked = [str(p) for p, data in written.items() if SECRET.encode() in data]
    assert leaked == []
    assert b"--index-url http://***@127.0.0.1" in b"".join(written[p] for p in logs)
    assert SECRET not in json.dumps(res.to_json())


def test_the_crash_log_carries_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from flashdoctor import cli

    monkeypatch.setattr(
        sys, "argv", ["flashdoctor", "install", "--index-url", f"https://u:{SECRET}@m.example/simple"]
    )
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_tokenvalue_for_the_crash_test")
    try:
        raise RuntimeError(
            f"boom at https://u:{SECRET}@m.example/simple/x (token ghp_tokenvalue_for_the_crash_test)"
        )
    except RuntimeError as exc:
        path = cli._crash_log(exc)
    assert path is not None
    text = Path(path).read_text()
    assert "boom" in text and "https://***@m.example/simple" in text
    assert SECRET not in text and "ghp_tokenvalue_for_the_crash_test" not in text
