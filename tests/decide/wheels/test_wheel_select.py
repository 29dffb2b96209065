"""Selection over the committed wheels_index.json, on real machines.

The expected filenames were worked out by hand from the wheel dataset's listings and facts.md (the
reasoning is in each row's comment), not by running the selector.
"""

from __future__ import annotations

from typing import Any

import pytest

from flashdoctor.decide.wheels import REJECTION_CODES, load_index, make_plan, select_wheels
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.reasons import entry_notes
from flashdoctor.decide.wheels.select import evaluate, parse_version_spec, reason_text, target_of
from flashdoctor.errors import UsageError
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT

GPU = {
    "a100": {"name": "NVIDIA A100-SXM4-80GB", "capability": "8.0", "memory_gb": 80},
    "a10": {"name": "NVIDIA A10", "capability": "8.6", "memory_gb": 24},
    "h100": {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gb": 80},
    "gh200": {"name": "NVIDIA GH200 480GB", "capability": "9.0", "memory_gb": 96},
    "b200": {"name": "NVIDIA B200", "capability": "10.0", "memory_gb": 180},
    "rtx5090": {"name": "NVIDIA GeForce RTX 5090", "capability": "12.0", "memory_gb": 32},
    "rtx4090": {"name": "NVIDIA GeForce RTX 4090", "capability": "8.9", "memory_gb": 24},
    "t4": {"name": "Tesla T4", "capability": "7.5", "memory_gb": 15},
}


def machine(gpu: str = "h100", **spec: Any) -> Environment:
    """A target spec with sensible defaults: Linux x86_64, Ubuntu 22.04, Python 3.12, torch 2.8 + CUDA 12.8."""
    base: dict[str, Any] = {
        "python": "3.12",
        "platform": "linux_x86_64",
        "glibc": "2.35",
        "torch": "2.8.0+cu128",
        "cxx11abi": True,
        "driver": "580.65.06",
        "gpus": [GPU[gpu]],
        "nvcc": "12.8",
        "gcc": "11.4.0",
        "ninja": True,
        "cpus": 32,
        "memory_gb": 200,
        "disk_free_gb": 500,
        "installed": {},
    }
    base.update(spec)
    return environment_from_target(base)


@pytest.fixture(scope="module")
def index() -> WheelIndex:
    return load_index(ROOT / "wheels_index.json")


def entry(index: WheelIndex, filename: str, tag: str | None = None, cuda: str | None = None) -> IndexEntry:
    found = [
        e
        for e in index.entries
        if e.filename == filename and (tag is None or e.tag == tag) and (cuda is None or e.cuda == cuda)
    ]
    assert len(found) == 1, (filename, [e.url for e in found])
    return found[0]


# (id, machine, variant, options, expected filename, expected url fragment)
TABLE = [
    # torch 2.8 has official cp312 wheels up to 2.8.3.post1; the cxx11abiTRUE one is certain, its FALSE
    # twin only probably CXX11 (dataset README quirk 4).
    ("a100 torch2.8 py3.12", machine("a100", driver="570.86.15"), "fa2", {},
     "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "/v2.8.3.post1/"),
    # sm_120: 2.8.x wheels were built with CUDA 12.9 (sm_100/sm_120 included); torch 2.7 cp311 exists.
    ("rtx5090 torch2.7 py3.11", machine("rtx5090", python="3.11", torch="2.7.1+cu128", glibc="2.39"), "fa2", {},
     "flash_attn-2.8.3.post1+cu12torch2.7cxx11abiTRUE-cp311-cp311-linux_x86_64.whl", None),
    # Ubuntu 20.04 (glibc 2.31): 2.8.0.post1+ need 2.35, and v2.8.0's wheels were never published (its CI
    # still targeted the retired ubuntu-20.04 runners), so 2.7.4.post1 is the newest, as glibc-2.31 users were
    # told (#1708); torch 2.4's pip wheels use the old ABI, so the FALSE label (not forced) is a pre-CXX11
    # build; built against 2.4.0, an earlier patch than 2.4.1; a 535 driver runs CUDA 12.x.
    ("a10 torch2.4+cu121 py3.10 glibc2.31", machine("a10", python="3.10", torch="2.4.1+cu121", cxx11abi=False,
     glibc="2.31", driver="535.183.01", nvcc="12.1"), "fa2", {},
     "flash_attn-2.7.4.post1+cu12torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl", "/v2.7.4.post1/"),
    # CUDA 11 torch: cu11 wheels stop at v2.7.3 (v2.7.4 on are cu12 only).
    ("a100 torch2.5+cu118 py3.10", machine("a100", python="3.10", torch="2.5.1+cu118", cxx11abi=False, nvcc="11.8"),
     "fa2", {}, "flash_attn-2.7.3+cu11torch2.5cxx11abiFALSE-cp310-cp310-linux_x86_64.whl", "/v2.7.3/"),
    # aarch64 (GH200): the only official torch 2.8 aarch64 wheel was added to v2.8.1.
    ("gh200 aarch64 torch2.8", machine("gh200", platform="linux_aarch64", glibc="2.39"), "fa2", {},
     "flash_attn-2.8.1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_aarch64.whl", "/v2.8.1/"),
    # torch 2.9 + CUDA 12: cu12torch2.9 assets on v2.8.1 and v2.8.3 (added later); 2.8.3 is newer.
    ("b200 torch2.9+cu129", machine("b200", torch="2.9.0+cu129", nvcc="12.9"), "fa2", {},
     "flash_attn-2.8.3+cu12torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "/v2.8.3/"),
    # torch 2.9 + CUDA 13: the same filename hangs on v2.8.3 and v2.8.3.post1 (quirk 1): the newer release.
    ("h100 torch2.9+cu130", machine("h100", torch="2.9.0+cu130", glibc="2.39", nvcc="13.0"), "fa2", {},
     "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "/v2.8.3.post1/"),
    # torch 2.10 + CUDA 13: one official wheel, on v2.8.3.
    ("h100 torch2.10+cu130", machine("h100", torch="2.10.0+cu130", glibc="2.39", nvcc="13.0"), "fa2", {},
     "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "/v2.8.3/"),
    # torch 2.11: no official wheel; among community builds the one with an explicit TRUE label wins over
    # mjun0812's (ABI inferred), all being 2.8.3.
    ("h100 torch2.11+cu130 community", machine("h100", torch="2.11.0+cu130", glibc="2.39", nvcc="13.0"), "fa2",
     {"allow_community": True}, "flash_attn-2.8.3+cu13torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
     "github.com/adithyaxx/"),
    # torch 2.12: only mjun0812; its auditwheel copy states its glibc need, the linux_x86_64 copy does not.
    ("h100 torch2.12+cu130 community", machine("h100", torch="2.12.0+cu130", glibc="2.39", nvcc="13.0"), "fa2",
     {"allow_community": True},
     "flash_attn-2.8.3+cu130torch2.12-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl", "mjun0812"),
    # Windows: no official wheels; for torch 2.11 + CUDA 13 only mjun0812's cu130 build has the CUDA major.
    ("windows rtx4090 torch2.11+cu130", machine("rtx4090", platform="win_amd64", glibc=None,
     torch="2.11.0+cu130", cxx11abi=None, driver="581.57", nvcc="13.0", gcc=None), "fa2",
     {"allow_community": True}, "flash_attn-2.8.3+cu130torch2.11-cp312-cp312-win_amd64.whl", "/v0.9.6/"),
    # --version pins: below 2.8 on torch 2.8, only the torch 2.8 assets added to v2.7.3 remain.
    ("a100 torch2.8 --version <2.8", machine("a100"), "fa2", {"version_spec": "<2.8"},
     "flash_attn-2.7.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "/v2.7.3/"),
    # FA3 on the PyTorch index: the per-CUDA index of torch's own CUDA.
    ("fa3 h100 torch2.11+cu130", machine("h100", torch="2.11.0+cu130", glibc="2.39", nvcc="13.0"), "fa3", {},
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "download.pytorch.org/whl/cu130/"),
    ("fa3 h100 torch2.9+cu128 py3.10", machine("h100", python="3.10", torch="2.9.0+cu128"), "fa3", {},
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "download.pytorch.org/whl/cu128/"),
    ("fa3 gh200 aarch64 torch2.9+cu128", machine("gh200", platform="linux_aarch64", torch="2.9.0+cu128",
     glibc="2.39"), "fa3", {}, "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_34_aarch64.whl",
     "download.pytorch.org/whl/cu128/"),
    # The PyTorch index ranks above community for the same FA3 version.
    ("fa3 h100 torch2.10+cu128 community", machine("h100", torch="2.10.0+cu128"), "fa3", {"allow_community": True},
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "download.pytorch.org/whl/cu128/"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "variant", "options", "filename", "url_part"), [r[1:] for r in TABLE], ids=[r[0] for r in TABLE]
)
def test_real_environments(
    index: WheelIndex,
    env: Environment,
    variant: str,
    options: dict[str, Any],
    filename: str,
    url_part: str | None,
) -> None:
    plan = make_plan(env, variant, index, **options)  # type: ignore[arg-type]
    assert plan.action == "wheel", plan.reasons
    assert plan.wheel is not None
    assert plan.wheel.filename == filename
    if url_part:
        assert url_part in plan.wheel.url
    assert plan.wheel.url.startswith("https://")


def test_fa4_is_the_newest_wheel_on_pypi(index: WheelIndex) -> None:
    newest = max((e for e in index.for_variant("fa4") if not e.yanked), key=lambda e: e.version)
    assert newest.version.is_prerelease  # only pre-releases exist
    plan = make_plan(machine("h100", torch="2.11.0+cu130", nvcc="13.0"), "fa4", index)
    assert plan.action == "wheel"
    assert plan.wheel == newest.ref()
    assert plan.wheel.sha256 is not None and plan.wheel.source == "pypi"
    assert any("only pre-releases" in r for r in plan.reasons)


def test_exact_sha256_is_carried_from_the_listing(index: WheelIndex) -> None:
    plan = make_plan(machine("h100", torch="2.10.0+cu130", glibc="2.39", nvcc="13.0"), "fa2", index)
    assert plan.wheel is not None
    assert plan.wheel.sha256 == "910d8db9def162de5b7c15474b933e7e2371e93733b980e9d3c07cd3bf2f568e"


# -- the plan's other actions -------------------------------------------------------------------------
def test_no_wheel_means_a_build_and_says_what_would_fit(index: WheelIndex) -> None:
    env = machine("h100", torch="2.13.0+cu130", glibc="2.39", nvcc="13.0")
    plan = make_plan(env, "fa2", index)
    assert plan.action == "build"
    assert plan.wheel is None
    text = "\n".join(plan.reasons)
    assert "no prebuilt wheel fits this machine" in text
    assert "official wheels exist for torch 2.10, 2.9 with this CUDA, ABI and Python" in text
    assert "community wheels fit" in text and "--allow-community" in text
    assert "flashdoctor install --fa2 --from-source" in text
    assert plan.blockers == ()
    assert plan.rejected and all(r.reasons for r in plan.rejected)


def test_a_rocm_torch_named_only_by_its_version_gets_no_cuda_wheel(index: WheelIndex) -> None:
    # what a ROCm user writes (or pastes from pip list): the +rocm label alone, no torch_hip
    env = machine(
        "h100",
        torch="2.5.1+rocm6.2",
        driver=None,
        gpus=[{"name": "AMD Instinct MI300X", "capability": "9.4"}],
    )
    plan = make_plan(env, "fa2", index)
    assert plan.action != "wheel", plan.wheel
    assert any("ROCm" in r for r in plan.reasons)


def test_an_intel_xpu_torch_gets_no_cuda_wheel(index: WheelIndex) -> None:
    # torch.version.cuda is None on an XPU build; the NVIDIA GPU beside it does not make it a CUDA torch
    env = machine("h100", torch="2.5.1+xpu")
    assert env.torch_cuda is None and env.known("torch_cuda")
    assert target_of(env).torch_state == "xpu"
    plan = make_plan(env, "fa2", index)
    assert plan.action == "unsupported" and plan.wheel is None
    assert plan.reasons[0].startswith("torch 2.5.1+xpu is an Intel XPU build (no CUDA)"), plan.reasons
    assert not any("CPU-only" in r for r in plan.reasons)
    entry = next(e for e in index.entries if e.name.dist == "flash-attn")
    assert reason_text("no-cuda-torch", entry, target_of(env)).startswith(
        "no-cuda-torch: torch is an Intel XPU build;"
    )


def test_windows_on_arm64_plans_nothing_and_says_there_is_no_cuda(index: WheelIndex) -> None:
    env = machine("h100", platform="win_arm64", glibc=None)
    plan = make_plan(env, "fa2", index)
    assert plan.action == "unsupported", plan
    assert any(r.startswith("Windows on ARM64 has no CUDA") for r in plan.reasons), plan.reasons


def test_a_rocm_plan_says_once_that_there_are_no_wheels(index: WheelIndex) -> None:
    mi300x = {"name": "AMD Instinct MI300X", "capability": "9.4"}
    env = machine("h100", torch="2.5.1+rocm6.2", torch_hip="6.2", driver=None, gpus=[mi300x])
    plan = make_plan(env, "fa2", index)
    assert plan.action == "build"
    assert [r for r in plan.reasons if "prebuilt wheels" in r] == [
        "ROCm: no prebuilt wheels; build flash-attn for ROCm from source"
    ]


def test_a_gpu_the_variant_never_runs_on_does_not_turn_a_wheel_into_a_build(index: WheelIndex) -> None:
    # An H100 beside a V100: FA2 runs on the H100 only, and a source build cannot add sm_70 code (FA2 has
    # none), so the wheel with sm_90 code serves this machine exactly as a build would.
    v100 = {"name": "Tesla V100-SXM2-32GB", "capability": "7.0", "memory_gb": 32}
    env = machine("h100", gpus=[GPU["h100"], v100])
    plan = make_plan(env, "fa2", index)
    assert plan.action == "wheel", plan.reasons
    assert plan.wheel == make_plan(machine("h100"), "fa2", index).wheel
    assert any("V100" in r and "sm80+" in r for r in plan.reasons), plan.reasons
    # on the V100 alone FA2 still stands unsupported, and every wheel still lacks its code
    alone = machine("h100", gpus=[v100])
    assert make_plan(alone, "fa2", index).action == "unsupported"
    assert all(
        "gpu-code-missing" in codes for _e, codes in select_wheels(alone, "fa2", index).unsorted_misses
    )


def test_build_plan_carries_the_build_blockers(index: WheelIndex) -> None:
    env = machine("h100", torch="2.13.0+cu130", glibc="2.39", nvcc=None)
    plan = make_plan(env, "fa2", index)
    assert plan.action == "build"
    assert "nvcc-missing" in plan.blockers
    assert any(r.startswith("fix before building: No nvcc found") for r in plan.reasons)


def test_hint_for_another_python(index: WheelIndex) -> None:
    plan = make_plan(machine("h100", python="3.11", torch="2.10.0+cu128"), "fa2", index)
    assert plan.action == "build"
    assert any(r.startswith("official wheels exist for cp312 with this torch and CUDA") for r in plan.reasons)


@pytest.mark.parametrize(
    "spec",
    [
        {"glibc": None},  # what --save-target writes on Alpine: a Linux without glibc
        {"glibc": None, "platform": "musllinux_1_2_x86_64"},  # the platform's own wheel tag (PEP 656)
        {"platform": "musllinux_1_2_x86_64"},
    ],
    ids=["glibc-null", "musllinux-null", "musllinux"],
)
def test_a_musl_linux_gets_no_glibc_wheel(index: WheelIndex, spec: dict[str, Any]) -> None:
    env = machine("a100", **spec)
    plan = make_plan(env, "fa2", index)
    assert plan.action != "wheel", plan.wheel
    sel = select_wheels(env, "fa2", index)
    assert all("platform-mismatch" in codes for _e, codes in sel.unsorted_misses)
    rejected = "\n".join(r for rej in plan.rejected for r in rej.reasons)
    assert "musl" in rejected
    assert not any("glibc unknown" in r for r in plan.reasons)
    assert any(r.startswith("this Linux has musl libc, not glibc") for r in plan.reasons)


def test_fa4_on_a_musl_linux_plans_no_wheel(index: WheelIndex) -> None:
    """flash_attn_4's py3-none-any wheel passes the tag check on musl, but its dependency nvidia-cutlass-dsl
    ships manylinux wheels only: install --fa4 planned a wheel whose install could not work."""
    plan = make_plan(machine("h100", glibc=None, platform="musllinux_1_2_x86_64"), "fa4", index)
    assert plan.action == "unsupported", plan
    assert "libc-musl" in plan.blockers
    assert make_plan(machine("h100"), "fa4", index).action == "wheel"


def test_hint_for_an_old_glibc(index: WheelIndex) -> None:
    # torch 2.8 wheels: 2.8.3/2.8.3.post1 built on Ubuntu 22.04, the v2.7.3 and v2.8.1 additions assumed so
    plan = make_plan(machine("a100", glibc="2.31"), "fa2", index)
    assert plan.action == "build"
    assert any(r.startswith("official wheels need a newer glibc than 2.31") for r in plan.reasons)
    assert any(
        "glibc-too-old: needs glibc 2.35 (built on Ubuntu 22.04), this system has glibc 2.31" in reason
        for rej in plan.rejected
        for reason in rej.reasons
    )


def test_gpu_code_missing_when_pinned_below_blackwell_builds(index: WheelIndex) -> None:
    # 2.7.x wheels were built with CUDA 12.3/12.4: no sm_120 code for an RTX 5090.
    env = machine("rtx5090", torch="2.6.0+cu126", glibc="2.39")
    plan = make_plan(env, "fa2", index, version_spec="<2.8")
    assert plan.action == "build"
    assert any(
        r.startswith("official wheels fit except that they carry no code for this GPU") for r in plan.reasons
    )
    plan_new = make_plan(env, "fa2", index)
    assert plan_new.wheel is not None
    assert (
        plan_new.wheel.filename
        == "flash_attn-2.8.3.post1+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )


def test_fa3_before_torch_2_9_needs_a_build(index: WheelIndex) -> None:
    plan = make_plan(machine("h100"), "fa3", index)  # torch 2.8
    assert plan.action == "build"
    assert any("official wheels exist for torch >=2.9" in r for r in plan.reasons)


def test_none_when_installed_and_working(index: WheelIndex) -> None:
    installed = {"flash-attn": {"version": "2.8.3.post1", "import_ok": True, "archs": ["sm_80", "sm_90"]}}
    env = machine("a100", installed=installed)
    assert make_plan(env, "fa2", index).action == "none"
    # ... unless --version asks for another version (v2.8.2 has no torch 2.8 wheel; v2.8.1 got one later)
    assert make_plan(env, "fa2", index, version_spec="==2.8.2").action == "build"
    pinned = make_plan(env, "fa2", index, version_spec="==2.8.1")
    assert pinned.action == "wheel"
    assert pinned.wheel is not None
    assert pinned.wheel.filename == "flash_attn-2.8.1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"


def test_not_none_when_the_installed_build_does_not_import(index: WheelIndex) -> None:
    installed = {
        "flash-attn": {"version": "2.8.3", "import_ok": False, "import_error": "undefined symbol: _ZN3c10"}
    }
    plan = make_plan(machine("a100", installed=installed), "fa2", index)
    assert plan.action == "wheel"


@pytest.mark.parametrize(
    ("env", "variant", "blockers"),
    [
        (machine("t4", torch="2.7.1+cu126"), "fa2", ("gpu-unsupported",)),
        (machine("b200", python="3.9"), "fa4", ("python-too-old",)),
        (machine("h100", torch=None), "fa2", ("torch-missing",)),
        (machine("h100", torch="2.8.0+cpu"), "fa2", ("torch-cpu-only",)),
    ],
    ids=["t4", "python3.9-fa4", "no-torch", "cpu-torch"],
)
def test_unsupported_names_the_check_codes(
    index: WheelIndex, env: Environment, variant: str, blockers: tuple[str, ...]
) -> None:
    plan = make_plan(env, variant, index)  # type: ignore[arg-type]
    assert plan.action == "unsupported"
    assert set(blockers) <= set(plan.blockers)
    assert plan.wheel is None


def test_unsupported_gpu_names_sdpa(index: WheelIndex) -> None:
    plan = make_plan(machine("t4", torch="2.7.1+cu126"), "fa2", index)
    assert any("PyTorch SDPA" in r for r in plan.reasons)


def test_plan_json_has_exactly_the_public_fields(index: WheelIndex) -> None:
    doc = make_plan(machine("a100"), "fa2", index).to_json()
    assert set(doc) == {
        "action",
        "variant",
        "wheel",
        "alternatives",
        "rejected",
        "reasons",
        "blockers",
        "origin",
    }
    assert set(doc["origin"]) == {"text", "community", "digest", "digest_from", "digest_text", "evidence"}
    assert set(doc["wheel"]) == {"filename", "url", "sha256", "source", "version"}
    assert all(set(r) == {"filename", "reasons"} for r in doc["rejected"])
    assert all(set(w) == {"filename", "url", "sha256", "source", "version"} for w in doc["alternatives"])


# -- preference ---------------------------------------------------------------------------------------
def test_the_certain_abi_first_and_its_twin_as_alternative(index: WheelIndex) -> None:
    plan = make_plan(machine("a100"), "fa2", index)
    assert (
        plan.alternatives[0].filename
        == "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"
    )
    # pinned to the FALSE twin, the plan says how its label is read
    pinned = make_plan(machine("a100"), "fa2", index, version_spec="==2.8.3.post1")
    assert pinned.wheel is not None and "TRUE" in pinned.wheel.filename


def test_official_wins_over_a_community_build_with_a_closer_cuda(index: WheelIndex) -> None:
    # mjun0812 has 2.8.3+cu129torch2.9 (CUDA exact); the official 2.8.3 cu12 wheel still comes first.
    sel = select_wheels(machine("b200", torch="2.9.0+cu129"), "fa2", index, allow_community=True)
    assert sel.best is not None and sel.best.source == "official"
    assert any(e.filename == "flash_attn-2.8.3+cu129torch2.9-cp312-cp312-linux_x86_64.whl" for e in sel.fits)


def test_a_build_of_unreleased_code_ranks_after_a_build_of_a_release(index: WheelIndex) -> None:
    # wildminder's 2.8.4+d20260328 is a snapshot of flash-attention's main (its newest release is
    # 2.8.3.post1); mjun0812's 2.8.3 build for the same Windows torch 2.12 comes first, the snapshot is kept
    # as a fit and its caveat says why it is not first.
    snapshot = entry(
        index, "flash_attn-2.8.4+d20260328cu130torch2.12.0cxx11abiTRUE-cp313-cp313-win_amd64.whl"
    )
    assert str(snapshot.unreleased) == "2.8.3.post1"
    assert entry(index, "flash_attn-2.8.3+cu132torch2.12-cp313-cp313-win_amd64.whl").unreleased is None
    win = machine("rtx5090", python="3.13", platform="win_amd64", glibc=None, torch="2.12.0+cu132")
    sel = select_wheels(win, "fa2", index, allow_community=True)
    assert sel.best is not None and sel.best.version.public == "2.8.3" and sel.best.unreleased is None
    assert snapshot in sel.fits
    notes = " ".join(entry_notes(snapshot, "fa2", target_of(win)))
    assert "newer than its newest release (2.8.3.post1)" in notes


def test_what_counts_as_released_is_read_from_the_publishers_own_entries() -> None:
    from flashdoctor.decide.wheels.index import SourceInfo, newest_releases

    src = {
        "official": SourceInfo("official", "github", 0, False, None),
        "community:x": SourceInfo("community:x", "github", 5, True, None),
    }
    rows = [
        {
            "source": "official",
            "filename": "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
        },
        {
            "source": "official",
            "filename": "flash_attn-2.7.4+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
        },
        {"source": "community:x", "filename": "flash_attn-2.9.0-cp312-cp312-linux_x86_64.whl"},
        {"source": "official", "filename": "flash_attn_3-3.0.0-cp39-abi3-linux_x86_64.whl"},
    ]
    newest = newest_releases(rows, src)
    assert {k: str(v) for k, v in newest.items()} == {
        ("flash_attn", 2): "2.8.3.post1",
        ("flash_attn_3", 3): "3.0.0",
    }


def test_a_false_label_alone_serves_a_cxx11_torch(index: WheelIndex) -> None:
    # torch 2.6 + cu126 pip wheels use the CXX11 ABI (PyTorch PR #142064): the official FALSE-labelled
    # cu12torch2.6 wheels were built against them and are treated as CXX11-ABI builds.
    e = entry(index, "flash_attn-2.8.3.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl")
    assert e.abi is True and "abi" in e.inferred
    assert evaluate(e, target_of(machine("a100", torch="2.6.0+cu126"))) == ()
    old = machine("a100", torch="2.6.0+cu124", cxx11abi=False)
    assert evaluate(e, target_of(old)) == ("abi-mismatch",)


# -- every rejection reason ----------------------------------------------------------------------------
REASONS = [
    ("torch-mismatch", machine("a100"), "flash_attn-2.8.3.post1+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
     {}, "torch-mismatch: built for torch 2.7, this is torch 2.8 (it imports c10::cuda::SetDevice(signed char), "
     "which torch 2.8 no longer exports: measured)"),
    ("torch-mismatch stable ABI", machine("h100"), "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
     {"cuda": "12.8"}, "torch-mismatch: serves torch >=2.9 (LibTorch stable ABI), this is torch 2.8.0"),
    ("cuda-mismatch", machine("a100", python="3.10", torch="2.5.1+cu118", cxx11abi=False),
     "flash_attn-2.8.3.post1+cu12torch2.5cxx11abiFALSE-cp310-cp310-linux_x86_64.whl", {},
     "cuda-mismatch: built for CUDA 12, torch uses CUDA 11.8"),
    ("torch-build-mismatch", machine("a100", python="3.10", torch="2.3.0+cu121", cxx11abi=False, glibc="2.31"),
     "flash_attn-2.5.7+cu122torch2.3cxx11abiFALSE-cp310-cp310-linux_x86_64.whl", {},
     "torch-build-mismatch: built against torch 2.3.0.dev20240207, a nightly from before a change in torch "
     "2.3's exported symbols (c10::cuda::SetDevice(int) became SetDevice(DeviceIndex) on 2.3's main branch "
     "after the 2024-02-07 nightly; the 2.3.0 and 2.3.1 releases export only the new one): it imports "
     "_ZN3c104cuda9SetDeviceEi, which this torch 2.3.0+cu121 does not export"),
    ("torch-build-mismatch pre-release", machine("h100", python="3.10", torch="2.2.0a0+6a974be", torch_cuda="12.3"),
     "flash_attn-2.5.8+cu122torch2.2cxx11abiTRUE-cp310-cp310-linux_x86_64.whl", {},
     "torch-build-mismatch: built against torch 2.2.2; this torch (2.2.0a0+6a974be) is a pre-release build: a "
     "wheel fits it only if built against that very build (release wheels do not fit pre-release, nightly or "
     "vendor builds: build from source)"),
    ("torch-build-mismatch unrecorded", machine("gh200", platform="linux_aarch64", python="3.12",
     torch="2.10.0a0", torch_cuda="13.0", glibc="2.39"),
     "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_aarch64.whl", {},
     "torch-build-mismatch: built against a torch 2.10 whose build is not recorded; this torch (2.10.0a0) is "
     "a pre-release build: a wheel fits it only if built against that very build (release wheels do not "
     "fit pre-release, nightly or vendor builds: build from source)"),
    ("abi-mismatch", machine("a10", python="3.10", torch="2.4.1+cu121", cxx11abi=False, glibc="2.31"),
     "flash_attn-2.7.4.post1+cu12torch2.4cxx11abiTRUE-cp310-cp310-linux_x86_64.whl", {},
     "abi-mismatch: built for the CXX11 C++ ABI, torch uses the pre-CXX11 ABI"),
    ("abi-mismatch inferred", machine("a100", torch="2.7.1+cu128", cxx11abi=False),
     "flash_attn-2.8.3.post1+cu12torch2.7cxx11abiFALSE-cp312-cp312-linux_x86_64.whl", {},
     "abi-mismatch: built for the CXX11 C++ ABI (inferred from how it was built), torch uses the pre-CXX11 ABI"),
    ("python-mismatch", machine("a100"), "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl",
     {}, "python-mismatch: built for cp311-cp311, this is Python 3.12"),
    ("python-mismatch free-threaded abi3", machine("h100", python="3.13", python_abi="cp313t", torch="2.9.0+cu128"),
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", {"cuda": "12.8"},
     "python-mismatch: built for cp39-abi3, this is Python 3.13"),
    ("python-mismatch requires-python", machine("h100", python="3.9"), "flash_attn_4-4.0.0b36-py3-none-any.whl", {},
     "python-mismatch: requires Python >=3.10, this is Python 3.9"),
    ("platform-mismatch", machine("a100"), "flash_attn-2.8.3+cu128torch2.8.0cxx11abiFALSE-cp312-cp312-win_amd64.whl",
     {}, "platform-mismatch: built for win_amd64, this is linux_x86_64 (glibc 2.35)"),
    ("glibc-too-old runner", machine("a100", glibc="2.31"),
     "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", {},
     "glibc-too-old: needs glibc 2.35 (built on Ubuntu 22.04), this system has glibc 2.31"),
    ("glibc-too-old manylinux", machine("gh200", platform="linux_aarch64", glibc="2.31", torch="2.9.0+cu128"),
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_34_aarch64.whl", {"cuda": "12.8"},
     "glibc-too-old: needs glibc 2.34, this system has glibc 2.31"),
    ("gpu-code-missing", machine("rtx5090", torch="2.6.0+cu126", glibc="2.39"),
     "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", {},
     "gpu-code-missing: has no code for sm_120: carries sm_80, sm_90 (built with CUDA 12.4.1)"),
    ("gpu-code-missing fa3 on blackwell", machine("b200", torch="2.9.0+cu128"),
     "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", {"cuda": "12.8"},
     "gpu-code-missing: has no code for sm_100: carries sm_90a (built with CUDA 12.8)"),
    # A wheel's driver need is its own only where torch's CUDA runs on the driver (else the machine's blocker)
    ("driver-too-old fa4", machine("h100", torch="2.5.1+cu118", cxx11abi=False, driver="520.61.05"),
     "flash_attn_4-4.0.0b36-py3-none-any.whl", {},
     "driver-too-old: needs a driver for CUDA 12.0; this driver supports CUDA 11.8"),
    ("no-cuda-torch", machine("a100", torch="2.8.0+cpu"),
     "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", {},
     "no-cuda-torch: torch is a CPU-only build; this wheel needs a CUDA build of torch"),
    ("community", machine("a100"), "flash_attn-2.8.3+cu128torch2.8-cp312-cp312-linux_x86_64.whl", {},
     "community: community build (community:mjun0812); rerun with --allow-community to consider it"),
    ("yanked", machine("h100"), "flash_attn_4-0.0.1-py3-none-any.whl", {}, "yanked: yanked by its publisher"),
    # Transformer Engine's setup.py (2024) declared install_requires flash-attn>=2.0.6,<=2.5.8,!=2.0.9,!=2.1.0
    # (earlier releases <=2.4.2): a wheel above it would break the installed transformer-engine
    ("required-by-installed", machine("a100", dependents=[{"dist": "transformer-engine", "version": None,
     "requires": "flash-attn!=2.0.9,!=2.1.0,<=2.5.8,>=2.0.6"}]),
     "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", {},
     "required-by-installed: version 2.8.3.post1, but transformer-engine (installed) requires "
     "flash-attn!=2.0.9,!=2.1.0,<=2.5.8,>=2.0.6"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "filename", "which", "expected"), [r[1:] for r in REASONS], ids=[r[0] for r in REASONS]
)
def test_every_rejection_reason(
    index: WheelIndex, env: Environment, filename: str, which: dict[str, str], expected: str
) -> None:
    e = entry(index, filename, **which)
    t = target_of(env)
    codes = evaluate(e, t, allow_community=not expected.startswith("community"))
    assert [reason_text(c, e, t) for c in codes] == [expected]


def test_version_excluded(index: WheelIndex) -> None:
    e = entry(index, "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    t = target_of(machine("a100"))
    spec = parse_version_spec("<2.8")
    assert evaluate(e, t, spec) == ("version-excluded",)
    assert (
        reason_text("version-excluded", e, t, spec)
        == "version-excluded: version 2.8.3.post1 is outside --version <2.8"
    )


def test_every_code_is_tested() -> None:
    tested = {r[0].split()[0] for r in REASONS} | {"version-excluded"}
    assert tested == set(REJECTION_CODES)


def test_version_spec_parsing() -> None:
    assert str(parse_version_spec("2.8.3")) == "==2.8.3"
    assert str(parse_version_spec(">=2.7,<2.8")) == "<2.8,>=2.7"
    assert parse_version_spec(None) is None
    with pytest.raises(UsageError, match="not a version specifier"):
        parse_version_spec("two point eight")


def test_unknown_facts_do_not_reject_and_are_said(index: WheelIndex) -> None:
    env = environment_from_target({"python": "3.12", "platform": "linux_x86_64", "torch": "2.8.0+cu128",
                                   "cxx11abi": True, "gpus": [GPU["a100"]], "driver": "570.86.15"})  # fmt: skip
    plan = make_plan(env, "fa2", index)
    assert plan.wheel is not None
    assert (
        plan.wheel.filename == "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert "glibc unknown: assumed new enough for every wheel" in plan.reasons


def test_rejections_show_variety(index: WheelIndex) -> None:
    plan = make_plan(machine("a100"), "fa2", index)
    kinds: dict[tuple[str, ...], int] = {}
    for r in plan.rejected:
        key = tuple(x.split(":")[0] for x in r.reasons)
        kinds[key] = kinds.get(key, 0) + 1
    assert max(kinds.values()) <= 3
    assert len(plan.rejected) == 20


# -- a target spec without cxx11abi (issue 18 "Targets") ---------------------------------------------------
def test_a_spec_without_cxx11abi_gets_the_abi_of_its_torch(index: WheelIndex) -> None:
    """torch 2.6.0+cu124 is a pre-CXX11 build (PyTorch's builds switched at 2.7, and in 2.6 for CUDA
    12.6: PR #142064). Without 'cxx11abi' the selector used to leave the ABI unchecked and pick the
    newest wheel, a cxx11abiTRUE one that fails to import there."""
    from tests.support.targets import target_env

    env = target_env("torch26-cu124")
    plan = make_plan(env, "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert (
        plan.wheel.filename == "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"
    )
    assert any(r.startswith("cxx11abi inferred from the torch version") for r in plan.reasons)
    # every wheel that fits is a pre-CXX11 one
    assert all(e.abi is False for e in select_wheels(env, "fa2", index).fits)
    # the label-lies case stays right: 2.8.x "cxx11abiFALSE" wheels for torch 2.6 were built against a
    # CXX11 torch (inferred) and are refused here
    sel = select_wheels(env, "fa2", index)
    lying = [
        e
        for e, codes in sel.misses
        if e.filename.startswith("flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp312")
    ]
    assert lying and all("abi-mismatch" in codes for e, codes in sel.misses if e in lying)
    # a cu126 build of the same torch is CXX11
    cu126 = target_env("torch26-cu124", torch="2.6.0+cu126")
    best = select_wheels(cu126, "fa2", index).best
    assert best is not None and best.abi is True


def test_a_driver_too_old_for_torch_itself_blocks_the_machine_and_the_plan_still_names_the_wheel(
    index: WheelIndex,
) -> None:
    # check calls FA2/FA4 installable with the blocker driver-too-old (torch's CUDA 13 on a CUDA 12.9 driver);
    # the plan said "build" for FA2 (hours, and failing the same way) and "unsupported" for FA4
    env = machine("h100", torch="2.9.0+cu130", driver="575.57.08", glibc="2.39")
    e = entry(index, "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", tag="v2.8.3")
    assert not evaluate(e, target_of(env), allow_community=False)
    for variant in ("fa2", "fa4"):
        plan = make_plan(env, variant, index)
        assert plan.action == "wheel" and "driver-too-old" in plan.blockers, (variant, plan.reasons)


# -- a wheel of an earlier torch minor (data/torch_builds.json abi_across_minors) ------------------------
OFFICIAL_210 = "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"


@pytest.mark.parametrize("torch", ["2.11.0+cu130", "2.12.0+cu130", "2.12"])
def test_a_torch_210_wheel_serves_211_and_212_where_none_of_their_own_fits(
    index: WheelIndex, torch: str
) -> None:
    """Every torch symbol FA2's extension built against 2.10 imports is exported by 2.11 and 2.12 (measured):
    a torch 2.11 user was sent to a source build of hours although the official 2.10 wheel loads (a thread
    confirmed it on torch 2.11.0+cu130)."""
    plan = make_plan(machine("h100", torch=torch, glibc="2.39", nvcc="13.0"), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None and plan.wheel.filename == OFFICIAL_210
    assert any("an earlier minor than this torch" in r and "measured" in r for r in plan.reasons), (
        plan.reasons
    )


def test_a_wheel_of_the_torchs_own_minor_comes_before_one_of_an_earlier_minor(index: WheelIndex) -> None:
    env = machine("h100", torch="2.11.0+cu130", glibc="2.39", nvcc="13.0")
    plan = make_plan(env, "fa2", index, allow_community=True)
    assert plan.wheel is not None and "torch2.11" in plan.wheel.filename, plan.wheel


def test_a_break_between_minors_is_named_in_the_rejection(index: WheelIndex) -> None:
    t = target_of(machine("h100", torch="2.13.0+cu130", glibc="2.39", nvcc="13.0"))
    e = entry(index, OFFICIAL_210)
    assert evaluate(e, t) == ("torch-mismatch",)
    assert "materialize_cow_storage" in reason_text("torch-mismatch", e, t)
    t = target_of(machine("h100", torch="2.10.0+cu130", glibc="2.39", nvcc="13.0"))
    e = entry(index, "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", tag="v2.8.3")
    assert evaluate(e, t) == ("torch-mismatch",)  # 2.9's c10_cuda_check_implementation is gone from 2.10
    assert "c10_cuda_check_implementation" in reason_text("torch-mismatch", e, t)
    # measured for FA2's sources: an FA3 wheel labelled with a torch is not said to miss FA2's symbol
    fa3 = next(e for e in index.entries if e.name.variant == "fa3" and e.name.torch == (2, 9))
    assert "measured" not in reason_text("torch-mismatch", fa3, t), reason_text("torch-mismatch", fa3, t)


@pytest.mark.parametrize("torch", ["2.11.0.dev20260110+cu130", "2.11.0a0+abcdef0"])
def test_a_nightly_or_vendor_torch_of_a_later_minor_gets_no_earlier_minors_wheel(
    index: WheelIndex, torch: str
) -> None:
    """The measurement is of releases: a nightly or vendor torch is its own cell as ever."""
    t = target_of(machine("h100", torch=torch, glibc="2.39", nvcc="13.0"))
    assert evaluate(entry(index, OFFICIAL_210), t) == ("torch-mismatch",)


def test_only_a_wheel_built_against_a_release_of_its_minor_crosses(index: WheelIndex) -> None:
    from dataclasses import replace

    t = target_of(machine("h100", torch="2.11.0+cu130", glibc="2.39", nvcc="13.0"))
    e = entry(index, OFFICIAL_210)
    assert evaluate(replace(e, torch_build="2.10.0"), t) == ()
    assert evaluate(replace(e, torch_build="2.10.0.dev20251001"), t) == ("torch-mismatch",)


def test_the_coverage_grid_counts_a_measured_earlier_minors_wheel(index: WheelIndex) -> None:
    """`wheels --coverage` looked only at wheels named for the cell's own minor, and said torch 2.11 / CUDA 13 /
    cp312 on Linux had no official wheel while install picked one there."""
    from flashdoctor.decide.wheels.coverage import coverage

    cell = next(
        c for c in coverage(index)["linux_x86_64"] if (c.torch, c.cuda, c.python) == ("2.11", "13.0", "3.12")
    )
    assert cell.official and cell.official[0] == OFFICIAL_210, cell


def test_an_earlier_minors_wheel_crosses_only_where_it_was_measured(index: WheelIndex) -> None:
    """Measured on PyTorch's Linux x86_64 wheels: a Windows or aarch64 torch of a later minor gets no
    earlier minor's wheel; an entry whose build torch is unrecorded, or a release not measured, crosses with
    its plan saying so."""
    from flashdoctor.decide.wheels.torchbuild import OTHER_MINOR, fit_class, torch_build

    t = torch_build("2.12.0")
    assert fit_class("fa2", (2, 10), None, (2, 12), t, "linux_x86_64") == OTHER_MINOR
    for platform in ("windows_amd64", "linux_aarch64", None):
        assert fit_class("fa2", (2, 10), None, (2, 12), t, platform) is None, platform
    plan = make_plan(machine("h100", torch="2.12.0+cu126", glibc="2.39", nvcc="12.6"), "fa2", index)
    assert plan.wheel is not None and "torch2.10" in plan.wheel.filename
    note = next(r for r in plan.reasons if "an earlier minor" in r)
    assert "should load" in note and "not recorded" in note, note
