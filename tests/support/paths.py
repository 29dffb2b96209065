"""Where things are, for every test: one statement instead of ``Path(__file__).parents[N]`` in each file
(a test can move between folders without its paths changing)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: README.md, pyproject.toml, flashdoctor/, scripts/
TESTS = ROOT / "tests"
DATA = TESTS / "data"  # logs, evaluation sets, wheel listings
TARGETS = TESTS / "targets"  # target specs (--target)
GOLDEN = TESTS / "golden"  # rendered reports
SCRIPTS = ROOT / "scripts"
