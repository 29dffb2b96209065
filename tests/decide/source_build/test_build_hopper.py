"""hopper/setup.py read from its text: the download condition as a version range, the switches, the source
list evaluated for a plan's switches; the FA3 plan and preflight built on those facts. Synthetic texts of
several revisions (tests/support/hopper_setups.py) plus the real file of upstream main when carried."""

from __future__ import annotations

import pytest

from flashdoctor.decide.source_build.hopper import SourceList, fa3_setup_facts
from flashdoctor.decide.source_build.plan import BuildRequest, fa3_units_estimate, make_plan
from flashdoctor.decide.source_build.preflight import blocking, preflight
from flashdoctor.model.findings import Status
from tests.support import hopper_setups as S
from tests.support.targets import target_env

# The case measured on the H100 (issue 16): head dim 128, bf16, every --no-* switch.
MEASURED = BuildRequest(
    variant="fa3",
    head_dims=(128,),
    dtypes=("bf16",),
    disable=("split", "paged-kv", "append-kv", "local", "softcap", "pack-gqa", "fp8", "cluster"),
)
FOUR = (
    "flash_api_stable.cpp",
    "instantiations/flash_fwd_hdim128_bf16_sm90.cu",
    "instantiations/flash_bwd_hdim128_bf16_sm90.cu",
    "flash_prepare_scheduler.cu",
)
DIFF_UNITS = (
    "instantiations/flash_fwd_hdim64_256_bf16_sm90.cu",
    "instantiations/flash_fwd_hdim64_512_bf16_sm90.cu",
    "instantiations/flash_fwd_hdim192_128_bf16_sm90.cu",
)


def _switches(*names: str) -> dict[str, str]:
    return {"BUILD_TARGET": "cuda", **{f"FLASH_ATTENTION_DISABLE_{n}": "TRUE" for n in names}}


MEASURED_SWITCHES = (
    "SPLIT", "PAGEDKV", "APPENDKV", "LOCAL", "SOFTCAP", "PACKGQA", "FP8", "CLUSTER", "FP16",
    "HDIM64", "HDIM96", "HDIM192", "HDIM256", "SM80",
)  # fmt: skip


# -- the facts --------------------------------------------------------------------------------------------
def test_main_downloads_only_between_12_3_and_13_except_12_8() -> None:
    f = fa3_setup_facts(S.MAIN)
    assert f.download_when == ">=12.3,<13.0,!=12.8" and f.download_problem is None
    assert f.offline_switch and f.toolchain == ("nvcc 12.6.85", "ptxas 12.8.93")
    assert (f.nvcc_min, f.cccl_from) == ("12.3", "13.0")
    assert [f.downloads_for(v) for v in ("12.2", "12.4", "12.6.85", "12.8", "12.9", "13.0", "13.1")] == [
        False, True, True, False, True, False, False,
    ]  # fmt: skip
    assert f.downloads_for(None) is None
    assert {"FLASH_ATTENTION_DISABLE_HDIMDIFF64", "FLASH_ATTENTION_DISABLE_HDIMDIFF192"} <= f.switches
    assert {"FLASH_ATTENTION_DISABLE_SM80", "FLASH_ATTENTION_DISABLE_HDIM128"} <= f.switches
    assert f.source_problem is None


def test_older_downloads_for_every_nvcc_but_12_8() -> None:
    f = fa3_setup_facts(S.OLDER)
    assert f.download_when == ">=12.3,!=12.8"  # it raises below 12.3 before the download
    assert f.downloads_for("13.0") is True and f.downloads_for("12.8") is False
    assert f.cccl_from is None and f.toolchain_download
    assert not any("HDIMDIFF" in s for s in f.switches)


def test_a_setup_without_downloads_never_downloads() -> None:
    text = S.MAIN.replace('        download_and_copy("nvcc", NVIDIA_TOOLCHAIN_VERSION["nvcc"])\n', "")
    text = text.replace(
        '        download_and_copy("ptxas", NVIDIA_TOOLCHAIN_VERSION["ptxas"])\n', "        pass\n"
    )
    f = fa3_setup_facts(text)
    assert f.download_when == "" and not f.toolchain_download and f.downloads_for("12.4") is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (S.DOWNLOAD_IN_FUNCTION, "from a function"),
        (
            S.MAIN.replace('!= Version("12.8")', '!= Version("12.8") or not USE_SYSTEM'),
            "not one flashdoctor reads",
        ),
        (
            "import os\n" + 'URL = "https://developer.download.nvidia.com/compute/cuda/redist/x.tar.xz"\n',
            "NVIDIA",
        ),
    ],
)
def test_a_download_condition_not_read_is_said_so(text: str, problem: str) -> None:
    f = fa3_setup_facts(text)
    assert f.download_when is None and problem in (f.download_problem or "")
    assert f.downloads_for("13.0") is None and f.toolchain_download


def test_text_that_does_not_parse() -> None:
    f = fa3_setup_facts("def broken(:\n    FLASH_ATTENTION_DISABLE_SM80 FLASH_ATTENTION_OFFLINE_BUILD\n")
    assert f.download_when is None and "does not parse" in (f.download_problem or "")
    assert f.switches == {"FLASH_ATTENTION_DISABLE_SM80"} and f.offline_switch
    assert isinstance(f.source_list({}, "2.11", "13.0"), str)


# -- the source list --------------------------------------------------------------------------------------
def test_main_source_list_for_the_measured_case() -> None:
    f = fa3_setup_facts(S.MAIN)
    seven = f.source_list(_switches(*MEASURED_SWITCHES), "2.11.0+cu130", "13.0")
    assert isinstance(seven, SourceList) and len(seven.units) == 7  # what ninja ran on the H100
    assert set(DIFF_UNITS) <= set(seven.units)
    four = f.source_list(_switches(*MEASURED_SWITCHES, "HDIMDIFF64", "HDIMDIFF192"), "2.11.0+cu130", "13.0")
    assert isinstance(four, SourceList) and four.units == FOUR and four.extensions == 1
    old_torch = f.source_list(_switches(*MEASURED_SWITCHES, "HDIMDIFF64", "HDIMDIFF192"), "2.8.0", "12.8")
    assert isinstance(old_torch, SourceList) and old_torch.units[0] == "flash_api.cpp"
    no_torch = f.source_list(_switches(*MEASURED_SWITCHES, "HDIMDIFF64", "HDIMDIFF192"), None, "13.0")
    assert isinstance(no_torch, SourceList) and no_torch.units[0] == "?" and no_torch.unknown_names == 1
    full = f.source_list(_switches(), "2.11.0+cu130", "13.0")
    assert isinstance(full, SourceList) and len(full.units) == 293
    stops = f.source_list(_switches(), "2.11.0", "12.1")
    assert isinstance(stops, str) and "stops at line" in stops


def test_unreadable_source_list_is_a_reason_not_a_guess() -> None:
    f = fa3_setup_facts(S.GLOB)
    listed = f.source_list(_switches(*MEASURED_SWITCHES), "2.11.0", "13.0")
    assert isinstance(listed, str) and "sources=" in listed
    assert "CUDAExtension" in (fa3_setup_facts("import os\n").source_problem or "")
    # A SKIP switch read through the file's own function: whether the extension is built is not known.
    hidden = S.MAIN.replace(
        'SKIP_CUDA_BUILD = os.getenv("FLASH_ATTENTION_SKIP_CUDA_BUILD", "FALSE") == "TRUE"',
        'SKIP_CUDA_BUILD = flag("FLASH_ATTENTION_SKIP_CUDA_BUILD")',
    )
    assert "reached" in str(fa3_setup_facts(hidden).source_list(_switches(), "2.11", "13.0"))


@pytest.mark.parametrize(
    ("head_dims", "dtypes", "disabled", "sm80", "diffs"),
    [
        ((64, 96, 128, 192, 256), ("fp16", "bf16"), (), True, (64, 192)),
        ((128,), ("bf16",), ("split", "paged-kv", "softcap", "pack-gqa", "fp8"), False, ()),
        ((128,), ("bf16",), ("split", "paged-kv", "softcap", "pack-gqa", "fp8"), False, (64, 192)),
        ((64, 128), ("fp16", "bf16"), ("backward",), False, (64,)),
        ((192, 256), ("bf16",), ("split",), True, (192,)),
    ],
)
def test_the_estimate_follows_mains_source_list(
    head_dims: tuple[int, ...],
    dtypes: tuple[str, ...],
    disabled: tuple[str, ...],
    sm80: bool,
    diffs: tuple[int, ...],
) -> None:
    names = {"split": "SPLIT", "paged-kv": "PAGEDKV", "softcap": "SOFTCAP", "pack-gqa": "PACKGQA"}
    names |= {"fp8": "FP8", "backward": "BACKWARD"}
    sw = [names[d] for d in disabled] + [f"HDIM{h}" for h in (64, 96, 128, 192, 256) if h not in head_dims]
    sw += [] if "fp16" in dtypes else ["FP16"]
    sw += [] if sm80 else ["SM80"]
    sw += [f"HDIMDIFF{h}" for h in (64, 192) if h not in diffs]
    for text in filter(None, (S.MAIN, S.real_setup_text())):
        listed = fa3_setup_facts(text).source_list(_switches(*sw), "2.11.0", "13.0")
        assert isinstance(listed, SourceList)
        assert len(listed.units) == fa3_units_estimate(disabled, head_dims, dtypes, sm80, diffs)


# -- the plan and preflight ---------------------------------------------------------------------------------
def test_plan_of_the_measured_case_reads_main() -> None:
    env = target_env("h100")  # torch 2.11.0+cu130, nvcc 13.0, 16 cores
    facts = fa3_setup_facts(S.MAIN)
    plan = make_plan(env, MEASURED, "3.0.0", facts)
    assert plan.units == FOUR and plan.unit_count == plan.edges == 4 and plan.units_from == "checkout"
    for sw in ("HDIMDIFF64", "HDIMDIFF192", "SM80", "FP16", "HDIM64", "HDIM256", "SPLIT", "FP8"):
        assert plan.env[f"FLASH_ATTENTION_DISABLE_{sw}"] == "TRUE"
    assert (
        "FLASH_ATTENTION_DISABLE_HDIM128" not in plan.env
        and "FLASH_ATTENTION_DISABLE_BACKWARD" not in plan.env
    )
    assert plan.default_unit_count == 293 and plan.arch_only_unit_count == 293 - 60  # no sm80 units
    assert plan.jobs.max_jobs == 4
    assert plan.env["MAX_JOBS"] == "4" and plan.env["FLASH_ATTENTION_OFFLINE_BUILD"] == "1"
    assert not any("2.8.3" in n or "estimate" in n for n in plan.notes)
    assert any("nvcc 13.0 is used as is" in n and ">=12.3,<13.0,!=12.8" in n for n in plan.notes)
    assert any("include/cccl" in n for n in plan.notes)
    assert plan.to_json()["fa3_setup"]["download_when"] == ">=12.3,<13.0,!=12.8"
    found = preflight(env, plan, None, facts)
    assert blocking(found) == ()
    assert not any(f.code.startswith("fa3-") for f in found)


def test_head_dims_64_and_192_keep_their_diff_units() -> None:
    facts = fa3_setup_facts(S.MAIN)
    req = BuildRequest(variant="fa3", head_dims=(64,), dtypes=("bf16",), disable=MEASURED.disable)
    plan = make_plan(target_env("h100"), req, "3.0.0", facts)
    assert "FLASH_ATTENTION_DISABLE_HDIMDIFF64" not in plan.env
    assert plan.env["FLASH_ATTENTION_DISABLE_HDIMDIFF192"] == "TRUE"
    assert set(DIFF_UNITS[:2]) <= set(plan.units) and DIFF_UNITS[2] not in plan.units
    whole = make_plan(target_env("h100"), BuildRequest(variant="fa3"), "3.0.0", facts)
    assert not any("HDIMDIFF" in k for k in whole.env)  # every head dim: upstream's units


def test_plan_with_the_older_setup_is_blocked_on_nvcc_13() -> None:
    env = target_env("h100")
    facts = fa3_setup_facts(S.OLDER)
    plan = make_plan(env, MEASURED, "3.0.0", facts)
    assert not any("HDIMDIFF" in k for k in plan.env)  # it does not read them: not set
    assert plan.units == (
        "flash_api.cpp",
        "instantiations/flash_fwd_hdimall_bf16_sm90.cu",
        "instantiations/flash_fwd_hdimdiff_bf16_sm90.cu",
        "instantiations/flash_bwd_hdim128_bf16_sm90.cu",
        "flash_prepare_scheduler.cu",
    )
    found = preflight(env, plan, None, facts)
    assert [f.code for f in blocking(found)] == ["fa3-toolchain-download"]
    assert ">=12.3,!=12.8" in blocking(found)[0].message
    at_128 = target_env("h100", nvcc="12.8", torch="2.8.0+cu128", torch_cuda="12.8")
    assert blocking(preflight(at_128, make_plan(at_128, MEASURED, "3.0.0", facts), None, facts)) == ()


def test_plan_with_a_setup_without_hdimdiff_switches() -> None:
    env = target_env("h100")
    facts = fa3_setup_facts(S.NO_HDIMDIFF)
    plan = make_plan(env, MEASURED, "3.0.0", facts)
    assert plan.units == FOUR and not any("HDIMDIFF" in k for k in plan.env)
    assert blocking(preflight(env, plan, None, facts)) == ()


def test_plan_with_an_unreadable_setup_says_the_count_is_an_estimate() -> None:
    env = target_env("h100")
    plan = make_plan(env, MEASURED, "3.0.0", fa3_setup_facts(S.GLOB))
    assert plan.units_from == "estimate" and plan.units == () and plan.unit_count == 4
    note = next(n for n in plan.notes if "estimate" in n)
    assert note.startswith("cannot read this revision's source list") and "sources=" in note
    none = make_plan(env, MEASURED, "3.0.0")
    assert any(n.startswith("no checkout was read") for n in none.notes)


def test_warn_not_block_when_the_condition_is_not_read() -> None:
    env = target_env("h100")
    facts = fa3_setup_facts(S.DOWNLOAD_IN_FUNCTION)
    found = preflight(env, make_plan(env, MEASURED, "3.0.0", facts), None, facts)
    warn = [f for f in found if f.code == "fa3-toolchain-download"]
    assert [f.status for f in warn] == [Status.WARN] and blocking(found) == ()


# -- the real file of upstream main (carried; skipped when absent) ------------------------------------
REAL = S.real_setup_text()


@pytest.mark.skipif(REAL is None, reason="no FA3 checkout carried (.carry/ or $FLASHDOCTOR_FA3_SOURCE)")
def test_the_real_main_setup_py() -> None:
    assert REAL is not None
    f = fa3_setup_facts(REAL)
    assert f.download_when == ">=12.3,<13.0,!=12.8" and f.offline_switch and f.cccl_from == "13.0"
    assert f.downloads_for("13.0") is False and f.downloads_for("12.6") is True
    assert {"FLASH_ATTENTION_DISABLE_HDIMDIFF64", "FLASH_ATTENTION_DISABLE_HDIMDIFF192"} <= f.switches
    env = target_env("h100")
    plan = make_plan(env, MEASURED, "3.0.0", f)
    assert plan.units == FOUR and plan.default_unit_count == 293
    assert blocking(preflight(env, plan, None, f)) == ()
    seven = f.source_list(_switches(*MEASURED_SWITCHES), "2.11.0+cu130", "13.0")
    assert isinstance(seven, SourceList) and len(seven.units) == 7 and set(DIFF_UNITS) <= set(seven.units)
