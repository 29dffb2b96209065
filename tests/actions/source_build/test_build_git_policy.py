"""issue 15 rows 5 and 6 for FA3 git sources: `build --fa3 --source URL` cloned over plain http to any host
and printed the URL's credentials (and wrote them to build.json as the origin). The URL now goes through the
download policy (https, or http to loopback / with --allow-http; ssh and local paths as before) before git
runs, and the credentials are used by git but never shown or stored."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.source_build.api import BuildOptions, build
from flashdoctor.actions.source_build.source import resolve_fa3
from flashdoctor.errors import NetworkError, UsageError
from tests.actions.source_build.test_build_source import _git
from tests.decide.source_build.test_build_hopper import MEASURED
from tests.support.fake_hopper import make_fake_checkout
from tests.support.targets import target_env

SECRET = "s3cr3t-GIT-77"
NO_GIT = {"PATH": "/nonexistent", "HOME": "/nonexistent"}  # git cannot run: a refusal comes first


@pytest.mark.parametrize(
    "url",
    [
        "http://mirror.invalid/flash-attention.git",
        "git+http://mirror.invalid/flash-attention.git",
        "git://mirror.invalid/flash-attention.git",
        "https://127.0.0.1:9\\@github.com/fa.git",
    ],
)
def test_a_git_source_outside_the_policy_is_refused_before_git_runs(url: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--source: refusing") as exc:
        resolve_fa3(url, "v3.0.0", tmp_path / "cache", NO_GIT)
    assert "git is not installed" not in exc.value.message
    assert not (tmp_path / "cache").exists()


@pytest.mark.system
def test_credentials_in_a_git_url_are_not_shown_when_the_clone_fails(tmp_path: Path) -> None:
    url = f"http://user:{SECRET}@127.0.0.1:9/fa.git"  # loopback: plain http allowed; nothing listens
    with pytest.raises(NetworkError) as exc:
        resolve_fa3(url, "v3.0.0", tmp_path / "cache", {**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    text = exc.value.message + (exc.value.hint or "")
    assert "git clone http://***@127.0.0.1:9/fa.git" in text and SECRET not in text


@pytest.mark.system
@pytest.mark.slow
def test_a_build_from_a_credentialed_git_url_stores_no_credentials(tmp_path: Path) -> None:
    """A real clone and build: git rewrites the credentialed URL to a local repository (url.insteadOf, in
    git's own configuration), so the clone succeeds without a server; the outcome, build.json and the logs
    name the URL without its password."""
    repo = make_fake_checkout(tmp_path)
    (repo / "hopper" / "instantiations" / "README").write_text("git keeps no empty directories\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "fa3", cwd=repo)
    _git("tag", "v3.0.0b1", cwd=repo)
    url = f"https://user:{SECRET}@127.0.0.1:9/fa.git"
    environ = {
        **os.environ,
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{repo}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
    }
    opts = BuildOptions(
        request=MEASURED, source=url, ref="v3.0.0b1", wheelhouse=tmp_path / "wh", log=tmp_path / "build.log"
    )
    out = build(target_env("h100"), opts, sys.executable, None, environ)
    assert out.status == "built", (out.run and out.run.first_error, out.notes)
    assert out.source == "git:https://***@127.0.0.1:9/fa.git@v3.0.0b1"
    manifests = list((tmp_path / "wh").rglob("build.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["source"] == out.source
    leaked = [
        str(p)
        for p in [*(tmp_path / "wh").rglob("*"), *(tmp_path / "cache").rglob("*"), tmp_path / "build.log"]
        if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()
    ]
    assert leaked == [] and SECRET not in repr(out)
