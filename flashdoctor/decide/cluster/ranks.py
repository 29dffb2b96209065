"""What the ranks of a cluster check send rank 0: a rank's status, its join announcement and its finished
work, as plain JSON (ranks on another flashdoctor or Python still compare); and what rank 0 has of them
once the exchange is over."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from flashdoctor.model.fields import FieldsJson


class RankStatus(str, Enum):
    OK = "ok"  # checked, exit code 0
    FAILED = "failed"  # checked, its check (or smoke test) failed
    ERROR = "error"  # its work raised: an unreadable --target-for-rank file, a probe that crashed
    UNFINISHED = "unfinished"  # joined, but sent no result within --rank-timeout
    MISSING = "missing"  # never joined within --timeout


# -- what the ranks send -----------------------------------------------------------------------------
@dataclass(frozen=True)
class JoinInfo(FieldsJson):
    """What a rank announces when it joins: enough to name it if it never finishes."""

    rank: int
    host: str | None = None
    pid: int | None = None
    local_rank: int | None = None
    node_rank: int | None = None
    local_world_size: int | None = None

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> JoinInfo:
        return _read(JoinInfo, d)


@dataclass(frozen=True)
class RankResult(FieldsJson):
    """One rank's finished work, as sent to rank 0 (its JSON form: the fields in this order).

    ``exit_code`` is the rank's own verdict (its check's exit code under --strict/--require, 1 when its
    smoke test failed); ``check`` is its full ``flashdoctor/check/1`` document.
    """

    rank: int
    host: str | None = None
    local_rank: int | None = None
    node_rank: int | None = None
    device: str | None = None  # the CUDA_VISIBLE_DEVICES entry this rank owns
    device_note: str | None = None  # why it owns none, when it should
    source: str | None = None  # "probe" or "target:<file>"
    exit_code: int = 0
    error: str | None = None
    elapsed_s: float | None = None
    check: dict[str, Any] | None = None
    smoke: dict[str, Any] | None = None
    smoke_passed: bool | None = None
    smoke_error: str | None = None  # the smoke test could not run at all

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RankResult:
        return _read(RankResult, d, exit_code=1)  # a rank that sent no exit code failed


@dataclass(frozen=True)
class Gathered:
    """What rank 0 knows once the exchange is over (actions.cluster.protocol): the input of the cluster
    report."""

    joins: Mapping[int, JoinInfo]
    results: Mapping[int, RankResult]
    missing: tuple[int, ...] = ()  # never joined within --timeout
    unfinished: tuple[int, ...] = ()  # joined, sent no result within --rank-timeout
    transport: str = "gloo"  # "gloo" | "store" (the gloo gather failed; the store's copies were read)
    transport_error: str | None = None


# The JSON types of the fields' declared types (the first of "float | None", "dict[str, Any] | None").
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "str": str,
    "bool": bool,
    "float": (int, float),
    "dict": dict,
}

Sent = TypeVar("Sent", JoinInfo, RankResult)


def _read(cls: type[Sent], d: Mapping[str, Any], **missing: Any) -> Sent:
    """``cls`` from the JSON another rank sent, read and never trusted: ``rank`` must be an int; every other
    field keeps a value of its declared JSON type (a bool is no int), else ``missing``'s value or None."""
    values: dict[str, Any] = {"rank": int(d["rank"])}
    for f in dataclasses.fields(cls):
        if f.name == "rank":
            continue
        typ = _JSON_TYPES[str(f.type).split("|")[0].split("[")[0].strip()]
        v = d.get(f.name)
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        values[f.name] = v if ok else missing.get(f.name)
    return cls(**values)
