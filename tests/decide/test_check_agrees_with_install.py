"""check's verdict and install's plan agree: "installable" names the wheel the plan installs, "buildable" is a
plan to build, "unsupported" a plan that installs nothing (a driver too old for torch itself once split
them: check said installable, the plan build or unsupported)."""

from __future__ import annotations

import itertools

import pytest

from flashdoctor.decide.checks import run_checks
from flashdoctor.decide.wheels import load_index, make_plan
from tests.support.paths import ROOT
from tests.support.targets import bundled_finder, one_gpu

GPUS = ["8.0", "8.9", "9.0", "10.0", "12.0"]
DRIVERS = ["470.182.03", "535.104.05", "575.57.08", "580.65.06"]  # CUDA 11.4, 12.2, 12.9, 13.0
TORCHES = [("2.4.1+cu121", "12.1"), ("2.6.0+cu124", "12.4"), ("2.8.0+cu128", "12.8"), ("2.9.1+cu130", "13.0")]
ACTION = {"installable": "wheel", "buildable": "build", "unsupported": "unsupported"}


@pytest.mark.slow  # ~9 s: 80 machines, a check and three plans each
@pytest.mark.parametrize("capability", GPUS)
def test_the_verdict_is_the_plan(capability: str) -> None:
    index, finder = load_index(ROOT / "wheels_index.json"), bundled_finder()
    for driver, (torch, torch_cuda) in itertools.product(DRIVERS, TORCHES):
        env = one_gpu(capability, torch, torch_cuda, driver=driver)
        verdicts = run_checks(env, wheel_finder=finder).verdicts
        for variant in ("fa2", "fa3", "fa4"):
            verdict, plan = verdicts[variant], make_plan(env, variant, index)
            where = (capability, driver, torch, variant, verdict.verdict.value, plan.action)
            assert ACTION[verdict.verdict.value] == plan.action, where
            if verdict.wheel is not None:
                assert plan.wheel is not None and plan.wheel.filename == verdict.wheel, where
