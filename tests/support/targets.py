"""Environments from the target specs in tests/targets (the values the pure decisions are fed)."""

from __future__ import annotations

import json

from flashdoctor.decide.checks import WheelFinder
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT, TARGETS


def target_env(name: str, **overrides: object) -> Environment:
    """An Environment from tests/targets/<name>.json, with optional key overrides."""
    spec = json.loads((TARGETS / f"{name}.json").read_text())
    spec.update(overrides)
    return environment_from_target(spec)


def one_gpu(capability: str, torch: str, torch_cuda: str, **overrides: object) -> Environment:
    """The h100 target with one GPU of compute capability ``capability`` and the given torch (a machine of a
    grid that check, install and build must judge alike)."""
    gpus = [{"name": "GPU", "capability": capability}]
    return target_env("h100", gpus=gpus, torch=torch, torch_cuda=torch_cuda, **overrides)


def bundled_finder() -> WheelFinder:
    """check's WheelFinder over the bundled index (a user's or refreshed index never leaks in)."""
    from flashdoctor.actions.inputs import wheel_finder
    from flashdoctor.decide.wheels.location import ENV_VAR

    finder = wheel_finder({ENV_VAR: str(ROOT / "wheels_index.json")})
    assert finder is not None
    return finder
