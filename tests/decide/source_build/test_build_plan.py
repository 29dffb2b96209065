"""The pure build decisions: option parsing, profile labels, arch mapping, kernel units, MAX_JOBS."""

from __future__ import annotations

import pytest

from flashdoctor.decide.source_build.plan import (
    BuildRequest,
    fa2_layout,
    fa3_units_estimate,
    make_plan,
    map_arch,
    parse_unit,
    plan_jobs,
)
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.profiles import (
    Profile,
    head_dim_buckets,
    parse_archs,
    parse_dtypes,
    parse_head_dims,
    parse_label,
)
from tests.support.targets import target_env


# -- option parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("80,90", (80, 90)),
        ("9.0", (90,)),
        ("sm_90a; sm_120", (90, 120)),
        ("86 89 86", (86, 89)),
        ("compute_100f", (100,)),
    ],
)
def test_parse_archs(text: str, want: tuple[int, ...]) -> None:
    assert parse_archs(text) == want


@pytest.mark.parametrize("bad", ["", "hopper", "9", "1000", "sm_", "8.x"])
def test_parse_archs_rejects_junk_with_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="--arch"):
        parse_archs(bad)


def test_parse_head_dims_and_dtypes() -> None:
    assert parse_head_dims("128,64,64") == (64, 128)
    assert parse_dtypes("bfloat16") == ("bf16",)
    assert parse_dtypes("bf16,half") == ("fp16", "bf16")
    for bad in ("0", "300", "abc"):
        with pytest.raises(UsageError, match="--head-dims"):
            parse_head_dims(bad)
    with pytest.raises(UsageError, match="--dtypes"):
        parse_dtypes("fp8")


def test_head_dims_map_to_the_kernel_that_serves_them() -> None:
    dims = (32, 64, 96, 128, 192, 256)
    assert head_dim_buckets([80, 128], dims) == (96, 128)
    assert head_dim_buckets([1], dims) == (32,)
    with pytest.raises(UsageError):
        head_dim_buckets([257], dims)


def test_label_round_trip() -> None:
    p = Profile("fa2", (80, 90), (64, 128), ("bf16",))
    assert p.label() == "fd.sm80.sm90.hd64.hd128.bf16"
    info = parse_label(p.label())
    assert info is not None
    assert (info.archs, info.head_dims, info.dtypes, info.disabled) == ((80, 90), (64, 128), ("bf16",), ())
    fa3 = Profile("fa3", (90,), None, None, ("backward", "fp8"))
    assert fa3.label() == "fd.sm90.nobackward.nofp8"
    assert parse_label(fa3.label()).disabled == ("backward", "fp8")  # type: ignore[union-attr]
    assert parse_label("cu12torch2.8cxx11abitrue") is None
    assert parse_label("fd.sm90.weird") is None


# -- architectures -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sm", "build", "native_note"),
    [
        (80, 80, "native"),
        (86, 80, "sm_80 SASS runs natively on sm_86"),
        (87, 80, "sm_80 SASS runs natively on sm_87"),
        (89, 80, "sm_80 SASS runs natively on sm_89"),
        (90, 90, "native"),
        (100, 100, "native"),
        (103, 100, "sm_100 SASS runs natively on sm_103"),
        (120, 120, "native"),
        (121, 120, "sm_120 SASS runs natively on sm_121"),
    ],
)
def test_fa2_arch_mapping(sm: int, build: int, native_note: str) -> None:
    t = map_arch("fa2", sm, "13.0", f"--arch {sm}")
    assert (t.build_arch, t.runs) == (build, "native")
    assert native_note in t.note


@pytest.mark.parametrize(("sm", "why"), [(75, "needs sm80"), (70, "needs sm80"), (130, "no PTX")])
def test_fa2_arch_without_code_explains_there_is_no_ptx_to_jit(sm: int, why: str) -> None:
    t = map_arch("fa2", sm, "13.0", "x")
    assert t.build_arch is None and t.runs == "no"
    assert why in t.note and "JIT" in t.note


def test_jetson_thor_is_compiled_by_torchs_cpp_extension() -> None:
    # FA2's setup.py has no switch for sm_110; torch compiles it when setup.py passes no -gencode
    t = map_arch("fa2", 110, "13.0", "GPU 0", "2.9.1")
    assert (t.build_arch, t.runs) == (110, "native") and "cpp_extension" in t.note
    # nvcc 12.9 calls Thor sm_101; torch 2.8's cpp_extension does not know 11.0
    old_nvcc = map_arch("fa2", 110, "12.9", "GPU 0", "2.9.1")
    assert old_nvcc.build_arch is None and "nvcc ≥ 13.0" in old_nvcc.note
    old_torch = map_arch("fa2", 110, "13.0", "GPU 0", "2.8.0+cu129")
    assert old_torch.build_arch is None and "torch ≥ 2.9" in old_torch.note


def test_a_thor_build_names_no_arch_setup_py_knows_and_lets_torch_compile_them_all() -> None:
    plan = make_plan(target_env("jetson-thor"), BuildRequest(), "2.8.3.post2")
    assert plan.profile.archs == (110,)
    assert (plan.env["FLASH_ATTN_CUDA_ARCHS"], plan.env["TORCH_CUDA_ARCH_LIST"]) == ("110", "11.0")
    # with an arch setup.py knows beside it, setup.py must still pass no -gencode: torch compiles both
    both = make_plan(target_env("h100"), BuildRequest(archs=(90, 110)), "2.8.3.post2")
    assert (both.env["FLASH_ATTN_CUDA_ARCHS"], both.env["TORCH_CUDA_ARCH_LIST"]) == ("110", "9.0;11.0")
    assert any("cpp_extension compiles TORCH_CUDA_ARCH_LIST=9.0;11.0" in n for n in both.notes)
    # before FLASH_ATTN_CUDA_ARCHS (2.7.3) setup.py always passes sm_80 code, so torch adds nothing
    with pytest.raises(UsageError, match="predates FLASH_ATTN_CUDA_ARCHS"):
        make_plan(target_env("jetson-thor"), BuildRequest(), "2.7.2")


def test_torch_compiles_the_arch_list_only_when_the_extension_names_no_arch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mechanism the Thor build relies on, in the installed torch itself: with no arch among the
    extension's nvcc flags (FA2's setup.py given FLASH_ATTN_CUDA_ARCHS=110) torch adds TORCH_CUDA_ARCH_LIST's."""
    from torch.utils.cpp_extension import _get_cuda_arch_flags

    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0;11.0")
    fa2_flags = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "--use_fast_math", "--threads", "4"]
    assert set(_get_cuda_arch_flags(fa2_flags)) == {
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_110,code=sm_110",
    }
    assert _get_cuda_arch_flags([*fa2_flags, "-gencode", "arch=compute_80,code=sm_80"]) == []


def test_blackwell_needs_nvcc_12_8() -> None:
    t = map_arch("fa2", 100, "12.4", "GPU 0")
    assert t.build_arch is None and "12.8" in t.note


def test_fa3_arch_mapping() -> None:
    assert map_arch("fa3", 90, "12.8", "x").note.startswith("sm_90a")
    assert map_arch("fa3", 86, "12.8", "x").build_arch == 80
    assert map_arch("fa3", 100, "12.8", "x").build_arch is None


def test_archs_come_from_the_gpus_present() -> None:
    assert make_plan(target_env("rtx4090"), BuildRequest(), "2.8.3.post2").profile.archs == (80,)
    assert make_plan(target_env("b200"), BuildRequest(), "2.8.3.post2").profile.archs == (100,)
    a100 = make_plan(target_env("a100"), BuildRequest(), "2.8.3.post2")
    assert a100.profile.archs == (80,) and len(a100.targets) == 1  # 8 identical GPUs, one target
    orin = make_plan(target_env("jetson-orin"), BuildRequest(), "2.8.3.post2")
    assert orin.profile.archs == (80,) and "sm_87" in orin.targets[0].note


def test_an_unbuildable_arch_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="sm_75"):
        make_plan(target_env("t4"), BuildRequest(), "2.8.3.post2")
    with pytest.raises(UsageError, match="sm_110"):  # Thor's name before nvcc 13.0 is sm_101
        make_plan(target_env("h100", nvcc="12.9"), BuildRequest(archs=(90, 110)), "2.8.3.post2")


def test_no_gpu_and_no_arch_builds_upstreams_default_archs() -> None:
    plan = make_plan(target_env("cpu-box"), BuildRequest(), "2.8.3.post2")
    assert plan.profile.archs == (80, 90, 100, 120)
    assert plan.env["FLASH_ATTN_CUDA_ARCHS"] == "80;90;100;120"


# -- kernel units ----------------------------------------------------------------------------------------
def test_unit_counts_minimal_vs_arch_only_vs_default() -> None:
    plan = make_plan(
        target_env("h100"), BuildRequest(archs=(90,), head_dims=(128,), dtypes=("bf16",)), "2.8.3.post2"
    )
    assert plan.units == (
        "csrc/flash_attn/src/flash_fwd_hdim128_bf16_sm80.cu",
        "csrc/flash_attn/src/flash_fwd_hdim128_bf16_causal_sm80.cu",
        "csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.cu",
        "csrc/flash_attn/src/flash_bwd_hdim128_bf16_causal_sm80.cu",
        "csrc/flash_attn/src/flash_fwd_split_hdim128_bf16_sm80.cu",
        "csrc/flash_attn/src/flash_fwd_split_hdim128_bf16_causal_sm80.cu",
    )
    assert (plan.unit_count, plan.arch_only_unit_count, plan.default_unit_count) == (6, 72, 288)
    assert plan.reduction >= 20
    assert plan.edges == 7  # + flash_api.cpp
    assert plan.label == "fd.sm90.hd128.bf16"
    assert plan.env["FLASH_ATTN_LOCAL_VERSION"] == "fd.sm90.hd128.bf16"
    assert plan.env["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    assert plan.env["FLASH_ATTN_CUDA_ARCHS"] == "90"
    assert plan.edit_sources


def test_layouts_of_known_versions() -> None:
    l27 = fa2_layout("2.7.4.post1")
    l28 = fa2_layout("2.8.3.post2")
    assert l27 is not None and l28 is not None
    assert len(l27.units()) == 84 and 160 in l27.head_dims
    assert len(l28.units()) == 72
    assert fa2_layout("2.6.3") is None and fa2_layout("2.9.0") is None
    assert parse_unit("csrc/flash_attn/src/flash_fwd_split_hdim64_fp16_causal_sm80.cu") == (
        "fwd_split",
        64,
        "fp16",
        True,
    )
    assert parse_unit("csrc/flash_attn/flash_api.cpp") is None


def test_a_whole_set_of_head_dims_or_dtypes_is_no_narrowing() -> None:
    plan = make_plan(
        target_env("h100"),
        BuildRequest(head_dims=(32, 64, 96, 128, 192, 256), dtypes=("fp16", "bf16")),
        "2.8.3.post2",
    )
    assert plan.profile.head_dims is None and plan.profile.dtypes is None
    assert plan.unit_count == 72 and plan.label == "fd.sm90"


def test_head_dim_80_is_served_by_the_96_kernel_and_says_so() -> None:
    plan = make_plan(target_env("h100"), BuildRequest(head_dims=(80,)), "2.8.3.post2")
    assert plan.profile.head_dims == (96,)
    assert any("80" in n and "96" in n for n in plan.notes)


def test_unknown_versions_are_refused_for_narrowed_builds_but_build_whole() -> None:
    with pytest.raises(UsageError, match="does not know this version") as exc:
        make_plan(target_env("h100"), BuildRequest(head_dims=(128,)), "2.6.3")
    assert exc.value.hint and "2.8.3.post2" in exc.value.hint
    whole = make_plan(target_env("h100"), BuildRequest(), "2.6.3")
    assert not whole.edit_sources and whole.units == () and whole.units_from == "unknown"
    assert any("FLASH_ATTN_CUDA_ARCHS" in n for n in whole.notes)


def test_fa3_switches_and_offline_build() -> None:
    plan = make_plan(
        target_env("h100"),
        BuildRequest(variant="fa3", head_dims=(128,), dtypes=("bf16",), disable=("backward", "fp8")),
        "3.0.0",
    )
    env = plan.env
    assert env["FLASH_ATTENTION_OFFLINE_BUILD"] == "1"
    for sw in ("BACKWARD", "FP8", "FP16", "HDIM64", "HDIM96", "HDIM192", "HDIM256", "SM80"):
        assert env[f"FLASH_ATTENTION_DISABLE_{sw}"] == "TRUE"
    # No checkout read: the units the profile never calls are switched off too, the count is an estimate.
    assert env["FLASH_ATTENTION_DISABLE_HDIMDIFF64"] == env["FLASH_ATTENTION_DISABLE_HDIMDIFF192"] == "TRUE"
    assert "FLASH_ATTENTION_DISABLE_HDIM128" not in env
    assert plan.label == "fd.sm90.hd128.bf16.nobackward.nofp8"
    assert plan.units_from == "estimate" and plan.units == ()
    assert any("the unit count is an estimate" in n for n in plan.notes)
    assert plan.unit_count < plan.default_unit_count == 293
    assert fa3_units_estimate((), (64, 96, 128, 192, 256), ("fp16", "bf16"), True) == 293
    with pytest.raises(UsageError, match="FA3 switches"):
        make_plan(target_env("h100"), BuildRequest(disable=("backward",)), "2.8.3.post2")


# -- MAX_JOBS ---------------------------------------------------------------------------------------------
def test_jobs_limited_by_units() -> None:
    j = plan_jobs(7, 1, 16, 120.0, 9.0)
    assert (j.max_jobs, j.nvcc_threads) == (7, 1)
    assert "7 unit(s)" in j.reasons[-1]


def test_jobs_limited_by_memory() -> None:
    j = plan_jobs(73, 1, 64, 40.0, 9.0)
    assert j.max_jobs == 4  # 40 // 9
    assert "40 GB available / ~9 GB per job" in j.reasons[-1]


def test_jobs_limited_by_cores_and_threads() -> None:
    j = plan_jobs(73, 4, 16, 500.0, 9.0)
    assert (j.max_jobs, j.nvcc_threads) == (4, 4)  # 16 cores / 4 threads
    j = plan_jobs(73, 2, 16, 500.0, 9.0)
    assert (j.max_jobs, j.nvcc_threads) == (8, 2)


def test_jobs_never_zero_and_warn_on_tiny_memory() -> None:
    j = plan_jobs(73, 1, 2, 4.0, 9.0)
    assert j.max_jobs == 1
    assert any("OOM" in r for r in j.reasons)
    assert plan_jobs(73, 1, None, None, 9.0).max_jobs == 2


def test_jobs_overrides_win_and_warn() -> None:
    j = plan_jobs(7, 1, 16, 30.0, 9.0, max_jobs=7, nvcc_threads=2)
    assert (j.max_jobs, j.nvcc_threads) == (7, 2)
    assert any("may exceed" in r for r in j.reasons)


def test_plan_uses_the_environment_resources() -> None:
    box = target_env("cpu-box")  # 2 cpus, 23 GB
    plan = make_plan(box, BuildRequest(archs=(90,), head_dims=(128,), dtypes=("bf16",)), "2.8.3.post2")
    assert plan.jobs.max_jobs == 2 and plan.env["MAX_JOBS"] == "2"
    plan = make_plan(box, BuildRequest(archs=(90,), max_jobs=1, nvcc_threads=3), "2.8.3.post2")
    assert (plan.env["MAX_JOBS"], plan.env["NVCC_THREADS"]) == ("1", "3")
