"""Pure parts of the installer, fed values: build-record matching, plan files, lock text, constraints,
simple-index parsing, wheel metadata checks. No processes, no network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.install.lock import LockEntry, lock_text
from flashdoctor.actions.install.pip import Installer, constraints_text
from flashdoctor.actions.install.prepare import (
    local_build_for_source,
    plan_from_json,
    resolve_local,
    smoke_outcome,
    with_local_build,
)
from flashdoctor.actions.install.rollback import Backup, SavedFile, pip_stashes
from flashdoctor.actions.net.download import NotAWheelError
from flashdoctor.actions.net.simple_index import parse_simple_page
from flashdoctor.actions.wheelfile import inspect_wheel, missing_requirements, torch_conflict
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.schemas import first_error
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.probe.state import TargetState
from tests.support.install_helpers import H100_BUILD, make_wheel, sha256_of, write_manifest
from tests.support.targets import target_env


def h100(**kw: object):  # type: ignore[no-untyped-def]
    base = dict(
        torch="2.11.0+cu130",
        torch_cuda="13.0",
        cxx11abi=True,
        python="3.12",
        platform="linux_x86_64",
        glibc="2.39",
    )
    base.update(kw)
    return target_env("h100", **base)


def _local_build(root: Path, fid: str = "0123456789abcdef", **fp_change: object) -> Path:
    wh = root / fid
    fpd = {**H100_BUILD, **fp_change}
    dist = {"fa2": "flash_attn", "fa3": "flash_attn_3"}[str(fpd["variant"])]
    w = make_wheel(
        wh, dist=dist, version=f"{fpd['version']}+{fpd['profile']}", tag="cp312-cp312-linux_x86_64"
    )
    write_manifest(w, fpd)
    return w


REMOTE = WheelRef(
    "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
    "https://download.pytorch.org/whl/cu130/flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
    None,
    "pytorch-index",
    "3.0.0",
)


def test_build_plan_becomes_the_local_wheel(tmp_path: Path) -> None:
    w = _local_build(tmp_path / "wh")
    plan = Plan(action="build", variant="fa2", reasons=("no official wheel for torch 2.11",))
    new, notes = with_local_build(plan, h100(), [Wheelhouse(tmp_path / "wh")])
    assert new.action == "wheel" and new.wheel is not None and notes == []
    assert (
        new.wheel.filename == w.name and new.wheel.sha256 == sha256_of(w) and new.wheel.source == "wheelhouse"
    )
    assert new.wheel.url.startswith("file://") and new.reasons[-1].startswith("a matching local build")
    # a reviewed wheel plan is left alone; on another torch the build is named with its reason
    assert (
        with_local_build(
            Plan(action="wheel", variant="fa2", wheel=new.wheel), h100(), [Wheelhouse(tmp_path / "wh")]
        )[0].wheel
        == new.wheel
    )
    other, notes = with_local_build(plan, h100(torch="2.10.0+cu130"), [Wheelhouse(tmp_path / "wh")])
    assert other == plan and "built against torch 2.11" in notes[0]


def test_a_covering_local_build_is_preferred_to_a_download(tmp_path: Path) -> None:
    """Issue 16: `install --fa3 --wheelhouse DIR` planned the remote PyTorch-index wheel although DIR held
    a build for this machine. What is already here comes first, with the reason in the plan."""
    w = _local_build(tmp_path / "wh", variant="fa3", version="3.0.0", profile="fd.sm90.hd128.bf16")
    plan = Plan(action="wheel", variant="fa3", wheel=REMOTE, reasons=("the PyTorch index has a wheel",))
    houses = [Wheelhouse(tmp_path / "nothing-here"), Wheelhouse(tmp_path / "wh")]
    new, notes = resolve_local(plan, h100(), houses, WheelCache(tmp_path / "cache"))
    assert new.action == "wheel" and new.wheel is not None and new.wheel.filename == w.name, new
    assert new.wheel.url.startswith("file://") and new.alternatives[0] == REMOTE and notes == []
    assert "already here" in new.reasons[-1] and "instead of a download" in new.reasons[-1]
    assert "fd.sm90.hd128.bf16" in new.reasons[-1]
    # a reviewed plan (install --plan FILE) keeps its wheel; a --version the build is not is respected
    assert resolve_local(plan, h100(), houses, reviewed=True)[0] == plan
    from packaging.specifiers import SpecifierSet

    kept, notes = resolve_local(plan, h100(), houses, versions=SpecifierSet("<3"))
    assert kept == plan and "not <3" in notes[0]


def test_the_planned_wheel_already_here_is_kept_and_said(tmp_path: Path) -> None:
    _local_build(tmp_path / "wh", variant="fa3", version="3.0.0", profile="fd.sm90.hd128.bf16")
    plan = Plan(action="wheel", variant="fa3", wheel=REMOTE)
    # in a wheelhouse under its own name
    make_wheel(tmp_path / "wh", dist="flash_attn_3", version="3.0.0", tag="cp39-abi3-manylinux_2_28_x86_64")
    new, _ = resolve_local(plan, h100(), [Wheelhouse(tmp_path / "wh")])
    assert new.wheel == REMOTE and "is in the wheelhouse" in new.reasons[-1]
    # in the download cache (recorded by URL: the index has no sha256)
    cache = WheelCache(tmp_path / "cache")
    src = make_wheel(
        tmp_path / "src", dist="flash_attn_3", version="3.0.0", tag="cp39-abi3-manylinux_2_28_x86_64"
    )
    part = tmp_path / "p.part"
    part.write_bytes(src.read_bytes())
    cache.commit(part, sha256_of(src), REMOTE.filename, url=REMOTE.url)
    new, _ = resolve_local(plan, h100(), [Wheelhouse(tmp_path / "empty")], cache)
    assert new.wheel == REMOTE and "the download cache" in new.reasons[-1]


def test_from_source_offers_a_covering_build(tmp_path: Path) -> None:
    """Issue 16: `install --from-source --wheelhouse DIR` planned a new build although DIR held one
    that covers the request."""
    w = _local_build(tmp_path / "wh", variant="fa3", version="3.0.0", profile="fd.sm90.hd128.bf16")
    houses = [Wheelhouse(tmp_path / "wh")]
    plan, notes = local_build_for_source(h100(), "fa3", houses, head_dims="128", dtypes="bf16")
    assert plan is not None and plan.wheel is not None and plan.wheel.filename == w.name and notes == []
    assert "no new build" in plan.reasons[0]
    assert local_build_for_source(h100(), "fa3", houses)[0] is not None  # nothing named: covered
    plan, notes = local_build_for_source(h100(), "fa3", houses, head_dims="64")
    assert plan is None and "lacks head dim 64" in notes[0]
    plan, notes = local_build_for_source(h100(), "fa3", houses, arch="80")
    assert plan is None and "no code for sm_80" in notes[0]
    assert local_build_for_source(h100(), "fa2", houses) == (None, [])


def test_incomplete_build_entries_are_ignored(tmp_path: Path) -> None:
    d = tmp_path / "aaaa"
    d.mkdir()
    (d / "build.json").write_text(
        json.dumps(
            {
                "schema": "flashdoctor/built-wheel/1",
                "wheel": "flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl",
                "fingerprint": H100_BUILD,
            }
        )
    )
    (tmp_path / "bbbb").mkdir()
    (tmp_path / "bbbb" / "build.json").write_text("{not json")
    assert list(Wheelhouse(tmp_path).builds("fa2")) == []


FA2_WHEEL = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"


def test_plan_file_validation() -> None:
    ok = plan_from_json(
        {
            "action": "wheel",
            "variant": "fa2",
            "wheel": {
                "filename": FA2_WHEEL,
                "url": "https://x/a.whl",
                "sha256": "A" * 64,
                "version": "2.8.3",
            },
        }
    )
    assert ok.wheel is not None and ok.wheel.sha256 == "a" * 64
    # the file name names files in wheelhouses and the cache: a FlashAttention wheel's name, no path
    for name, msg in [
        ("../x.whl", "not a valid wheel filename"),
        ("flash_attn-2.8.3-cp312-cp312-linux_x86_64.a/../../b.whl", "not a valid wheel filename"),
        ("numpy-1.0-py3-none-any.whl", "not a FlashAttention wheel"),
        ("flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "is a fa3 wheel, and the plan is for fa2"),
    ]:
        wheel = {"filename": name, "url": "https://x/a.whl", "version": "2.8.3"}
        with pytest.raises(UsageError, match=msg):
            plan_from_json({"action": "wheel", "variant": "fa2", "wheel": wheel})
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    for bad, msg in [
        ([], "JSON object"),
        ({"action": "pip", "variant": "fa2"}, "'action'"),
        ({"action": "wheel", "variant": "fa2"}, "'wheel' is missing: action 'wheel' needs a wheel"),
        ({"action": "wheel", "variant": "fa2", "wheel": None}, "action 'wheel' needs a wheel"),
        ({"variant": "fa2"}, "'action' is missing"),
        ({"action": "build", "variant": "fa5"}, "'variant' must be one of fa2, fa3, fa4 \\(got 'fa5'\\)"),
        ({"action": "build", "variant": "fa2", "reasons": [1]}, "'reasons\\[0\\]' must be a string"),
        (
            {"action": "wheel", "variant": "fa2", "wheel": {"filename": FA2_WHEEL, "url": "u"}},
            "'wheel.version' is missing",
        ),
        ({"action": "build", "variant": "fa2", "reasons": deep}, "nested too deeply"),
        (
            {
                "action": "wheel",
                "variant": "fa2",
                "wheel": {"filename": FA2_WHEEL, "url": "u", "version": "1", "sha256": "xyz"},
            },
            "64 hex",
        ),
        (
            {"action": "wheel", "variant": "fa2", "wheel": {"filename": "", "url": "u", "version": "1"}},
            "wheel.filename",
        ),
    ]:
        with pytest.raises(UsageError, match=msg):
            plan_from_json(bad)


def test_plan_round_trips_through_its_json() -> None:
    p = Plan(
        action="wheel",
        variant="fa3",
        wheel=WheelRef(
            "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
            "https://h/f.whl",
            None,
            "pytorch-index",
            "3.0.0",
        ),
        reasons=("r",),
    )
    doc = json.loads(json.dumps(p.to_json()))
    assert first_error("plan.schema.json", doc, "/$defs/input") is None
    q = plan_from_json(doc)
    assert (q.action, q.variant, q.wheel, q.reasons) == (p.action, p.variant, p.wheel, p.reasons)


def test_lock_text() -> None:
    ref = WheelRef(
        "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
        "https://github.com/D/f/releases/download/v2.8.3/flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
        None,
        "official",
        "2.8.3",
    )
    text = lock_text([LockEntry("fa2", ref, "ab" * 32, "computed")], h100(), "probe")
    lines = text.splitlines()
    assert lines[-2] == f"flash-attn @ {ref.url} \\" and lines[-1] == f"    --hash=sha256:{'ab' * 32}"
    assert "pip install --no-deps --require-hashes -r" in text and "publishes no sha256" in text
    assert "sha256 recorded (no published digest)" in text and "verified" not in text
    published = lock_text([LockEntry("fa2", ref, "ab" * 32, "index")], h100(), "probe")
    assert "sha256 matches the published digest" in published
    assert (
        LockEntry("fa2", ref, "ab" * 32, "computed").to_json()["sha256_check"]
        == "sha256 recorded (no published digest)"
    )


def test_verification_wording_never_claims_a_digest_nobody_published() -> None:
    """Issue "Hostile inputs", "Also": one helper decides the words, from how the digest was obtained."""
    import io

    from rich.console import Console

    from flashdoctor.model.install import InstallResult, digest_wording
    from flashdoctor.render.install import render_install

    assert digest_wording("index") == digest_wording("mirror") == "sha256 matches the published digest"
    assert digest_wording("computed") == "sha256 recorded (no published digest)"
    assert digest_wording(None) is None
    for sha_from, words in (
        ("computed", "sha256 recorded (no published digest)"),
        ("index", "matches the published"),
    ):
        res = InstallResult("installed", "fa2", "flash-attn", "flash-attn 2.8.3 installed (import passed)",
                            sha256="ab" * 32, sha256_from=sha_from)  # fmt: skip
        buf = io.StringIO()
        render_install(res, Console(file=buf, width=200, color_system=None))
        out = buf.getvalue()
        assert words in out and "verified" not in out, out
        assert res.to_json()["sha256_check"] == digest_wording(sha_from)
    # Where the digest came from is said too (seen on the GPU machine: a plan file's digest was printed as
    # just "sha256 matches the published digest").
    from flashdoctor.model.verification import published

    res = InstallResult("rolled-back", "fa2", "flash-attn", "the smoke test failed", sha256="ab" * 32,
                        sha256_from="index", verification=published("plan-file").to_json())  # fmt: skip
    buf = io.StringIO()
    render_install(res, Console(file=buf, width=200, color_system=None))
    assert f"sha256 matches the published digest (the plan file): {'ab' * 32}" in buf.getvalue()


def _state(**kw: object) -> TargetState:
    base = dict(
        executable="/p",
        prefix="/",
        purelib="/s",
        platlib="/s",
        scripts="/b",
        has_pip=True,
        env_manager="pip",
        markers={"python_version": "3.12", "sys_platform": "linux", "platform_machine": "x86_64"},
        dists={"torch": "2.11.0+cu130", "numpy": "2.1.0", "weird": "not a version", "flash-attn": "2.7.0"},
        torch="2.11.0+cu130",
    )
    base.update(kw)
    return TargetState(**base)  # type: ignore[arg-type]


def test_constraints_pin_torch_and_optionally_everything() -> None:
    assert constraints_text(_state()).splitlines()[1:] == ["torch==2.11.0+cu130"]
    everything = constraints_text(_state(), everything=True, exclude=("flash_attn",)).splitlines()[1:]
    assert everything == [
        "torch==2.11.0+cu130",
        "numpy==2.1.0",
    ]  # legacy versions and the dist itself left out


def test_installer_commands() -> None:
    pip = Installer("pip", "/v/bin/python")
    cmd = pip.install_cmd(["/c/f.whl"], Path("/t/c.txt"))
    assert (
        cmd[:4] == ["/v/bin/python", "-m", "pip", "install"]
        and "--no-deps" in cmd
        and "--force-reinstall" in cmd
    )
    assert cmd[-3:] == ["-c", "/t/c.txt", "/c/f.whl"]
    uv = Installer("uv", "/v/bin/python", "/usr/bin/uv")
    assert uv.install_cmd(["f.whl"], None)[:5] == [
        "/usr/bin/uv",
        "pip",
        "install",
        "--python",
        "/v/bin/python",
    ]
    assert uv.uninstall_cmd(["flash-attn"]) == [
        "/usr/bin/uv",
        "pip",
        "uninstall",
        "--python",
        "/v/bin/python",
        "flash-attn",
    ]


def test_torch_guard_and_missing_requirements(tmp_path: Path) -> None:
    markers = _state().markers
    w = inspect_wheel(
        make_wheel(
            tmp_path,
            requires=[
                "torch>=2.4",
                "einops",
                "numpy>=2",
                "pywin32; sys_platform == 'win32'",
                "pytest; extra == 'test'",
            ],
        )
    )
    assert torch_conflict(w, "2.11.0+cu130", markers) is None
    assert "target has none" in (torch_conflict(w, None, markers) or "")
    assert missing_requirements(w, _state().dists, markers) == ["einops"]
    w2 = inspect_wheel(make_wheel(tmp_path / "b", requires=["torch==2.8.0"]))
    assert "requires torch==2.8.0" in (torch_conflict(w2, "2.11.0+cu130", markers) or "")


def test_inspect_wheel_refuses_non_wheels(tmp_path: Path) -> None:
    w = make_wheel(tmp_path)
    html = tmp_path / "x" / w.name
    html.parent.mkdir()
    html.write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(NotAWheelError, match="HTML page"):
        inspect_wheel(html)
    info = inspect_wheel(w)
    assert info.name == "flash-attn" and "flash_attn/__init__.py" in info.root_files
    with pytest.raises(NotAWheelError, match="not a wheel file name"):
        inspect_wheel(w, "flash_attn.zip")


def test_simple_index_pages() -> None:
    html = """<html><body>
      <a href="../../packages/ab/flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl#sha256=ABCDEF">flash_attn-2.8.3</a>
      <a href="https://files.example/flash_attn-2.8.2.tar.gz">sdist</a></body></html>"""
    files = parse_simple_page(html, "https://mirror.example/simple/flash-attn/")
    assert (
        files[0].filename == "flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl" and files[0].sha256 == "abcdef"
    )
    assert files[0].url == "https://mirror.example/packages/ab/flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl"
    js = json.dumps({"files": [{"filename": "a.whl", "url": "../a.whl", "hashes": {"sha256": "ff"}}]})
    assert parse_simple_page(js, "https://m/simple/x/")[0].url == "https://m/simple/a.whl"


def _smoke_report(findings: tuple[object, ...] = (), skipped: str | None = None):  # type: ignore[no-untyped-def]
    from flashdoctor.model.smoke import SmokeReport

    return SmokeReport(
        python="/v/bin/python",
        device="cuda",
        torch="2.11.0+cu130",
        skipped_reason=skipped,
        gpus=(),
        backends=(),
        cases=(),
        results=(),
        input_checks=(),
        findings=findings,
        elapsed_s=3.0,  # type: ignore[arg-type]
    )


def test_smoke_report_adapter() -> None:
    """The real SmokeReport of issue 5, as the executor's SmokeOutcome."""
    from flashdoctor.model.findings import Finding, Status

    bad = Finding(
        "smoke-numerics", Status.FAIL, "fa2 bf16 forward: max abs error 0.5 > 0.02", subject="fa2 @ GPU 0"
    )
    out = smoke_outcome(_smoke_report((bad,)), "fa2")
    assert not out.ok and out.summary == "fa2 bf16 forward: max abs error 0.5 > 0.02"
    assert out.details["report"]["status"] == "failed"
    skipped = smoke_outcome(_smoke_report(skipped="torch sees no GPU"), "fa2")
    assert skipped.ok and skipped.summary == "skipped: torch sees no GPU"


def test_a_state_is_current_while_its_site_directories_are_unchanged(tmp_path: Path) -> None:
    """An install or uninstall adds or removes a *.dist-info directory: the directory's mtime moves."""
    import os

    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "torch-2.13.0.dist-info").mkdir()
    stamped = _state(stamp=((str(site), os.stat(site).st_mtime_ns),))
    assert stamped.is_current()
    (site / "flash_attn-2.8.3.dist-info").mkdir()
    os.utime(site, ns=(1, os.stat(site).st_mtime_ns + 1))  # coarse-mtime filesystems: force the step
    assert not stamped.is_current()
    assert not _state().is_current()  # no stamp (an older state script): never trusted
    gone = _state(stamp=((str(tmp_path / "nowhere"), 5),))
    assert not gone.is_current()


def test_an_early_state_is_used_only_when_readable(tmp_path: Path) -> None:
    import os
    from concurrent.futures import Future

    from flashdoctor.actions.install.executor import _early_state

    site = tmp_path / "site"
    site.mkdir()

    def done(state: TargetState | None, exc: Exception | None = None) -> Future[TargetState]:
        f: Future[TargetState] = Future()
        if exc is not None:
            f.set_exception(exc)
        else:
            f.set_result(state)  # type: ignore[arg-type]
        return f

    current = _state(stamp=((str(site), os.stat(site).st_mtime_ns),))
    assert _early_state(done(current)) is current and current.is_current()
    stale = _state(stamp=((str(site), 1),))
    assert _early_state(done(stale)) is stale and not stale.is_current()  # re-read under the lock
    assert _early_state(done(None, RuntimeError("the target died"))) is None
    assert _early_state(None) is None


def test_an_install_runs_while_its_environment_lock_is_held_whatever_its_pid(tmp_path: Path) -> None:
    """check reads backups without the install lock, and asked whether the install that made one still
    runs by its pid: a pid reused since (here: this test's own), or one of another host sharing the venv
    and cache, or of another pid namespace, read as running, and a killed install went unreported. Now
    the environment's lock answers it, asked without waiting: held, the install runs (no finding)."""
    import dataclasses
    import os

    from flashdoctor.actions.cache import default_cache_root
    from flashdoctor.actions.check import with_interrupted_installs
    from flashdoctor.actions.install.envlock import environment_lock
    from flashdoctor.model.findings import CheckReport
    from tests.support.targets import target_env

    prefix = tmp_path / "env"
    prefix.mkdir()
    environ = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path / "fdc")}
    root = WheelCache(default_cache_root(environ)).backups() / "20260101-000000-1"
    root.mkdir(parents=True)
    b = Backup(
        "flash-attn", "2.7.4", root, (), (), (), environment=str(prefix), pid=os.getpid(), installing="2.8.3"
    )
    (root / "manifest.json").write_text(json.dumps(b.to_json()))
    env = dataclasses.replace(target_env("h100"), prefix=str(prefix))
    report = CheckReport(env, "probe", (), {})

    def codes() -> list[str]:
        return [f.code for f in with_interrupted_installs(report, env, environ).findings]

    assert codes() == ["install-interrupted"]  # its pid is alive, but no install holds the lock
    with environment_lock(str(prefix)):
        assert codes() == []
    assert codes() == ["install-interrupted"]


def _stash_backup(site: Path) -> Backup:
    files = [
        site / "flash_attn" / "__init__.py",
        site / "flash_attn" / "layers" / "rotary.py",
        site / "flash_attn-2.8.2.dist-info" / "METADATA",
    ]
    saved = tuple(SavedFile(str(p), f"f{i}", "0" * 64, 0o644) for i, p in enumerate(files))
    return Backup(
        dist="flash-attn", version="2.8.2", root=site / "backup", files=saved, new_paths=(), new_dirs=()
    )


def test_pip_stashes_of_an_interrupted_pip_are_found_even_empty_and_never_anothers(tmp_path: Path) -> None:
    # pip makes its stash directory first and renames the old one into it later: killed between the
    # two, it leaves an EMPTY ~lash_attn, which the restore kept (a flaky leftover under load).
    site = tmp_path / "site-packages"
    (site / "flash_attn" / "layers").mkdir(parents=True)
    empty = site / "~lash_attn"
    (empty / "__pycache__").mkdir(parents=True)
    (empty / "__pycache__" / "x.pyc").write_bytes(b"")
    full = site / "flash_attn" / "~ayers"
    full.mkdir()
    (full / "rotary.py").write_text("")
    other = site / "~ther"  # a stash name of nothing backed up
    other.mkdir()
    foreign = site / "~~ash_attn"  # holds a file the backup does not: someone else's
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert sorted(pip_stashes(_stash_backup(site))) == sorted([str(empty), str(full)])


@pytest.mark.system
def test_a_discard_killed_part_way_leaves_no_manifest(tmp_path: Path) -> None:
    """``discard`` removed the backup in directory order: killed part-way (here: SIGKILL the moment it
    starts removing the tree), manifest.json outlived files/ and read as an interrupted install, whose
    "restore" from an incomplete backup would follow. Now the manifest goes first."""
    import subprocess
    import sys

    from flashdoctor.actions.install.rollback import find_interrupted

    root = tmp_path / "backups" / "20260101-000000-1"
    (root / "files").mkdir(parents=True)
    (root / "files" / "000000").write_text("old")
    b = Backup("flash-attn", "2.7.4", root, (SavedFile("/x/a.py", "files/000000", "0" * 64, 0o644),), (), (),
               environment=str(tmp_path / "env"))  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(b.to_json()))
    assert [x.root for x in find_interrupted(tmp_path / "backups", str(tmp_path / "env"))] == [root]
    killed_in_rmtree = (
        "import os, signal, sys\n"
        "sys.addaudithook(lambda ev, _a: ev == 'shutil.rmtree' and os.kill(os.getpid(), signal.SIGKILL))\n"
        "from pathlib import Path\n"
        "from flashdoctor.actions.install.rollback import Backup, discard\n"
        "discard(Backup.from_manifest(Path(sys.argv[1])))\n"
    )
    r = subprocess.run([sys.executable, "-c", killed_in_rmtree, str(root)], capture_output=True, timeout=60)
    assert r.returncode == -9, r.stderr
    assert not (root / "manifest.json").exists()
    assert find_interrupted(tmp_path / "backups", str(tmp_path / "env")) == []


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
def test_a_sigterm_stops_what_pip_started_before_the_restore(tmp_path: Path) -> None:
    """install's pip stayed in flashdoctor's process group and only pip was killed: on a SIGTERM to
    flashdoctor alone (a cancelled CI job, `kill PID`, `docker stop`) what pip had started (a PEP 517 build
    backend compiling an sdist, nvcc and ninja under it) lived on and wrote into the environment after the
    restore. Here a stand-in pip starts a child that writes a marker after a delay: it is killed before
    run_installer hands the SIGTERM on (the restore's turn), and the marker is never written."""
    import sys
    import time

    from flashdoctor.actions.install.pip import run_installer
    from flashdoctor.errors import Terminated
    from tests.support.hung_python import gone, sigterm_once_started

    pidfile, marker = tmp_path / "backend.pid", tmp_path / "written-after-the-restore"
    backend = f"import time; time.sleep(1.5); open({str(marker)!r}, 'w').close()"
    pip = tmp_path / "pip.py"  # pip, with the build backend it started
    pip.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {backend!r}])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    t0 = time.monotonic()
    with sigterm_once_started(pidfile), pytest.raises(Terminated):  # to flashdoctor alone, as `kill PID`
        run_installer([sys.executable, str(pip)], dict(os.environ))
    assert gone(int(pidfile.read_text()), within=5), "what pip started outlived it"
    time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
    assert not marker.exists()
