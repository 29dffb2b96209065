"""`flashdoctor wheels --refresh` (flashdoctor.actions.wheel_index.refresh_index) against loopback mirrors
of each publisher's API: the GitHub Releases API (official and community repositories), PEP 503/691 pages
(the PyTorch index), PyPI's JSON API, and a find-links page tree (the opt-in FA3 community index)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashdoctor.actions.net.sources import GITHUB_API, PYPI, PYTORCH_WHL
from flashdoctor.actions.wheel_index import current_index, index_status, refresh_index
from flashdoctor.decide.wheels import load_index, select_wheels
from flashdoctor.errors import NetworkError, UsageError
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.envelope import SCHEMA_FILES
from flashdoctor.model.target import environment_from_target
from tests.actions.net.test_wheel_sources import (
    FA2,
    FA2_OLD,
    FA3,
    OFFICIAL,
    PAGE1,
    PAGE2,
    TOKEN,
    releases_path,
    serve_everything,
)
from tests.support.loopback import Response, Server, serve
from tests.support.paths import ROOT

pytestmark = pytest.mark.system  # real servers on loopback

PAGES = "https://windreamer.github.io/flash-attention3-wheels/"
WR_TAG = "2026.06.01-abc1234"
WR_FILE = "flash_attn_3-3.0.0+20260601.cu128torch2100cxx11abitrue.abc123-cp39-abi3-linux_x86_64.whl"
WR_URL = (
    f"https://github.com/windreamer/flash-attention3-wheels/releases/download/{WR_TAG}/"
    + WR_FILE.replace("+", "%2B")
)


def committed_sha(filename: str, tag: str) -> str:
    doc = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))
    return next(str(w["sha256"]) for w in doc["wheels"] if w["filename"] == filename and w.get("tag") == tag)


@pytest.fixture
def gh(no_proxy: None) -> Iterator[Server]:
    # GitHub's asset digest of FA2 on v2.8.3 is the one the committed index has from published sources
    page1 = json.loads(json.dumps(PAGE1).replace("ab" * 32, committed_sha(FA2, "v2.8.3")))
    with serve() as s:
        s.route(
            releases_path(OFFICIAL),
            Response(200, page1, {"Link": f'<{{base}}{releases_path(OFFICIAL, 2)}>; rel="next"'}),
        )
        s.json(releases_path(OFFICIAL, 2), PAGE2)
        yield s


@pytest.fixture
def other(no_proxy: None) -> Iterator[Server]:
    with serve() as s:
        yield s


def serve_pages(other: Server) -> None:
    other.route(
        "/flash-attention3-wheels/",
        Response(
            200,
            '<html><a href="favicon.svg">i</a> <a href="cu128_torch2100/index.html">View Wheels</a></html>',
        ),
    )
    other.route(
        "/flash-attention3-wheels/cu128_torch2100/index.html",
        Response(200, f'<html><ul><li><a href="{WR_URL}">{WR_FILE}</a></li></ul></html>'),
    )


def rewrites(gh: Server, other: Server) -> dict[str, str]:
    return {
        GITHUB_API: gh.base,
        PYPI: other.base,
        PYTORCH_WHL: other.base + "/whl",
        PAGES: other.base + "/flash-attention3-wheels/",
    }


def env_for(tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a refresh on 2027-03-01 (the day the tests refresh on: an index dated after
    today is not used)."""
    return {
        "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
        "GITHUB_TOKEN": TOKEN,
        "FLASHDOCTOR_TODAY": "2027-03-01",
        **more,
    }


def test_refresh_rebuilds_the_index_into_the_cache_and_later_runs_use_it(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    serve_everything(gh, other)
    serve_pages(other)
    env = env_for(tmp_path)
    read: list[str] = []
    result = refresh_index(
        environ=env, rewrites=rewrites(gh, other), today="2027-03-01", on_source=read.append
    )

    path = tmp_path / "cache" / "index" / "wheels_index.json"
    assert result.path == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["wheels_index.json"]  # atomic: no temporary left
    assert "community:windreamer" not in read  # opt-in: read only when named
    assert not [r for r in other.requests if "flash-attention3-wheels" in r.path]
    assert result.carried_from == str(ROOT / "wheels_index.json")

    index = load_index(path)  # validated against the schema
    assert (index.built_from, index.generated, index.data_date) == ("live", "2027-03-01", "2027-03-01")
    by = {(e.source, e.filename, e.tag): e for e in index.entries}
    fa2 = by[("official", FA2, "v2.8.3")]
    assert fa2.sha256 == committed_sha(FA2, "v2.8.3")  # the publisher's digest, agreeing with the index's
    assert fa2.evidence.startswith("github-api:") and "carried" not in fa2.evidence
    old = by[("official", FA2_OLD, "v2.8.2")]  # GitHub recorded no digest: the bundled index's is kept
    bundled = load_index(ROOT / "wheels_index.json").generated
    assert old.sha256 and f"sha256 carried from the index of {bundled}" in old.evidence
    assert old.torch_build == "2.7.1" and not old.claim
    assert not [e for e in index.entries if e.source == "official" and e.tag not in ("v2.8.3", "v2.8.2")]
    assert [e for e in index.entries if e.source == "community:windreamer"]  # kept from the bundled index
    fa3 = [e for e in index.entries if e.filename == FA3]
    assert sorted(str(e.cuda) for e in fa3) == ["12.6", "12.8", "12.9", "13.0"]
    assert index.for_variant("fa4")

    loc = current_index(None, env)
    assert (loc.kind, loc.path, loc.date) == ("refreshed", path, "2027-03-01")
    from flashdoctor.actions.inputs import load_wheel_index

    assert load_wheel_index(None, env).origin == str(path)  # what wheels, install and check select from
    assert "newer than the bundled index (data of 2026-12-05)" in loc.describe()
    import datetime

    _loc, stale = index_status(None, env, datetime.date(2027, 3, 2))
    assert stale is None

    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in gh.requests), [
        (r.path, r.headers.get("Authorization")) for r in gh.requests
    ]
    assert all("Authorization" not in r.headers for r in other.requests)


def test_the_opt_in_fa3_community_index_when_named(gh: Server, other: Server, tmp_path: Path) -> None:
    serve_pages(other)
    env = env_for(tmp_path)
    result = refresh_index(
        ["community:windreamer"], environ=env, rewrites=rewrites(gh, other), today="2027-03-01"
    )
    assert result.sources == ["community:windreamer"] and gh.requests == []
    index = load_index(result.path)
    wr = [e for e in index.entries if e.source == "community:windreamer"]
    assert [(e.filename, e.tag, e.url) for e in wr] == [(WR_FILE, WR_TAG, WR_URL)]
    e = wr[0]
    assert e.evidence.startswith(
        f"find-links:{other.base}/flash-attention3-wheels/cu128_torch2100/index.html"
    )
    assert (e.cuda, e.torch_build, e.abi) == ("12.8", "2.10.0", True)
    # the other sources' entries are the bundled index's, so the index's data are no newer: not used
    assert current_index(None, env).kind == "bundled"
    h100 = environment_from_target(
        {"python": "3.12", "platform": "linux_x86_64", "glibc": "2.35", "torch": "2.10.0+cu128",
         "cxx11abi": True, "gpus": [{"name": "NVIDIA H100", "capability": "9.0"}], "installed": {}}
    )  # fmt: skip
    fits = select_wheels(h100, "fa3", index, allow_community=True).fits
    assert e in fits and fits[0].source == "pytorch-index"  # the PyTorch index's stable-ABI wheel first
    assert e not in select_wheels(h100, "fa3", index).fits  # community: opt-in again at selection


def test_an_opt_in_huggingface_repository_when_named(gh: Server, other: Server, tmp_path: Path) -> None:
    repo = "lldacing/flash-attention-windows-wheel"
    name = "flash_attn-2.7.4.post1+cu128torch2.7.0cxx11abiFALSE-cp312-cp312-win_amd64.whl"
    other.json(
        f"/api/models/{repo}/tree/main?recursive=true",
        [{"type": "file", "path": name, "oid": "9" * 40, "lfs": {"oid": "cd" * 32, "size": 1}}],
    )
    env = env_for(tmp_path)
    result = refresh_index(
        ["community:lldacing"],
        environ=env,
        rewrites={**rewrites(gh, other), "https://huggingface.co": other.base},
        today="2027-03-01",
    )
    assert result.sources == ["community:lldacing"] and gh.requests == []
    hf = [e for e in load_index(result.path).entries if e.source == "community:lldacing"]
    assert [(e.filename, e.sha256) for e in hf] == [
        (name, "cd" * 32)
    ]  # the live listing replaced the bundled
    assert hf[0].url == f"https://huggingface.co/{repo}/resolve/main/{name.replace('+', '%2B')}"
    win = environment_from_target(
        {"python": "3.12", "platform": "win_amd64", "torch": "2.7.0+cu128", "installed": {}}
    )
    assert hf[0] in select_wheels(win, "fa2", load_index(result.path), allow_community=True).fits


def test_a_digest_that_changed_is_refused_and_nothing_is_written(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    serve_everything(gh, other)
    doc = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))
    for w in doc["wheels"]:
        if w["filename"] == FA2 and w.get("tag") == "v2.8.3":
            w["sha256"] = "cd" * 32  # the index in use says another digest than the publisher now does
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(doc), encoding="utf-8")
    env = env_for(tmp_path, FLASHDOCTOR_WHEELS_INDEX=str(previous))
    with pytest.raises(UsageError, match="changed digest since the index in use") as exc:
        refresh_index(environ=env, rewrites=rewrites(gh, other), today="2027-03-01")
    assert "cd" * 32 in exc.value.message and committed_sha(FA2, "v2.8.3") in exc.value.message
    assert not (tmp_path / "cache" / "index").exists()


def test_a_failing_source_writes_nothing(gh: Server, other: Server, tmp_path: Path) -> None:
    serve_everything(gh, other)
    other.route("/pypi/flash-attn-4/json", Response(503, "down"))
    env = env_for(tmp_path)
    from flashdoctor.actions.net.http import Http, HttpPolicy

    http = Http(HttpPolicy(retries=0, backoff=0), env)
    with pytest.raises(NetworkError, match="503"):
        refresh_index(environ=env, rewrites=rewrites(gh, other), http=http, today="2027-03-01")
    assert not (tmp_path / "cache" / "index").exists()


def test_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown wheel source\\(s\\) nope") as exc:
        refresh_index(["nope"], environ=env_for(tmp_path))
    assert exc.value.hint is not None and "community:windreamer" in exc.value.hint


# -- the command: `flashdoctor wheels --refresh` as a real process, against the same mirrors ----------------
def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    child = dict(os.environ, **env, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args], capture_output=True, text=True, env=child, timeout=120,
        check=False,
    )  # fmt: skip


def mirror_args(gh: Server, other: Server) -> list[str]:
    return [
        f"--mirror={GITHUB_API}={gh.base}",
        f"--mirror={PYPI}={other.base}",
        f"--mirror={PYTORCH_WHL}={other.base}/whl",
    ]


def refresh_by_command(
    gh: Server, other: Server, tmp_path: Path
) -> tuple[dict[str, str], subprocess.CompletedProcess[str], Path]:
    """`wheels --refresh` on 2027-03-01 against the mirrors of every source: (env, the run, the index)."""
    serve_everything(gh, other)
    env = env_for(tmp_path)
    r = cli(env, "wheels", "--refresh", *mirror_args(gh, other))
    assert r.returncode == 0, r.stderr
    return env, r, tmp_path / "cache" / "index" / "wheels_index.json"


@pytest.mark.slow
def test_wheels_refresh_command_then_check_reads_the_index_age(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    env, r, path = refresh_by_command(gh, other, tmp_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = r.stdout
    assert f"index of 2027-03-01: {len(doc['wheels'])} wheels" in out and str(path) in out
    for name in ("official", "pytorch-index", "pypi", "community:mjun0812"):
        assert f"✓ {name}: " in out, out
    assert "community:windreamer" not in out.split("index of")[0]  # opt-in: not read
    assert (
        "in use from now on: wheel index: refreshed by `flashdoctor wheels --refresh`, data of 2027-03-01"
        in out
    )
    assert "reading official" in r.stderr  # progress, on standard error
    assert TOKEN not in out + r.stderr

    # check: the refreshed index is in use and fresh; 61 days later it warns, with the refresh as the fix
    h100 = str(ROOT / "tests" / "targets" / "h100.json")
    fresh = json.loads(cli(env, "check", "--target", h100, "--json").stdout)
    assert fresh["index"] == {
        "path": str(path), "date": "2027-03-01", "age_days": 0, "source": "refreshed", "stale": False,
        "stale_after_days": 60,
    }  # fmt: skip
    assert "wheel-index-stale" not in [f["code"] for f in fresh["findings"]]
    later = cli({**env, "FLASHDOCTOR_TODAY": "2027-05-01"}, "check", "--target", h100)
    assert "[wheel-index-stale]" in later.stdout and "61 days old" in later.stdout
    assert "fix: flashdoctor wheels --refresh" in later.stdout and later.returncode == 0

    js = cli(env, "wheels", "--refresh", "--json", *mirror_args(gh, other))
    body = json.loads(js.stdout)
    schema_validator(SCHEMA_FILES[body["schema"]]).validate(body)
    schema_validator("check-report.schema.json").validate(fresh)
    assert (body["schema"], body["command"], body["entries"]) == (
        "flashdoctor/wheels-refresh/1",
        "wheels",
        len(doc["wheels"]),
    )
    assert body["in_use"]["kind"] == "refreshed" and js.stderr == ""


@pytest.mark.slow
def test_wheels_refresh_on_a_failing_source_keeps_the_index_in_use(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    env, _r, path = refresh_by_command(gh, other, tmp_path)
    before = path.read_bytes()
    gh.route(releases_path(OFFICIAL), Response(404, "gone"))
    r = cli({**env, "FLASHDOCTOR_TODAY": "2027-04-01"}, "wheels", "--refresh", *mirror_args(gh, other))
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "flashdoctor: error: GET" in r.stderr and "HTTP 404" in r.stderr
    assert "nothing was written; still in use: wheel index: refreshed" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["wheels_index.json"]


def test_a_source_whose_pages_add_up_past_its_budget_fails_and_writes_nothing(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    # Each page is within the bound of one page (32 MiB) and the count within 50 pages, but the official
    # listing grows without end (40 pages of 4 MiB: 160 MiB): the refresh stops once a source's pages
    # add up to 64 MiB (a real listing is a few MB), exit 4 as for any failing source.
    serve_everything(gh, other)
    big = b"[" + b" " * (4 << 20) + b"]"  # a JSON list of no release
    paths = [releases_path(OFFICIAL)] + [releases_path(OFFICIAL, n) for n in range(2, 41)]
    for here, there in zip(paths, paths[1:]):
        gh.route(here, Response(200, big, {"Link": f'<{{base}}{there}>; rel="next"'}))
    gh.route(paths[-1], Response(200, big))
    r = cli(env_for(tmp_path), "wheels", "--refresh", *mirror_args(gh, other))
    assert r.returncode == 4, (r.stdout, r.stderr[-2000:])
    assert "wheel source official: its pages add up to more than 64 MiB" in r.stderr, r.stderr
    assert "nothing was written; still in use: wheel index: bundled" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    # 15 pages read (60 MiB), the 16th refused by the length it announces, the rest never asked for
    assert [p for p in paths if gh.hits(p)] == paths[:16]
    assert not (tmp_path / "cache" / "index").exists()


def test_wheels_refresh_usage_errors(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    for args, words in (
        (["--refresh", "--target", "x.json"], "--refresh rebuilds the index; it takes no --target"),
        (["--only", "pypi"], "--only and --mirror are options of --refresh"),
        (["--refresh", "--mirror", "https://example.org=http://127.0.0.1:9"], "not a public endpoint"),
        (["--refresh", "--mirror", "https://pypi.org"], "expected PUBLIC=URL"),
        (["--refresh", "--only", "nope"], "unknown wheel source(s) nope"),
    ):
        r = cli(env, "wheels", *args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    # the example as written: the error printer's URL redactor made it https://pypi.org=https//pypi.example
    r = cli(env, "wheels", "--refresh", "--mirror", "https://pypi.org")
    assert "e.g. https://pypi.org=https://pypi.example" in r.stderr, r.stderr
    assert not (tmp_path / "cache").exists()


def test_every_endpoint_a_source_reads_can_be_mirrored() -> None:
    # One list, derived from the kinds and the configured sources: the Hub, Astral's index and
    # windreamer's pages as well as GitHub, PyPI and the PyTorch index.
    from flashdoctor.actions.net.sources import public_endpoints, wheel_sources
    from flashdoctor.cli.wheels import _mirrors

    known = public_endpoints()
    for config in wheel_sources().values():
        for url in [config.get("base"), config.get("root"), *(config.get("indexes") or {}).values()]:
            if url:
                assert any(url == e or url.startswith(e + "/") for e in known), url
    assert _mirrors(("https://huggingface.co=http://127.0.0.1:9", "https://wheels.astral.sh/=http://x")) == {
        "https://huggingface.co": "http://127.0.0.1:9",
        "https://wheels.astral.sh": "http://x",
    }


def broken_refreshed_index(tmp_path: Path, how: str) -> Path:
    """A refreshed index in the cache, dated after the bundled one, whose header reads but whose body is
    broken (``how``: "json", cut off mid-entry as by a disk fault; "schema", valid JSON with an entry the
    schema refuses)."""
    text = (ROOT / "wheels_index.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    for i in doc["inputs"]:
        if i.get("fetched"):
            i["fetched"] = "2027-02-01"
    doc["generated"] = "2027-02-01"
    if how == "schema":
        doc["wheels"][0]["sha256"] = "zz"
    from flashdoctor.decide.wheels.builder import dump_index

    out = dump_index(doc)
    if how == "json":
        out = out[: len(out) // 2]
    path = tmp_path / "cache" / "index" / "wheels_index.json"
    path.parent.mkdir(parents=True)
    path.write_text(out, encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["json", "schema"])
def test_a_broken_refreshed_index_says_how_to_recover_and_the_next_refresh_replaces_it(
    gh: Server, other: Server, tmp_path: Path, how: str
) -> None:
    from flashdoctor.actions.inputs import load_wheel_index
    from flashdoctor.decide.wheels import WheelIndexError

    path = broken_refreshed_index(tmp_path, how)
    env = env_for(tmp_path)
    assert current_index(None, env).kind == "refreshed"
    with pytest.raises(WheelIndexError) as exc:
        load_wheel_index(None, env)
    assert exc.value.hint is not None
    assert "flashdoctor wheels --refresh" in exc.value.hint and f"delete {path}" in exc.value.hint

    # refreshing one source keeps every other entry of the best index it can read: the bundled one, not
    # nothing (an index of FA4 wheels alone, newer than the bundled one, would be used from then on)
    serve_everything(gh, other)
    result = refresh_index(["pypi"], environ=env, rewrites=rewrites(gh, other), today="2027-03-01")
    assert result.carried_from == str(ROOT / "wheels_index.json")
    bundled = load_index(ROOT / "wheels_index.json")
    index = load_index(path)  # the broken file replaced (its data no newer than the bundled index's)
    assert load_wheel_index(None, env).origin == str(ROOT / "wheels_index.json")
    assert {e.source for e in index.entries} == {e.source for e in bundled.entries}
    assert len([e for e in index.entries if e.source != "pypi"]) == len(
        [e for e in bundled.entries if e.source != "pypi"]
    )


# A child that writes the refreshed index as a refresh does and is killed between writing the temporary
# and renaming it (os.replace made to wait): what a kill -9 mid-write leaves.
KILLED_MID_WRITE = """
import sys, time
from pathlib import Path
from flashdoctor.actions import cache

def wait(src, dst):
    print("written", flush=True)
    time.sleep(60)

cache.os.replace = wait
cache.atomic_write_bytes(Path(sys.argv[1]), b"{}")
"""


@pytest.mark.slow
def test_a_temporary_left_by_a_write_killed_midway_is_removed_by_the_next_refresh(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    env = env_for(tmp_path)
    index_dir = tmp_path / "cache" / "index"
    target = index_dir / "wheels_index.json"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_WRITE, str(target)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    ) as child:  # fmt: skip
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        child.kill()
    assert child.returncode == -9
    (left,) = index_dir.iterdir()  # never renamed, never removed
    assert left.name.startswith(".wheels_index.json.") and left.name.endswith(".tmp")
    day_ago = time.time() - 2 * 86400
    os.utime(left, (day_ago, day_ago))
    # beside it: a temporary of a write going on now (kept), a link of the same pattern (removed, its target
    # untouched) and a file of another name (kept)
    busy = index_dir / ".wheels_index.json.busy0123.tmp"
    busy.write_text("{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    link = index_dir / ".wheels_index.json.link0123.tmp"
    link.symlink_to(outside)
    os.utime(link, (day_ago, day_ago), follow_symlinks=False)
    notes = index_dir / "notes.tmp"
    notes.write_text("x")
    os.utime(notes, (day_ago, day_ago))

    serve_everything(gh, other)
    refresh_index(["pypi"], environ=env, rewrites=rewrites(gh, other), today="2027-03-01")
    assert sorted(p.name for p in index_dir.iterdir()) == sorted(
        [busy.name, "notes.tmp", "wheels_index.json"]
    )
    assert outside.read_text() == "mine"


@pytest.mark.parametrize(
    ("href", "words"),
    [
        (f"../{FA3}#sha256=zz", "the digest 'zz' is not a sha256 (64 hex digits)"),
        (f"javascript:{FA3}", "the URL 'javascript:" + FA3 + "' is not http(s)"),
        (f"file:///etc/{FA3}", "the URL 'file:///etc/" + FA3 + "' is not http(s)"),
    ],
)
def test_a_publishers_bad_link_or_digest_names_the_page(
    gh: Server, other: Server, tmp_path: Path, href: str, words: str
) -> None:
    # What a page says is the publisher's: the refresh stops naming the page and the file, not an entry
    # number of an index the user never wrote.
    serve_everything(gh, other)
    other.route("/whl/cu128/flash-attn-3/", Response(200, f'<a href="{href}">{FA3}</a>'))
    with pytest.raises(UsageError) as exc:
        refresh_index(
            ["pytorch-index"], environ=env_for(tmp_path), rewrites=rewrites(gh, other), today="2027-03-01"
        )
    assert f"simple-index:{other.base}/whl/cu128/flash-attn-3/" in exc.value.message
    assert words in exc.value.message and FA3 in exc.value.message
    assert not (tmp_path / "cache" / "index").exists()


def test_a_mirrors_credentials_are_used_and_never_written(gh: Server, other: Server, tmp_path: Path) -> None:
    """--mirror https://user:password@mirror/...: the refresh reads through it; the index written to the cache
    (mode 0644) holds the files' URLs without the user:password@ (netrc or a keyring gives them to a download)."""
    serve_everything(gh, other)
    secret = "s3cret-pw"
    through = {k: v.replace("://", f"://user:{secret}@", 1) for k, v in rewrites(gh, other).items()}
    result = refresh_index(environ=env_for(tmp_path), rewrites=through, today="2027-03-01")
    text = result.path.read_text(encoding="utf-8")
    assert secret not in text and "user:" not in text
    mirrored = [e.url for e in load_index(result.path).entries if e.url and e.url.startswith(other.base)]
    assert mirrored  # the mirror's files, at the mirror, without the credentials
    import base64

    basic = "Basic " + base64.b64encode(f"user:{secret}".encode()).decode()
    assert other.requests and all(r.headers.get("Authorization") == basic for r in other.requests)


@pytest.mark.slow
def test_a_source_that_lists_no_wheel_keeps_its_entries_and_says_so(
    gh: Server, other: Server, tmp_path: Path
) -> None:
    """A mirror answering `[]` for a repository the index has wheels of (an emptied or broken listing) used
    to erase them all; they are kept as they were, and the refresh says so in both forms."""
    serve_everything(gh, other)
    gh.json(releases_path("kingbri1/flash-attention"), [])
    bundled = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))["wheels"]
    had = [w for w in bundled if w["source"] == "community:kingbri1"]
    assert had  # the bundled index has this source's wheels: the case needs them
    env = env_for(tmp_path)
    r = cli(env, "wheels", "--refresh", "--json", *mirror_args(gh, other))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["unlisted"] == {"community:kingbri1": len(had)}
    schema_validator(SCHEMA_FILES[doc["schema"]]).validate(doc)
    written = json.loads((tmp_path / "cache" / "index" / "wheels_index.json").read_text(encoding="utf-8"))
    assert [w for w in written["wheels"] if w["source"] == "community:kingbri1"] == had
    assert written["built_from"] != "live"  # one source's listing was not taken

    human = cli(env, "wheels", "--refresh", *mirror_args(gh, other))
    assert human.returncode == 0, human.stderr
    assert f"! community:kingbri1: listed no wheel file; its {len(had)} entries" in human.stdout
    assert "✓ community:bdashore3: 1 wheel file(s) listed" in human.stdout


def test_index_status_picks_and_judges_the_index_by_the_same_day(tmp_path: Path) -> None:
    """index_status(today=...) picked the index by $FLASHDOCTOR_TODAY and judged it by ``today``: a refreshed
    index of 2027-03-01, after the environment's day but not after the one given, was passed over for the
    bundled one, which was then judged stale on 2027-03-01."""
    import datetime

    env = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"), "FLASHDOCTOR_TODAY": "2027-01-01"}
    refreshed = tmp_path / "cache" / "index" / "wheels_index.json"
    refreshed.parent.mkdir(parents=True)
    refreshed.write_text(json.dumps({"generated": "2027-03-01", "wheels": []}))
    location, stale = index_status(None, env, datetime.date(2027, 3, 1))
    assert (location.kind, location.path, stale) == ("refreshed", refreshed, None)
    location, stale = index_status(None, env)  # the environment's day: passed over, and said
    assert (location.kind, location.ahead is not None) == ("bundled", True)
    assert stale is not None and "after today (2027-01-01)" in stale.message


def test_the_sources_of_a_refresh_together_are_bounded_too(gh: Server, other: Server, tmp_path: Path) -> None:
    """Each source's pages were bounded (64 MiB) but not all of them together: hostile mirrors made one
    refresh read 64 MiB per source. Here each source's pages (3 MiB) are within its bound and the
    refresh's total (here 5 MiB, MAX_REFRESH_BYTES by default) is reached at the second source."""
    serve_everything(gh, other)
    big = b"[" + b" " * (3 << 20) + b"]"  # a JSON list of no release
    gh.route(releases_path(OFFICIAL), Response(200, big))
    gh.route(releases_path("mjun0812/flash-attention-prebuild-wheels"), Response(200, big))
    env = env_for(tmp_path)
    with pytest.raises(NetworkError) as exc:
        refresh_index(
            ["official", "community:mjun0812", "pypi"],
            environ=env, rewrites=rewrites(gh, other), today="2027-03-01", max_bytes=5 << 20,
        )  # fmt: skip
    assert "wheels --refresh, all its sources together: its pages add up to more than 5 MiB" in str(exc.value)
    assert not other.hits("/pypi/flash-attn-4/json")  # the sources after it are never read
    assert not (tmp_path / "cache" / "index").exists()
