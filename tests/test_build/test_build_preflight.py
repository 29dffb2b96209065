"""Preflight through target specs: every reason a build would fail is a finding with a fix."""

from __future__ import annotations

from flashdoctor.decide.checks import CODES
from flashdoctor.decide.source_build.hopper import Fa3SetupFacts
from flashdoctor.decide.source_build.plan import BuildRequest, make_plan
from flashdoctor.decide.source_build.preflight import BUILD_CODES, blocking, fa3_preflight, preflight
from flashdoctor.model.findings import Status
from flashdoctor.model.tools import BuildTools
from tests.conftest import target_env

MINIMAL = BuildRequest(archs=(90,), head_dims=(128,), dtypes=("bf16",))
GOOD_TOOLS = BuildTools(
    modules={
        "setuptools": "80",
        "packaging": "24",
        "pip": "25",
        "wheel": None,
        "psutil": None,
        "ninja": None,
    },
    torch_ok=True,
    torch_version="2.11.0+cu130",
    torch_cuda="13.0",
    cxx11abi=True,
)


def codes(findings, status=Status.FAIL):  # type: ignore[no-untyped-def]
    return sorted({f.code for f in findings if f.status is status})


def test_the_gpu_machine_passes() -> None:
    env = target_env("h100")
    plan = make_plan(env, MINIMAL, "2.8.3.post2")
    found = preflight(env, plan, GOOD_TOOLS)
    assert blocking(found) == ()
    assert {"torch-ok", "nvcc-ok", "host-compiler-ok", "ninja-ok", "resources-ok", "build-torch-ok"} <= {
        f.code for f in found
    }


def test_nvcc_major_mismatch_blocks_with_a_fix() -> None:
    env = target_env("nvcc-mismatch")  # torch cu128, nvcc 11.8
    plan = make_plan(env, BuildRequest(), "2.8.3.post2")
    found = preflight(env, plan)
    assert codes(found) == ["nvcc-torch-mismatch"]
    f = next(f for f in found if f.code == "nvcc-torch-mismatch")
    assert "CUDA_HOME" in (f.fix or "")


def test_nvcc_below_the_variant_minimum() -> None:
    env = target_env("a100", nvcc="11.6", torch="2.8.0+cu118", torch_cuda="11.8")
    found = preflight(env, make_plan(env, BuildRequest(), "2.8.3.post2"))
    assert "nvcc-too-old" in codes(found)
    fa3 = make_plan(env, BuildRequest(variant="fa3", archs=(90,)), "3.0.0")
    assert "nvcc-too-old" in codes(preflight(env, fa3))


def test_blackwell_with_old_nvcc_is_refused_before_setup_py_drops_it() -> None:
    env = target_env("h100", nvcc="12.4", torch="2.6.0+cu124", torch_cuda="12.4", gpus=[])
    plan = make_plan(env, BuildRequest(archs=(90,)), "2.8.3.post2")
    assert blocking(preflight(env, plan)) == ()
    # sm_100 is mapped at plan time already: a usage error names the nvcc it needs.
    import pytest

    from flashdoctor.errors import UsageError

    with pytest.raises(UsageError, match=r"12\.8"):
        make_plan(env, BuildRequest(archs=(100,)), "2.8.3.post2")


def test_missing_toolchain_pieces_block() -> None:
    env = target_env("h100", nvcc=None, ninja=False, disk_free_gb=3)
    found = preflight(env, make_plan(env, MINIMAL, "2.8.3.post2"))
    assert codes(found) == ["disk-low", "ninja-missing", "nvcc-missing"]
    assert all(f.fix for f in found if f.status is Status.FAIL)
    new_gcc = target_env("h100", gcc="16.1.0")
    found = preflight(new_gcc, make_plan(new_gcc, MINIMAL, "2.8.3.post2"))
    assert codes(found) == ["host-compiler-unsupported"]


def test_torch_missing_or_cpu_only_blocks() -> None:
    assert "torch-missing" in codes(
        preflight(target_env("no-torch"), make_plan(target_env("no-torch"), MINIMAL, "2.8.3.post2"))
    )
    box = target_env("cpu-box")
    assert "torch-cpu-only" in codes(preflight(box, make_plan(box, MINIMAL, "2.8.3.post2")))


def test_low_memory_warns_but_does_not_block() -> None:
    env = target_env("h100", memory_gb=6)
    found = preflight(env, make_plan(env, MINIMAL, "2.8.3.post2"))
    assert "build-memory-low" in codes(found, Status.WARN)
    assert blocking(found) == ()


def test_torch_that_does_not_import_blocks() -> None:
    env = target_env("h100")
    tools = BuildTools(
        modules=GOOD_TOOLS.modules,
        torch_ok=False,
        torch_error="Traceback...\nImportError: libcudnn.so.9: cannot open",
    )
    found = preflight(env, make_plan(env, MINIMAL, "2.8.3.post2"), tools)
    f = next(f for f in found if f.code == "build-torch-import")
    assert f.status is Status.FAIL and "libcudnn" in (f.evidence or "")


def test_unedited_sources_need_wheel_psutil_ninja_packages() -> None:
    env = target_env("h100")
    edited = make_plan(env, MINIMAL, "2.8.3.post2")
    assert blocking(preflight(env, edited, GOOD_TOOLS)) == ()
    unknown_version = make_plan(env, BuildRequest(), "2.6.3")  # not edited: setup_requires stays
    found = preflight(env, unknown_version, GOOD_TOOLS)
    missing = sorted(f.message.split()[3] for f in found if f.code == "build-module-missing")
    assert missing == ["ninja", "psutil", "wheel"]
    no_pip = BuildTools(modules={**GOOD_TOOLS.modules, "pip": None}, torch_ok=True)
    assert "build-module-missing" in codes(preflight(env, edited, no_pip))


def test_fa3_toolchain_download_and_unknown_switches() -> None:
    env = target_env("h100")  # nvcc 13.0
    plan = make_plan(env, BuildRequest(variant="fa3", head_dims=(128,)), "3.0.0")
    upstream = Fa3SetupFacts(
        offline_switch=True,
        toolchain_download=True,
        switches=frozenset(
            f"FLASH_ATTENTION_DISABLE_{s}" for s in ("HDIM64", "HDIM96", "HDIM192", "HDIM256", "SM80")
        ),
    )
    assert codes(fa3_preflight(env, plan, upstream)) == ["fa3-toolchain-download"]
    at_128 = target_env("h100", nvcc="12.8", torch="2.8.0+cu128", torch_cuda="12.8")
    assert codes(fa3_preflight(at_128, plan, upstream)) == []
    old = Fa3SetupFacts(offline_switch=False, toolchain_download=True, switches=upstream.switches)
    assert codes(fa3_preflight(env, plan, old)) == ["fa3-offline-switch-missing"]
    nobwd = make_plan(env, BuildRequest(variant="fa3", disable=("backward",)), "3.0.0")
    assert "fa3-switch-unknown" in codes(fa3_preflight(at_128, nobwd, upstream))


def test_codes_are_documented_and_distinct_from_check_codes() -> None:
    assert not set(BUILD_CODES) & set(CODES)
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for code in BUILD_CODES:
        assert f"`{code}`" in readme, code
