"""install installs nothing while the machine blocks the wheel it planned (a driver too old for torch's own
CUDA): the plan names the wheel that fits after the upgrade, and the exit code says nothing was installed."""

from __future__ import annotations

from flashdoctor.cli.install import plan_exit_code
from flashdoctor.decide.wheels import load_index, make_plan
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT


def _machine(**spec: object) -> Environment:
    base = {"python": "3.12", "platform": "linux_x86_64", "glibc": "2.39", "torch": "2.9.0+cu130",
            "cxx11abi": True, "driver": "580.65.06", "installed": {},
            "gpus": [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}]}  # fmt: skip
    return environment_from_target({**base, **spec})


def test_a_blocked_wheel_plan_installs_nothing_and_exits_1() -> None:
    index = load_index(ROOT / "wheels_index.json")
    blocked = make_plan(
        _machine(driver="575.57.08"), "fa2", index
    )  # the driver runs CUDA 12.9, torch is 13.0
    clean = make_plan(_machine(), "fa2", index)
    assert blocked.action == clean.action == "wheel" and "driver-too-old" in blocked.blockers
    assert not clean.blockers
    assert (plan_exit_code(blocked, dry_run=False), plan_exit_code(blocked, dry_run=True)) == (1, 0)
    assert plan_exit_code(clean, dry_run=False) == 0
