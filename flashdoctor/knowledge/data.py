"""Load the knowledge files (flashdoctor/data/*.json): the one reviewed place for facts, each naming its
source. Every other knowledge module reads through :func:`load_data`; nothing here probes the system."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_data(name: str) -> Any:
    """Load flashdoctor/data/<name>.json (cached)."""
    text = resources.files("flashdoctor").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)
