"""Where things are, for every test: one statement instead of ``Path(__file__).parents[N]`` in each file
(a test can move between folders without its paths changing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]  # the checkout: README.md, pyproject.toml, flashdoctor/, scripts/
TESTS = ROOT / "tests"
DATA = TESTS / "data"  # logs, evaluation sets, wheel listings
TARGETS = TESTS / "targets"  # target specs (--target)
GOLDEN = TESTS / "golden"  # rendered reports
SCRIPTS = ROOT / "scripts"


def load_script(name: str, register: bool = False) -> ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package). ``register``: also put it in
    ``sys.modules`` (a script whose dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
