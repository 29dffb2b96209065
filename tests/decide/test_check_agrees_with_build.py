"""check and build decide with the same rules: where check calls a variant "buildable" with no blocker, the
build plan for that machine is accepted. Before stop 28 check called FA2 buildable on a Blackwell GPU with
nvcc 12.4 and the build refused (sm_120 needs nvcc 12.8)."""

from __future__ import annotations

import itertools

import pytest

from flashdoctor.decide.checks import run_checks
from flashdoctor.decide.source_build.plan import make_plan
from flashdoctor.errors import UsageError
from flashdoctor.model.build import BuildRequest
from tests.support.targets import one_gpu

CAPABILITIES = ["8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1"]
NVCCS = ["11.8", "12.3", "12.4", "12.8", "12.9", "13.0"]
TORCHES = [("2.4.1+cu121", "12.1"), ("2.8.0+cu128", "12.8"), ("2.9.1+cu130", "13.0")]
VERSIONS = {"fa2": "2.8.3.post2", "fa3": "3.0.0"}


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_clean_buildable_verdict_is_a_plan_the_build_accepts(capability: str) -> None:
    checked = 0
    for nvcc, (torch, torch_cuda) in itertools.product(NVCCS, TORCHES):
        env = one_gpu(capability, torch, torch_cuda, nvcc=nvcc)
        for variant, verdict in run_checks(env).verdicts.items():
            if variant not in VERSIONS or verdict.verdict.value != "buildable" or verdict.blockers:
                continue
            checked += 1
            try:
                make_plan(env, BuildRequest(variant=variant), VERSIONS[variant])
            except UsageError as e:  # pragma: no cover - the failure this test exists for
                pytest.fail(
                    f"check: {variant} buildable on sm {capability}, nvcc {nvcc}, torch {torch}; build: {e}"
                )
    assert checked > 0  # every capability here has a clean buildable case
