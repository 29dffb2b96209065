"""Pure parts of the installer, fed values: build-record matching, plan files, lock text, constraints,
simple-index parsing, wheel metadata checks. No processes, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flashdoctor.actions.install.lock import LockEntry, lock_text
from flashdoctor.actions.install.pip import Installer, constraints_text
from flashdoctor.actions.install.prepare import plan_from_json, smoke_outcome, with_local_build
from flashdoctor.actions.net.download import NotAWheelError
from flashdoctor.actions.net.simple_index import parse_simple_page
from flashdoctor.actions.wheelfile import inspect_wheel, missing_requirements, torch_conflict
from flashdoctor.actions.wheelhouse import Wheelhouse, match_build
from flashdoctor.errors import UsageError
from flashdoctor.model.environment import GPU
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.probe.state import TargetState
from tests.conftest import target_env
from tests.install.install_helpers import H100_BUILD, make_wheel, sha256_of


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


def test_local_build_fits_the_machine_it_was_built_for() -> None:
    assert match_build(H100_BUILD, h100(), "fa2") == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"torch": "2.10.0+cu130"}, "minor must match"),
        ({"torch_cuda": "12.8", "torch": "2.11.0+cu128"}, "this torch has CUDA 12.8"),
        ({"cxx11abi": False}, "CXX11 ABI"),
        ({"python": "3.11", "python_abi": "cp311"}, "this Python is cp311"),
        ({"platform": "linux_aarch64"}, "this is linux_aarch64"),
        ({"glibc": "2.35"}, "glibc 2.39"),
    ],
)
def test_local_build_rejections(change: dict[str, object], reason: str) -> None:
    why = match_build(H100_BUILD, h100(**change), "fa2")
    assert why and any(reason in w for w in why), why


def test_local_build_needs_code_for_every_gpu() -> None:
    env = h100().replace(gpus=(GPU(index=0, name="NVIDIA A100", capability="8.0"),))
    assert any("no code for GPU 0 NVIDIA A100 (sm_80)" in w for w in match_build(H100_BUILD, env, "fa2"))
    # build archs, not capabilities: the sm_80 build runs on an RTX 4090 (sm_89), not on an H100
    sm80 = dict(H100_BUILD, archs=[80], profile="fd.sm80.hd128.bf16")
    ada = h100().replace(gpus=(GPU(index=0, name="NVIDIA GeForce RTX 4090", capability="8.9"),))
    assert match_build(sm80, ada, "fa2") == []
    assert match_build(sm80, h100(), "fa2") == [
        "has no code for GPU 0 NVIDIA H100 80GB HBM3 (sm_90) (built for sm_80)"
    ]
    assert match_build(H100_BUILD, h100(), "fa3") == ["built for fa2, not fa3"]


def test_build_plan_becomes_the_local_wheel(tmp_path: Path) -> None:
    wh = tmp_path / "wh" / "0123456789abcdef"
    w = make_wheel(wh, version="2.8.3.post2+fd.sm90.hd128.bf16", tag="cp312-cp312-linux_x86_64")
    (wh / "build.json").write_text(
        json.dumps(
            {
                "schema": "flashdoctor/built-wheel/1",
                "wheel": w.name,
                "sha256": sha256_of(w),
                "fingerprint": H100_BUILD,
            }
        )
    )
    plan = Plan(action="build", variant="fa2", reasons=("no official wheel for torch 2.11",))
    new, notes = with_local_build(plan, h100(), [Wheelhouse(tmp_path / "wh")])
    assert new.action == "wheel" and new.wheel is not None and notes == []
    assert (
        new.wheel.filename == w.name and new.wheel.sha256 == sha256_of(w) and new.wheel.source == "wheelhouse"
    )
    assert new.wheel.url.startswith("file://") and new.reasons[-1].startswith("a matching local build")
    # a wheel plan is left alone; on another torch the build is named with its reason
    assert (
        with_local_build(
            Plan(action="wheel", variant="fa2", wheel=new.wheel), h100(), [Wheelhouse(tmp_path / "wh")]
        )[0].wheel
        == new.wheel
    )
    other, notes = with_local_build(plan, h100(torch="2.10.0+cu130"), [Wheelhouse(tmp_path / "wh")])
    assert other == plan and "built against torch 2.11" in notes[0]


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
    assert Wheelhouse(tmp_path).local_builds("fa2") == []


def test_plan_file_validation() -> None:
    ok = plan_from_json(
        {
            "action": "wheel",
            "variant": "fa2",
            "wheel": {"filename": "a.whl", "url": "https://x/a.whl", "sha256": "A" * 64, "version": "1"},
        }
    )
    assert ok.wheel is not None and ok.wheel.sha256 == "a" * 64
    for bad, msg in [
        ([], "JSON object"),
        ({"action": "pip", "variant": "fa2"}, "'action'"),
        ({"action": "wheel", "variant": "fa2"}, "needs a 'wheel'"),
        (
            {
                "action": "wheel",
                "variant": "fa2",
                "wheel": {"filename": "a.whl", "url": "u", "version": "1", "sha256": "xyz"},
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
        wheel=WheelRef("f.whl", "https://h/f.whl", None, "pytorch-index", "3.0.0"),
        reasons=("r",),
    )
    q = plan_from_json(json.loads(json.dumps(p.to_json())))
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
    assert "pip install --require-hashes -r" in text and "publishes no sha256" in text


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


def test_an_early_state_is_used_only_when_current_and_readable(tmp_path: Path) -> None:
    import os
    from concurrent.futures import Future

    from flashdoctor.actions.install.executor import _usable_early_state

    site = tmp_path / "site"
    site.mkdir()

    def done(state: TargetState | None, exc: Exception | None = None) -> Future[TargetState]:
        f: Future[TargetState] = Future()
        if exc is not None:
            f.set_exception(exc)
        else:
            f.set_result(state)  # type: ignore[arg-type]
        return f

    current = done(_state(stamp=((str(site), os.stat(site).st_mtime_ns),)))
    assert _usable_early_state(current) is current
    assert _usable_early_state(done(_state(stamp=((str(site), 1),)))) is None
    assert _usable_early_state(done(None, RuntimeError("the target died"))) is None
    assert _usable_early_state(None) is None
