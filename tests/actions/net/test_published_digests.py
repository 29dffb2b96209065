"""Published digests before downloading (issues 16 and 18), against loopback mirrors of each publisher's
API: a PEP 503 index laid out like download.pytorch.org (FA3), the GitHub Releases API (FA2 and community
wheels) and PyPI's JSON API (FA4). The download is checked against what the publisher says, and the
artifact says which verification happened."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import Artifact, ChecksumError, DigestLookup, FetchOptions, obtain
from flashdoctor.actions.net.download import DownloadPolicy
from flashdoctor.actions.net.sources import GITHUB_API, GITHUB_WEB, KINDS, PYPI
from flashdoctor.actions.net.sources.base import HUGGINGFACE, PYPI_FILES
from flashdoctor.model.plan import WheelRef
from tests.support.install_helpers import make_wheel
from tests.support.loopback import Response, Server
from tests.support.paths import ROOT

pytestmark = pytest.mark.system

FAST = DownloadPolicy(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01, backoff_max=0.05)
FA3 = "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
FA2_VERSION = "2.8.3+cu12torch2.8cxx11abiTRUE"
FA2 = f"flash_attn-{FA2_VERSION}-cp312-cp312-linux_x86_64.whl"
FA4 = "flash_attn_4-4.0.0b4-py3-none-any.whl"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def fetch(mirror: Server, ref: WheelRef, tmp: Path, dist: str, **opts: object) -> Artifact:
    lookup = DigestLookup(
        rewrites={
            GITHUB_API: mirror.base,
            GITHUB_WEB: mirror.base,
            PYPI: mirror.base,
            PYPI_FILES: mirror.base,
            HUGGINGFACE: mirror.base,
        }
    )
    o = FetchOptions(WheelCache(tmp / "cache"), FAST, digests=lookup, **opts)  # type: ignore[arg-type]
    return obtain(ref, o, {"GITHUB_TOKEN": "ghp_not_for_loopback_0000"}, dist)


# -- a PEP 503 index laid out like download.pytorch.org (FA3) ----------------------------------------------
def pytorch_index(mirror: Server, wheel: Path, listed: str | None) -> WheelRef:
    frag = f"#sha256={listed}" if listed else ""
    page = (
        "<!DOCTYPE html>\n<html>\n  <body>\n    <h1>Links for flash-attn-3</h1>\n"
        f'    <a href="/whl/cu130/{wheel.name}{frag}" data-requires-python="&gt;=3.9">{wheel.name}</a><br/>\n'
        "  </body>\n</html>\n"
    )
    mirror.route("/whl/cu130/flash-attn-3/", Response(200, page))
    mirror.route(f"/whl/cu130/{wheel.name}", Response(200, wheel.read_bytes()))
    return WheelRef(wheel.name, f"{mirror.base}/whl/cu130/{wheel.name}", None, "pytorch-index", "3.0.0")


@pytest.fixture
def fa3_wheel(tmp_path: Path) -> Path:
    w = make_wheel(
        tmp_path / "fa3", dist="flash_attn_3", version="3.0.0", tag="cp39-abi3-manylinux_2_28_x86_64"
    )
    assert w.name == FA3
    return w


def test_fa3_digest_is_read_from_the_index_page_before_downloading(
    mirror: Server, fa3_wheel: Path, tmp_path: Path
) -> None:
    ref = pytorch_index(mirror, fa3_wheel, sha(fa3_wheel))
    art = fetch(mirror, ref, tmp_path, "flash-attn-3")
    assert [r.path for r in mirror.requests] == [
        "/whl/cu130/flash-attn-3/",
        f"/whl/cu130/{FA3}",
    ]  # page first
    assert art.sha256 == sha(fa3_wheel) and art.sha256_from == "index"
    v = art.verification
    assert (v.kind, v.digest_from, v.where) == (
        "published-digest",
        "pep503-page",
        f"{mirror.base}/whl/cu130/flash-attn-3/",
    )
    assert v.describe().startswith("sha256 matches the published digest (the index page's #sha256= fragment")
    assert art.ref.sha256 == sha(fa3_wheel)  # recorded with the plan's wheel


def test_fa3_bytes_that_differ_from_the_page_are_refused(
    mirror: Server, fa3_wheel: Path, tmp_path: Path
) -> None:
    ref = pytorch_index(mirror, fa3_wheel, "0" * 64)
    with pytest.raises(
        ChecksumError,
        match=r"expected 0{64}, got [0-9a-f]{64}; the expected digest comes from the index page's #sha256= fragment",
    ):
        fetch(mirror, ref, tmp_path, "flash-attn-3")
    assert not list((tmp_path / "cache").glob("sha256/**/*.whl"))


def test_fa3_page_without_a_digest_is_recorded_and_says_so(
    mirror: Server, fa3_wheel: Path, tmp_path: Path
) -> None:
    ref = pytorch_index(mirror, fa3_wheel, None)
    art = fetch(mirror, ref, tmp_path, "flash-attn-3")
    assert art.sha256_from == "computed" and art.verification.kind == "recorded"
    assert art.verification.describe() == (
        "sha256 recorded (no published digest): the index page lists the file without a digest"
    )


def test_lock_takes_the_fa3_digest_from_the_page(mirror: Server, fa3_wheel: Path, tmp_path: Path) -> None:
    """The whole route as a real process: `lock --fa3` for the H100 target with an index whose FA3 entry
    (no sha256, like the bundled one) points at the loopback index."""
    ref = pytorch_index(mirror, fa3_wheel, sha(fa3_wheel))
    doc = json.loads((ROOT / "wheels_index.json").read_text())
    entry = next(w for w in doc["wheels"] if w["filename"] == FA3 and w.get("cuda") == "13.0")
    assert entry["sha256"] is None
    doc["wheels"] = [{**entry, "url": ref.url}]
    (tmp_path / "index.json").write_text(json.dumps(doc))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "c"),
        "NO_PROXY": "*",
    }
    args = ["lock", "--fa3", "--json", "--index", str(tmp_path / "index.json")]
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args, "--target", str(ROOT / "tests/targets/h100.json")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    e = json.loads(p.stdout)["entries"][0]
    assert e["sha256"] == sha(fa3_wheel) and e["sha256_from"] == "index"
    assert (
        e["verification"]["kind"] == "published-digest" and e["verification"]["digest_from"] == "pep503-page"
    )


# -- the GitHub Releases API (FA2, community wheels) ---------------------------------------------------------
def github(mirror: Server, wheel: Path, digest: str | None, tag: str = "v2.8.3") -> WheelRef:
    asset = {"name": wheel.name, "browser_download_url": "unused"}
    if digest:
        asset["digest"] = f"sha256:{digest}"
    mirror.json(f"/repos/Dao-AILab/flash-attention/releases/tags/{tag}", {"tag_name": tag, "assets": [asset]})
    quoted = wheel.name.replace("+", "%2B")
    path = f"/Dao-AILab/flash-attention/releases/download/{tag}/{quoted}"
    mirror.route(path, Response(200, wheel.read_bytes()))
    return WheelRef(wheel.name, mirror.base + path, None, "official", FA2_VERSION)


@pytest.fixture
def fa2_wheel(tmp_path: Path) -> Path:
    w = make_wheel(tmp_path / "fa2", version=FA2_VERSION, tag="cp312-cp312-linux_x86_64")
    assert w.name == FA2
    return w


def test_fa2_digest_from_the_github_release_asset(mirror: Server, fa2_wheel: Path, tmp_path: Path) -> None:
    ref = github(mirror, fa2_wheel, sha(fa2_wheel))
    art = fetch(mirror, ref, tmp_path, "flash-attn")
    assert (
        art.verification.kind == "published-digest" and art.verification.digest_from == "github-release-asset"
    )
    assert art.verification.where == f"{mirror.base}/repos/Dao-AILab/flash-attention/releases/tags/v2.8.3"
    assert mirror.requests[0].path == "/repos/Dao-AILab/flash-attention/releases/tags/v2.8.3"
    assert all("Authorization" not in r.headers for r in mirror.requests)  # loopback is not GitHub


def test_github_asset_without_digest_and_a_tampered_one(
    mirror: Server, fa2_wheel: Path, tmp_path: Path
) -> None:
    ref = github(mirror, fa2_wheel, None)
    art = fetch(mirror, ref, tmp_path / "a", "flash-attn")
    assert art.verification.kind == "recorded" and "GitHub records no digest" in (art.verification.note or "")
    ref = github(mirror, fa2_wheel, "ab" * 32, tag="v2.8.2")
    with pytest.raises(ChecksumError, match="the GitHub release asset's digest"):
        fetch(mirror, ref, tmp_path / "b", "flash-attn")


def test_a_failing_lookup_falls_back_to_recorded_and_says_so(
    mirror: Server, fa2_wheel: Path, tmp_path: Path
) -> None:
    ref = github(mirror, fa2_wheel, sha(fa2_wheel))
    mirror.route("/repos/Dao-AILab/flash-attention/releases/tags/v2.8.3", Response(502, "bad gateway"))
    art = fetch(mirror, ref, tmp_path, "flash-attn")
    assert art.verification.kind == "recorded" and art.sha256 == sha(fa2_wheel)
    assert (
        "the digest lookup failed" in art.verification.describe()
        and "HTTP 502" in art.verification.describe()
    )


def test_a_mirror_is_not_second_guessed_by_the_publisher(
    mirror: Server, fa2_wheel: Path, tmp_path: Path
) -> None:
    """With --index-url the mirror's page is the source: an air-gapped mirror must not make flashdoctor
    call GitHub."""
    ref = github(mirror, fa2_wheel, sha(fa2_wheel))
    mirror.route(
        "/simple/flash-attn/",
        Response(200, f'<a href="/files/{fa2_wheel.name}#sha256={sha(fa2_wheel)}">x</a>'),
    )
    mirror.route(f"/files/{fa2_wheel.name}", Response(200, fa2_wheel.read_bytes()))
    art = fetch(mirror, ref, tmp_path, "flash-attn", index_url=mirror.base + "/simple")
    assert [r.path for r in mirror.requests] == ["/simple/flash-attn/", f"/files/{fa2_wheel.name}"]
    assert (art.verification.kind, art.verification.digest_from) == ("published-digest", "index-url")


# -- PyPI's JSON API (FA4) ------------------------------------------------------------------------------------
def test_fa4_digest_from_the_pypi_json_api(mirror: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "fa4", dist="flash_attn_4", version="4.0.0b4", tag="py3-none-any")
    assert wheel.name == FA4
    path = f"/packages/aa/bb/{'c' * 60}/{FA4}"
    mirror.route(path, Response(200, wheel.read_bytes()))
    mirror.json(
        "/pypi/flash-attn-4/4.0.0b4/json",
        {"urls": [{"filename": FA4, "url": f"../../..{path}", "digests": {"sha256": sha(wheel)}}]},
    )
    ref = WheelRef(FA4, mirror.base + path, None, "pypi", "4.0.0b4")
    art = fetch(mirror, ref, tmp_path, "flash-attn-4")
    assert (art.verification.kind, art.verification.digest_from) == ("published-digest", "pypi-json")
    assert mirror.requests[0].path == "/pypi/flash-attn-4/4.0.0b4/json"


# -- a Hugging Face repository (Windows community builds) ------------------------------------------------------
HF_REPO = "lldacing/flash-attention-windows-wheel"


def hf_wheel(mirror: Server, tmp: Path, lfs: str | None) -> WheelRef:
    wheel = make_wheel(
        tmp / "hf", version="2.7.4.post1+cu128torch2.7.0cxx11abiFALSE", tag="cp312-cp312-win_amd64"
    )
    path = f"/{HF_REPO}/resolve/main/{wheel.name.replace('+', '%2B')}"
    mirror.route(path, Response(200, wheel.read_bytes()))
    entry: dict[str, object] = {"type": "file", "path": wheel.name, "oid": "9" * 40, "size": 1}
    if lfs:
        entry["lfs"] = {"oid": lfs, "size": 1, "pointerSize": 134}
    mirror.json(f"/api/models/{HF_REPO}/tree/main", [entry])
    return WheelRef(wheel.name, mirror.base + path, None, "community:lldacing", "2.7.4.post1")


def test_a_huggingface_wheel_is_checked_against_its_lfs_sha256(mirror: Server, tmp_path: Path) -> None:
    ref = hf_wheel(mirror, tmp_path, None)
    good = hashlib.sha256(mirror.routes[urlsplit(ref.url).path][0].payload()[0]).hexdigest()
    mirror.json(
        f"/api/models/{HF_REPO}/tree/main",
        [{"type": "file", "path": ref.filename, "oid": "9" * 40, "lfs": {"oid": good, "size": 1}}],
    )
    art = fetch(mirror, ref, tmp_path, "flash-attn")
    assert (art.verification.kind, art.verification.digest_from) == ("published-digest", "huggingface-lfs")
    assert art.sha256 == good
    assert mirror.requests[0].path == f"/api/models/{HF_REPO}/tree/main"


def test_a_huggingface_wheel_whose_bytes_differ_from_its_lfs_sha256_is_refused(
    mirror: Server, tmp_path: Path
) -> None:
    ref = hf_wheel(mirror, tmp_path, "0" * 64)
    with pytest.raises(ChecksumError):
        fetch(mirror, ref, tmp_path, "flash-attn")
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_a_huggingface_file_without_lfs_is_recorded_and_says_why(mirror: Server, tmp_path: Path) -> None:
    ref = hf_wheel(mirror, tmp_path, None)
    art = fetch(mirror, ref, tmp_path, "flash-attn")
    assert art.verification.kind == "recorded"
    assert "not stored with Git LFS" in art.verification.describe()


def test_every_kind_is_registered_and_implements_the_protocol() -> None:
    assert set(KINDS) == {"github-releases", "simple-index", "pypi-json", "find-links", "huggingface-repo"}
    for name, kind in KINDS.items():
        assert kind.name == name and callable(kind.list_rows) and callable(kind.published_digest)


def test_every_configured_source_names_a_registered_kind() -> None:
    # The schema accepts any kind name (a new kind is its module and its line in KINDS); the registry decides.
    from flashdoctor.actions.net.sources import kind_of, wheel_sources

    for name, config in wheel_sources().items():
        assert kind_of(config).name == config["kind"], name
    with pytest.raises(KeyError, match="unknown wheel source kind 'nope'"):
        kind_of({"kind": "nope"})
