"""A reviewed plan (install --plan FILE) made on one machine and installed on another: its wheel is judged
again with this machine's facts, by the selector's own rules, and its blockers are worked out here (a plan
file's are not trusted)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from flashdoctor.decide.wheels import load_index, make_plan, refit_plan, replay_premise
from flashdoctor.decide.wheels.index import WheelIndex
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT

H100 = {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}


def machine(**spec: Any) -> Environment:
    base = {"python": "3.12", "platform": "linux_x86_64", "glibc": "2.39", "torch": "2.9.0+cu130",
            "cxx11abi": True, "driver": "580.65.06", "installed": {}, "gpus": [H100]}  # fmt: skip
    return environment_from_target({**base, **spec})


@pytest.fixture(scope="module")
def index() -> WheelIndex:
    return load_index(ROOT / "wheels_index.json")


def reviewed(filename: str, **extra: Any) -> Plan:
    """A plan as load_plan reads it: the wheel, no blockers, whatever the file said about its own machine."""
    ref = WheelRef(filename, f"https://example.invalid/{filename}", None, "official", "2.8.3")
    return Plan("wheel", "fa2", wheel=ref, **extra)


def codes(misses: tuple[str, ...]) -> list[str]:
    return [m.split(":", 1)[0] for m in misses]


def test_a_wheel_that_fits_keeps_its_plan(index: WheelIndex) -> None:
    env = machine()
    planned = make_plan(env, "fa2", index)
    assert planned.action == "wheel" and planned.wheel is not None and not planned.blockers
    plan = Plan("wheel", "fa2", wheel=planned.wheel)
    assert refit_plan(env, plan, index) == (plan, ())


def test_each_mismatch_with_this_machine_is_named(index: WheelIndex) -> None:
    # made on a torch 2.8 + CUDA 12 / Python 3.11 machine, installed on torch 2.9 + CUDA 13 / Python 3.12
    plan = reviewed("flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl")
    _plan, misses = refit_plan(machine(), plan, index)
    assert codes(misses) == ["python-mismatch", "torch-mismatch", "cuda-mismatch"]
    assert "built for torch 2.8, this is torch 2.9" in misses[1]


def test_a_driver_too_old_for_the_wheels_cuda_is_named(index: WheelIndex) -> None:
    # torch 2.9 + CUDA 12.8 on a driver for CUDA 12.9; the plan's wheel was built with CUDA 13
    env = machine(torch="2.9.0+cu128", driver="575.57.08")
    plan = reviewed("flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    _plan, misses = refit_plan(env, plan, index)
    assert "driver-too-old" in codes(misses)


def test_blockers_are_worked_out_here_not_read_from_the_file(index: WheelIndex) -> None:
    wheel = "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    # the driver runs CUDA 12.9, torch is 13.0: the machine blocks it, as make_plan says for this machine
    old = machine(driver="575.57.08")
    assert make_plan(old, "fa2", index).blockers == ("driver-too-old",)
    plan, misses = refit_plan(old, reviewed(wheel), index)
    assert plan.blockers == ("driver-too-old",) and misses == ()
    # a file that says blocked, on a machine that is not
    plan, misses = refit_plan(machine(), reviewed(wheel, blockers=("driver-too-old",)), index)
    assert plan.blockers == () and misses == ()


def test_a_wheel_the_index_does_not_list_is_judged_by_its_name(index: WheelIndex) -> None:
    local = "flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl"  # a local build
    plan = replace(
        reviewed(local), wheel=WheelRef(local, "file:///wh/x/" + local, None, "wheelhouse", "2.8.3")
    )
    assert refit_plan(machine(), plan, index)[1] == ()
    assert codes(refit_plan(machine(python="3.11"), plan, index)[1]) == ["python-mismatch"]
    arm = "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_aarch64.whl"
    assert codes(refit_plan(machine(), reviewed(arm), index)[1]) == ["platform-mismatch"]


def test_a_cpu_torch_is_left_to_the_import_check(index: WheelIndex) -> None:
    """Where torch is no CUDA build there is no torch CUDA to compare: the install's import check decides."""
    plan = reviewed("flash_attn-2.8.3+cu12torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    assert refit_plan(machine(torch="2.9.0+cpu", driver=None, gpus=[]), plan, index)[1] == ()


# -- a plan that installs nothing: what it found must hold here (replay_premise) ---------------------------
def test_a_none_plan_from_a_machine_with_flash_attn_does_not_hold_where_it_is_missing(
    index: WheelIndex,
) -> None:
    there = make_plan(machine(installed={"flash-attn": "2.7.4.post1"}), "fa2", index)
    assert there.action == "none" and there.extra["installed"]["version"] == "2.7.4.post1"
    _plan, misses = replay_premise(machine(), there, index)
    assert misses == (
        "it is 'none' because flash-attn 2.7.4.post1 installed; on this machine flash-attn is not "
        f"installed, and the plan is 'wheel' ({make_plan(machine(), 'fa2', index).reasons[0]})",
    )


def test_a_none_plan_does_not_hold_where_another_version_is_installed(index: WheelIndex) -> None:
    there = make_plan(machine(installed={"flash-attn": "2.7.4.post1"}), "fa2", index)
    here = machine(installed={"flash-attn": "2.8.3"})
    assert make_plan(here, "fa2", index).action == "none"  # nothing to do here either, for another version
    _plan, misses = replay_premise(here, there, index, "the machine of --target x.json")
    assert misses == (
        "it is 'none' because flash-attn 2.7.4.post1 installed; on the machine of --target x.json "
        "flash-attn 2.8.3 is installed",
    )


def test_a_plan_that_holds_says_its_reasons_are_the_plan_files(index: WheelIndex) -> None:
    there = make_plan(machine(installed={"flash-attn": "2.7.4.post1"}), "fa2", index)
    plan, misses = replay_premise(machine(installed={"flash-attn": "2.7.4.post1"}), there, index)
    assert misses == () and plan.reasons == (
        "flash-attn 2.7.4.post1 is installed on this machine, as the plan says; the other reasons are the "
        "plan file's",
        *there.reasons,
    )
    build = Plan("build", "fa2", reasons=("no prebuilt wheel fits this machine",))
    _plan, misses = replay_premise(machine(), build, index)  # a wheel fits here: the build was for elsewhere
    assert len(misses) == 1 and misses[0].startswith(
        "it is 'build' because no prebuilt wheel fits this machine; on this machine the plan is 'wheel' ("
    )
