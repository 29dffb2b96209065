"""Which PyTorch releases export a C++ symbol (flashdoctor/data/torch_symbols.json, measured on PyTorch's
wheels by scripts/measure_torch_symbols.py): explain says which torch an extension reporting
``undefined symbol: _ZN3c10...`` was built against."""

from __future__ import annotations

from functools import cache

from flashdoctor.knowledge.data import load_data


@cache
def _table() -> tuple[tuple[str, ...], dict[str, list[str]]]:
    data = load_data("torch_symbols")
    return tuple(data["measured"]), data["symbols"]


def exporting_releases(symbol: str) -> str | None:
    """ "2.1.0-2.2.2" (runs of the measured releases that export ``symbol``, joined by ", "), or None when
    the symbol was not measured or every measured release exports it."""
    runs = _table()[1].get(symbol)
    return None if runs is None else ", ".join(r.replace("-", "–") for r in runs)


def measured_span() -> str:
    """ "2.0.0–2.14.1": the releases measured."""
    measured = _table()[0]
    return f"{measured[0]}–{measured[-1]}"
