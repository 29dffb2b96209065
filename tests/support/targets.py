"""Environments from the target specs in tests/targets (the values the pure decisions are fed)."""

from __future__ import annotations

import json

from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import TARGETS


def target_env(name: str, **overrides: object) -> Environment:
    """An Environment from tests/targets/<name>.json, with optional key overrides."""
    spec = json.loads((TARGETS / f"{name}.json").read_text())
    spec.update(overrides)
    return environment_from_target(spec)
