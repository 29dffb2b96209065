"""Preflight through target specs: every reason a build would fail is a finding with a fix."""

from __future__ import annotations

from flashdoctor.decide.checks import CODES
from flashdoctor.decide.source_build.hopper import Fa3SetupFacts
from flashdoctor.decide.source_build.plan import BuildRequest, make_plan
from flashdoctor.decide.source_build.preflight import BUILD_CODES, blocking, fa3_preflight, preflight
from flashdoctor.model.findings import Status
from flashdoctor.model.tools import BuildTools
from tests.support.targets import target_env

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


def test_fa3_toolchain_download_follows_the_checkouts_condition() -> None:
    env = target_env("h100")  # nvcc 13.0
    plan = make_plan(env, BuildRequest(variant="fa3", head_dims=(128,)), "3.0.0")
    switches = frozenset(
        f"FLASH_ATTENTION_DISABLE_{s}"
        for s in ("HDIM64", "HDIM96", "HDIM192", "HDIM256", "SM80", "HDIMDIFF64", "HDIMDIFF192")
    )
    main = Fa3SetupFacts(offline_switch=True, switches=switches, download_when=">=12.3,<13.0,!=12.8")
    assert codes(fa3_preflight(env, plan, main)) == []  # nvcc 13.0: the system nvcc is used
    at_126 = target_env("h100", nvcc="12.6", torch="2.8.0+cu126", torch_cuda="12.6")
    assert codes(fa3_preflight(at_126, plan, main)) == ["fa3-toolchain-download"]
    at_128 = target_env("h100", nvcc="12.8", torch="2.8.0+cu128", torch_cuda="12.8")
    assert codes(fa3_preflight(at_128, plan, main)) == []
    older = Fa3SetupFacts(offline_switch=True, switches=switches, download_when=">=12.3,!=12.8")
    found = fa3_preflight(env, plan, older)
    assert codes(found) == ["fa3-toolchain-download"]
    assert ">=12.3,!=12.8" in found[0].message and "13.0" in found[0].message
    no_switch = Fa3SetupFacts(offline_switch=False, switches=switches, download_when=">=12.3,!=12.8")
    assert codes(fa3_preflight(env, plan, no_switch)) == ["fa3-offline-switch-missing"]
    never = Fa3SetupFacts(offline_switch=False, switches=switches, download_when="")
    assert fa3_preflight(env, plan, never) == []


def test_fa3_toolchain_download_unreadable_or_nvcc_unknown_warns() -> None:
    env = target_env("h100")
    plan = make_plan(env, BuildRequest(variant="fa3", head_dims=(128,)), "3.0.0")
    switches = frozenset(k for k in plan.env if k.startswith("FLASH_ATTENTION_DISABLE_"))
    unread = Fa3SetupFacts(True, switches, download_when=None, download_problem="it calls it from a function")
    found = fa3_preflight(env, plan, unread)
    assert codes(found, Status.WARN) == ["fa3-toolchain-download"] and blocking(tuple(found)) == ()
    assert "from a function" in found[0].message
    no_nvcc = target_env("h100", nvcc=None)
    main = Fa3SetupFacts(True, switches, download_when=">=12.3,<13.0,!=12.8")
    assert codes(fa3_preflight(no_nvcc, plan, main), Status.WARN) == ["fa3-toolchain-download"]


def test_fa3_switches_the_checkout_does_not_read() -> None:
    env = target_env("h100")
    upstream = frozenset(
        f"FLASH_ATTENTION_DISABLE_{s}" for s in ("HDIM64", "HDIM96", "HDIM192", "HDIM256", "SM80")
    )
    facts = Fa3SetupFacts(offline_switch=True, switches=upstream, download_when="")
    # A profile switch it does not read blocks; the HDIMDIFF economies it does not read are not set.
    nobwd = make_plan(env, BuildRequest(variant="fa3", disable=("backward",)), "3.0.0", facts)
    found = fa3_preflight(env, nobwd, facts)
    assert codes(found) == ["fa3-switch-unknown"] and "BACKWARD" in found[0].message
    hd128 = make_plan(env, BuildRequest(variant="fa3", head_dims=(128,)), "3.0.0", facts)
    assert "FLASH_ATTENTION_DISABLE_HDIMDIFF64" not in hd128.env
    assert fa3_preflight(env, hd128, facts) == []


def test_codes_are_documented_and_distinct_from_check_codes() -> None:
    assert not set(BUILD_CODES) & set(CODES)


def test_an_arch_the_nvcc_found_later_cannot_compile_blocks() -> None:
    # A plan made where nvcc was unknown (so make_plan could not refuse the arch), checked against the nvcc the
    # build will run: sm_120 needs 12.8 (setup.py would drop it silently), sm_110 (compiled by torch's
    # cpp_extension) 13.0 — the same minimums the plan and check read (knowledge.fa2_build).
    for arch, old, new, why in (
        (120, "12.4", "12.8", "drops it silently"),
        (110, "12.8", "13.0", "cpp_extension"),
    ):
        unknown = target_env("h100", nvcc=None, torch="2.9.1+cu128", torch_cuda="12.8", gpus=[])
        plan = make_plan(unknown, BuildRequest(archs=(arch,)), "2.8.3.post2")
        env = target_env("h100", nvcc=old, torch="2.9.1+cu128", torch_cuda="12.8", gpus=[])
        found = [f for f in preflight(env, plan) if f.code == "build-arch-nvcc"]
        assert len(found) == 1 and found[0].status is Status.FAIL, (arch, found)
        assert f"sm_{arch} needs nvcc ≥ {new}" in found[0].message and why in found[0].message
        ok = target_env("h100", nvcc=new, torch="2.9.1+cu128", torch_cuda="12.8", gpus=[])
        assert not [f for f in preflight(ok, plan) if f.code == "build-arch-nvcc"]
