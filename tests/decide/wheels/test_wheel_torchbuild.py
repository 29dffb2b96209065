"""The torch a wheel was built against (issue 18, "Selection"): pre-release, nightly and vendor torch builds
are their own cells; a wheel built against another release patch fits (the patches export the same
symbols), one built against a nightly from before a recorded symbol change does not; the exact patch is preferred;
claims rank below published files; per-release Python ranges; Python unknown; and what people read."""

from __future__ import annotations

from typing import Any

import pytest

from flashdoctor.decide.wheels import load_index, make_plan, select_wheels
from flashdoctor.decide.wheels.index import WheelIndex
from flashdoctor.decide.wheels.torchbuild import (
    EXACT,
    NIGHTLY,
    OTHER_PATCH,
    UNKNOWN,
    build_class,
    torch_build,
)
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT


@pytest.fixture(scope="module")
def index() -> WheelIndex:
    return load_index(ROOT / "wheels_index.json")


def env(**spec: Any) -> Environment:
    base: dict[str, Any] = {"python": "3.10", "platform": "linux_x86_64", "glibc": "2.35", "installed": {}}
    base.update(spec)
    return environment_from_target(base)


# -- the build of a torch version string -------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("2.3.0", "release", "2.3.0"),
        ("2.3.0+cu121", "release", "2.3.0"),  # PyTorch's own CUDA flavour of the release
        ("2.6.0+cpu", "release", "2.6.0"),
        ("2.8.0.dev20250319+cu128", "nightly", "2.8.0.dev20250319"),
        ("2.1.0a0+32f93b1", "prerelease", "2.1.0a0+32f93b1"),  # NGC 23.10
        ("2.10.0a0", "prerelease", "2.10.0a0"),  # GB10 / DGX Spark
        ("2.0.0+nv23.05", "vendor", "2.0.0+nv23.5"),  # Jetson (PEP 440 normalises the label)
        ("2.6.0a0+df5bbc09d1.nv24.11", "prerelease", "2.6.0a0+df5bbc09d1.nv24.11"),
        # NGC 23.12 is the nightly of 2023-11-06 (maintainer, Dao-AILab/flash-attention#836)
        ("2.2.0a0+81ea7a4", "prerelease", "2.2.0.dev20231106"),
    ],
)
def test_torch_build_kinds(text: str, kind: str, key: str) -> None:
    tb = torch_build(text)
    assert tb is not None and (tb.kind, tb.key) == (kind, key)


def test_not_a_version() -> None:
    assert torch_build("not-a-version") is None and torch_build(None) is None


@pytest.mark.parametrize(
    ("built", "torch", "expected"),
    [
        ("2.2.0", "2.2.0", EXACT),
        ("2.2.2", "2.2.0", OTHER_PATCH),  # 2.2.0 and 2.2.2 export the same symbols (measured)
        ("2.3.0", "2.3.1", OTHER_PATCH),
        ("2.0.1", "2.0.0+cu118", OTHER_PATCH),  # a later patch: it only adds symbols
        ("2.4.0.dev20240512", "2.4.0", NIGHTLY),
        ("2.3.0.dev20240207", "2.3.0", None),  # imports SetDevice(int), which 2.3's releases lack
        ("2.3.0.dev20240105", "2.3.1+cu121", None),
        ("2.3.0.dev20240301", "2.3.0", NIGHTLY),  # after the change: no recorded break
        ("2.4.0", "2.4", UNKNOWN),  # the torch's patch is not known
        (None, "2.7.1", UNKNOWN),
        ("2.2.2", "2.2.0a0+6a974be", None),  # a pre-release takes only its very build
        (None, "2.10.0a0", None),
        ("2.2.0.dev20231106", "2.2.0a0+81ea7a4", EXACT),
        ("2.8.0.dev20250301", "2.8.0.dev20250319+cu128", None),
        ("2.0.1", "2.0.0+nv23.05", None),
    ],
)
def test_build_class(built: str | None, torch: str, expected: int | None) -> None:
    assert build_class(built, torch_build(torch)) == expected


# -- selection on the committed index -----------------------------------------------------------------
NGC = {"glibc": "2.35", "cxx11abi": True}


@pytest.mark.parametrize(
    ("torch", "cuda", "arch", "why"),
    [
        ("2.1.0a0+32f93b1", "12.2", "linux_x86_64", "a pre-release build"),
        ("2.2.0a0+6a974be", "12.3", "linux_x86_64", "a pre-release build"),
        ("2.10.0a0", "13.0", "linux_aarch64", "a pre-release build"),
        ("2.8.0.dev20250319+cu128", None, "linux_x86_64", "a nightly"),
        ("2.0.0+nv23.05", "11.4", "linux_aarch64", "a vendor build"),
    ],
)
def test_a_pre_release_or_vendor_torch_gets_a_build_and_is_told_why(
    index: WheelIndex, torch: str, cuda: str | None, arch: str, why: str
) -> None:
    spec = dict(NGC, python="3.10" if arch == "linux_x86_64" else "3.12", torch=torch, platform=arch)
    if cuda:
        spec["torch_cuda"] = cuda
    plan = make_plan(env(**spec), "fa2", index)
    assert plan.action == "build", plan.reasons
    first = plan.reasons[1]
    assert f"torch {torch} is {why}: release wheels are compiled against PyTorch's releases" in first
    assert any("torch-build-mismatch" in r for rej in plan.rejected for r in rej.reasons)


def test_ngc_23_12_takes_the_wheels_built_against_its_nightly(index: WheelIndex) -> None:
    plan = make_plan(env(torch="2.2.0a0+81ea7a4", torch_cuda="12.3", **NGC), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert (
        plan.wheel.filename == "flash_attn-2.5.1.post1+cu122torch2.2cxx11abiTRUE-cp310-cp310-linux_x86_64.whl"
    )
    assert any(
        "built against torch 2.2.0.dev20231106, the nightly that 2.2.0a0+81ea7a4 (NGC PyTorch 23.12) is built from"
        in r
        for r in plan.reasons
    )


def test_a_wheel_built_against_a_later_patch_fits_after_the_exact_patch(index: WheelIndex) -> None:
    # pip torch 2.2.0 (pre-CXX11): 2.5.8+ torch-2.2 wheels were built against 2.2.2, 2.5.2-2.5.7 against
    # 2.2.0, 2.5.0/2.5.1 against nightlies. 2.2.0 and 2.2.2 export the same symbols: all fit, the exact
    # patch first.
    plan = make_plan(env(torch="2.2.0+cu118", cxx11abi=False), "fa2", index)
    sel = select_wheels(env(torch="2.2.0+cu118", cxx11abi=False), "fa2", index)
    assert sel.best is not None and sel.best.torch_build == "2.2.0"
    assert any(
        e.filename == "flash_attn-2.5.8+cu118torch2.2cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
        for e in sel.fits
    )
    pinned = make_plan(env(torch="2.2.0+cu118", cxx11abi=False), "fa2", index, version_spec="==2.5.8")
    assert pinned.wheel is not None and pinned.wheel.filename.startswith("flash_attn-2.5.8+cu118torch2.2")
    assert any(
        "built against torch 2.2.2, another patch than this torch 2.2.0+cu118: both export the same C++ symbols "
        "(measured on PyTorch's wheels), so it loads" in r
        for r in pinned.reasons
    ), pinned.reasons
    assert plan.wheel is not None


def test_a_wheel_built_against_an_early_nightly_is_rejected_and_says_which_symbol(index: WheelIndex) -> None:
    # flash-attn 2.5.7's torch-2.3 wheels were built against 2.3.0.dev20240207 (#931, #966)
    pinned = make_plan(env(torch="2.3.0+cu121", cxx11abi=False), "fa2", index, version_spec="==2.5.7")
    assert pinned.wheel is None or not pinned.wheel.filename.startswith("flash_attn-2.5.7+cu122torch2.3")
    reasons = [
        r
        for rej in pinned.rejected
        if rej.filename.startswith("flash_attn-2.5.7+cu122torch2.3")
        for r in rej.reasons
    ]
    assert (
        reasons
        and "imports _ZN3c104cuda9SetDeviceEi, which this torch 2.3.0+cu121 does not export" in reasons[0]
    )


def test_the_exact_patch_beats_a_newer_release_built_against_an_earlier_patch(index: WheelIndex) -> None:
    # torch 2.3.0: 2.5.8 and 2.5.9.post1 were built against 2.3.0; 2.6.0+ against 2.3.1 (fits, ranked after)
    sel = select_wheels(env(torch="2.3.0+cu121", cxx11abi=False, glibc="2.31"), "fa2", index)
    assert sel.best is not None
    assert (
        sel.best.filename == "flash_attn-2.5.9.post1+cu122torch2.3cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
    )
    # torch 2.3.1: the 2.3.1-built 2.7.4.post1 beats nothing older, and an earlier-patch wheel is noted
    sel = select_wheels(env(torch="2.3.1+cu121", cxx11abi=False, glibc="2.31"), "fa2", index)
    assert sel.best is not None and sel.best.torch_build == "2.3.1"


def test_an_earlier_patch_or_a_nightly_build_fits_but_says_so(index: WheelIndex) -> None:
    plan = make_plan(env(torch="2.4.1+cu121", cxx11abi=False), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert any(
        "another patch than this torch 2.4.1+cu121: both export the same C++ symbols" in r
        for r in plan.reasons
    ), plan.reasons
    # only nightly-built wheels for torch 2.6 on CUDA 11: 2.7.1.post1..2.7.3 (built against 2.6.0.dev20241001)
    plan = make_plan(env(torch="2.6.0+cu118", cxx11abi=False, torch_cuda="11.8"), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None, plan.reasons
    assert any("built against the nightly 2.6.0.dev20241001, not a release" in r for r in plan.reasons)


def test_v2_8_0_is_gone_and_glibc_2_31_gets_2_7_4_post1(index: WheelIndex) -> None:
    assert not [e for e in index.entries if e.tag == "v2.8.0"]
    plan = make_plan(env(python="3.12", torch="2.6.0+cu124", cxx11abi=False, glibc="2.31"), "fa2", index)
    assert plan.wheel is not None and plan.wheel.filename.startswith("flash_attn-2.7.4.post1+")


def test_claims_rank_below_published_files(index: WheelIndex) -> None:
    # Every official wheel of the index is seen published now (the release asset listing); bdashore3's
    # Windows wheels derived from its workflow matrix are the claims left.
    e = env(python="3.11", platform="win_amd64", torch="2.4.0+cu124")
    sel = select_wheels(e, "fa2", index, allow_community=True)
    assert sel.best is not None and not sel.best.claim
    # Among the wheels built against this torch's patch (or an unrecorded one) - wheels built against
    # another patch rank after them all, claims or not.
    same = [e for e in sel.fits if e.torch_build in (None, "2.4.0")]
    seen = [e for e in same if not e.claim]
    claims = [e for e in same if e.claim]
    assert seen and claims and same.index(seen[-1]) < same.index(claims[0])


def test_old_releases_serve_python_3_8(index: WheelIndex) -> None:
    """issue 18: a cp38 user was told FA2 is unsupported; 2.5.x-2.7.0 shipped cp38 wheels."""
    plan = make_plan(env(python="3.8", torch="2.2.0", torch_cuda="11.8", cxx11abi=False), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert "-cp38-cp38-" in plan.wheel.filename
    assert any(
        "Python 3.8 is below FlashAttention-2's minimum today (3.9), but flash-attn" in r
        for r in plan.reasons
    )
    # no cp38 wheel for torch 2.6: still unsupported (today's sources need Python >= 3.9)
    plan = make_plan(env(python="3.8", torch="2.6.0+cu124", cxx11abi=False), "fa2", index)
    assert plan.action == "unsupported" and "python-too-old" in plan.blockers


def test_python_unknown_does_not_commit_to_one_cpxy(index: WheelIndex) -> None:
    e = environment_from_target(
        {"platform": "linux_x86_64", "torch": "2.6.0+cu124", "cxx11abi": False, "installed": {}}
    )
    plan = make_plan(e, "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    note = next(r for r in plan.reasons if r.startswith("Python unknown: this build exists for"))
    assert "cp39, cp310, cp311, cp312, cp313" in note
    twins = [a.filename for a in plan.alternatives[:4]]
    stem = plan.wheel.filename.split("-cp")[0]
    assert all(f.startswith(stem + "-cp") for f in twins), twins


def test_windows_community_wheels_of_bdashore3(index: WheelIndex) -> None:
    e = env(python="3.10", platform="win_amd64", glibc=None, torch="2.3.0+cu121", torch_cuda="12.1")
    plan = make_plan(e, "fa2", index, allow_community=True)
    assert plan.wheel is not None and plan.wheel.source == "community:bdashore3"
    assert (
        plan.wheel.filename == "flash_attn-2.5.9.post1+cu122torch2.3.0cxx11abiFALSE-cp310-cp310-win_amd64.whl"
    )
    assert any("derived from the release's build matrix" in r for r in plan.reasons)


@pytest.mark.parametrize("torch", ["2.10.0.dev20251101+cu126", "2.10.0a0+a5436a5"])
def test_a_stable_abi_wheel_does_not_fit_a_pre_release_torch_either(index: WheelIndex, torch: str) -> None:
    # FA3's stable-ABI wheels serve torch *releases* >= 2.9; a nightly or an NGC build of 2.10 is its own
    # cell (KellerJordan/modded-nanogpt#145: a GH200 on a 2.10 nightly had to build FA3).
    spec = dict(python="3.12", platform="linux_aarch64", torch=torch, torch_cuda="12.6", cxx11abi=True)
    spec["gpus"] = [{"name": "NVIDIA GH200", "capability": "9.0"}]
    plan = make_plan(env(**spec), "fa3", index)
    assert plan.action == "build", plan.reasons
    stable = [rej for rej in plan.rejected if rej.filename.startswith("flash_attn_3-3.0.0-cp39-abi3")]
    assert stable and all(any("torch-build-mismatch" in r for r in rej.reasons) for rej in stable)
    assert any("stable-ABI wheels exist for torch releases >=2.9" in r for r in plan.reasons)
    # The same machine on the 2.10.0 release takes the stable-ABI wheel.
    spec["torch"] = "2.10.0+cu126"
    release = make_plan(env(**spec), "fa3", index)
    assert release.action == "wheel" and release.wheel is not None
    assert release.wheel.filename.startswith("flash_attn_3-3.0.0-cp39-abi3-manylinux_2_34_aarch64")


def test_python_below_the_floor_takes_the_last_release_with_its_wheels(index: WheelIndex) -> None:
    # Python 3.8, torch 2.0.0: the cp38 wheels for torch 2.0 (2.6.3, the last with torch-2.0 wheels) were
    # built against 2.0.1, a later patch that only adds symbols: the wheel fits, and the plan says why.
    plan = make_plan(env(python="3.8", torch="2.0.0+cu118", glibc="2.31", cxx11abi=False), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert plan.wheel.filename == "flash_attn-2.6.3+cu118torch2.0cxx11abiFALSE-cp38-cp38-linux_x86_64.whl"
    text = "\n".join(plan.reasons)
    assert "built against torch 2.0.1, another patch than this torch 2.0.0+cu118" in text


def test_a_release_whose_python_code_needs_a_newer_torch_ranks_after_one_that_runs_whole(
    index: WheelIndex,
) -> None:
    # flash-attn 2.8's Triton ops call torch.library.wrap_triton (torch 2.6): its torch 2.5 wheels load,
    # but rotary / layer norm fail (Dao-AILab/flash-attention#2037). On torch 2.5, 2.7.4.post1 comes first.
    plan = make_plan(env(torch="2.5.1+cu124", cxx11abi=False), "fa2", index)
    assert plan.wheel is not None and plan.wheel.filename.startswith("flash_attn-2.7.4.post1+cu12torch2.5"), (
        plan
    )
    why = next(r for r in plan.reasons if r.startswith("newer releases fit too"))
    assert "2.8.3.post1" in why and "torch >= 2.6" in why and "wrap_triton" in why
    # Asked for 2.8.3 anyway: it is the pick, and the plan says what will not run.
    plan = make_plan(env(torch="2.5.1+cu124", cxx11abi=False), "fa2", index, version_spec="==2.8.3")
    assert plan.wheel is not None and plan.wheel.filename.startswith("flash_attn-2.8.3+cu12torch2.5")
    assert any("needs torch >= 2.6 for part of its Python code" in r for r in plan.reasons)
    # torch 2.7 runs 2.8 whole: the newest release, and no such note.
    plan = make_plan(env(torch="2.7.1+cu126"), "fa2", index)
    assert plan.wheel is not None and plan.wheel.filename.startswith("flash_attn-2.8.3"), plan.wheel
    assert not any("torch >= 2.6" in r for r in plan.reasons)


@pytest.mark.parametrize(
    ("torch", "version", "cuda"),
    [("2.5.1", "==2.7.1.post4", "+cu12torch2.5"), ("2.0.1", "==2.3.3", "+cu11")],
)
def test_a_plain_torch_version_is_pypis_build_and_its_cuda_major_is_checked(
    index: WheelIndex, torch: str, version: str, cuda: str
) -> None:
    """A target spec's plain torch 2.5.1 is PyPI's CUDA 12.4 build (its wheel's METADATA): 2.7.1.post4's cu11
    wheel for torch 2.5 needs libcudart.so.11, which that torch does not ship. Before torch 2.0-2.5 were in
    data/torch_builds.json the CUDA was unknown and the cu11 wheel was picked (r1v, fresh.json)."""
    e = env(python="3.11", torch=torch, cxx11abi=False)
    assert e.torch_cuda is not None
    plan = make_plan(e, "fa2", index, version)
    assert plan.action == "wheel" and plan.wheel is not None and cuda in plan.wheel.filename
    assert "torch's CUDA unknown" not in " ".join(plan.reasons)
