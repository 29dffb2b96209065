"""Load the knowledge files (flashdoctor/data/*.json): the one reviewed place for facts, each naming its
source. Every other knowledge module reads through :func:`load_data`; nothing here probes the system."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_data(name: str) -> Any:
    """Load flashdoctor/data/<name>.json (cached)."""
    text = resources.files("flashdoctor").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class WrittenFloat(float):
    """A JSON number with a fraction or exponent, keeping the text it was written as: where a version is
    read from a number, "python": 3.10 is "3.10" (``text``), not the float's "3.1"."""

    text: str


def written(number: object) -> str:
    """A JSON number as the user wrote it (strict_json keeps the text of one with a fraction)."""
    return number.text if isinstance(number, WrittenFloat) else str(number)


def _finite(text: str) -> WrittenFloat:
    number = WrittenFloat(text)
    if math.isinf(number):
        raise ValueError(f"{text[:40]} is too large for a number")
    number.text = text
    return number


def _integer(text: str) -> int:
    number = int(text)
    if abs(number) > sys.float_info.max:  # no count of anything; and float() of it raises OverflowError
        raise ValueError(f"{text[:40]}... is too large for a number")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key[:100]!r} appears twice in one object")
        out[key] = value
    return out


def strict_json(text: str | bytes) -> Any:
    """json.loads for a document a user hands flashdoctor: NaN, Infinity and -Infinity (which Python's
    reader takes, and no JSON reader does) are refused with a ValueError, so that no document read from
    one can make flashdoctor print JSON that is not JSON; so is a number too large for a float (1e400,
    which Python's reader makes Infinity, or an integer of 400 digits, which float() cannot take); so is
    an object that names a key twice (Python
    keeps the last, other readers the first: which one was meant is not known)."""
    return json.loads(
        text,
        parse_constant=_no_constant,
        parse_float=_finite,
        parse_int=_integer,
        object_pairs_hook=_unique_keys,
    )


JSON_MAX_DEPTH = 64  # the deepest document flashdoctor reads nests 5 levels


def _depth_ok(doc: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, (dict, list)):
            if depth > limit:
                return False
            values = obj.values() if isinstance(obj, dict) else obj
            stack.extend((v, depth + 1) for v in values if isinstance(v, (dict, list)))
    return True


def parse_json(
    data: bytes, where: str, error: Callable[[str], Exception], max_depth: int = JSON_MAX_DEPTH
) -> Any:
    """A JSON document from untrusted bytes (:func:`strict_json`): UTF-8 (a leading BOM allowed), nested
    at most ``max_depth`` levels. Each problem is ``error`` with one line naming ``where`` ("target spec
    FILE") and what is wrong. The one reader of every JSON file a user hands flashdoctor."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    deep = f"{where} is nested too deeply (more than {max_depth} levels)"
    try:
        doc = strict_json(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise error(deep) from None
    except ValueError as exc:  # NaN / Infinity, or an integer of more digits than Python converts
        raise error(f"{where} is not valid JSON: {exc}") from None
    if not _depth_ok(doc, max_depth):
        raise error(deep)
    return doc


def read_capped(path: str, limit: int, what: str, error: Callable[[str], Exception]) -> bytes:
    """The bytes of a data file flashdoctor is handed (a target spec, a wheel index), at most ``limit``
    (whole MiB): ``error`` with one line saying why it cannot be read or that it is too large to be a
    ``what``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit >> 20} MiB: not a {what}")
    return data
