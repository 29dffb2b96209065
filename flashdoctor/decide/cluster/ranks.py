"""What the ranks of a cluster check send rank 0: a rank's status, its join announcement and its finished
work, as plain JSON (ranks on another flashdoctor or Python still compare); and what rank 0 has of them
once the exchange is over."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from flashdoctor.knowledge.schemas import error_key, first_error
from flashdoctor.model.envelope import SCHEMA_FILES
from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.findings import CHECK_SCHEMA_ID
from flashdoctor.model.smoke import SMOKE_SCHEMA_ID


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
    world_size: int | None = None  # the WORLD_SIZE it was started with (rank 0 compares it with its own)

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
        """Raises ValueError for a document without its rank. A check or smoke document off its schema is
        dropped and becomes the rank's error: the report reads them, and carries them as what they claim."""
        res = _read(RankResult, d, exit_code=1)  # a rank that sent no exit code failed
        problems: dict[str, str] = {}
        for name, schema_id in (("check", CHECK_SCHEMA_ID), ("smoke", SMOKE_SCHEMA_ID)):
            why = _off_schema(schema_id, getattr(res, name))
            if why is not None:
                problems[name] = f"its {name} document does not follow {schema_id}: {why}"
        if not problems:
            return res
        error = "; ".join([res.error, *problems.values()] if res.error else problems.values())
        return dataclasses.replace(
            res,
            check=None if "check" in problems else res.check,
            smoke=None if "smoke" in problems else res.smoke,
            error=error,
            exit_code=1,
        )


@dataclass(frozen=True)
class Gathered:
    """What rank 0 knows once the exchange is over (actions.cluster.protocol): the input of the cluster
    report."""

    joins: Mapping[int, JoinInfo]
    results: Mapping[int, RankResult]
    missing: tuple[int, ...] = ()  # never joined within --timeout
    unfinished: tuple[int, ...] = ()  # joined, sent no result within --rank-timeout
    transport: str = "gloo"  # "gloo" | "store" (the gloo group failed; results: the store either way)
    transport_error: str | None = None
    extra_joins: int = 0  # processes that joined beyond ranks 0..world-1, or as a rank already taken


# The JSON types of the fields' declared types (the first of "float | None", "dict[str, Any] | None").
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "str": str,
    "bool": bool,
    "float": (int, float),
    "dict": dict,
}

Sent = TypeVar("Sent", JoinInfo, RankResult)


def _off_schema(schema_id: str, doc: Mapping[str, Any] | None) -> str | None:
    """Why ``doc`` (None: not sent) does not follow the schema of ``schema_id``: the first error, where."""
    if doc is None:
        return None
    try:
        error = first_error(SCHEMA_FILES[schema_id], doc)
    except RecursionError:
        return "nested too deeply to check"
    if error is None:
        return None
    key = error_key(error)
    return (f"{key}: " if key else "") + str(error.message)[:200]


def _read(cls: type[Sent], d: Mapping[str, Any], **missing: Any) -> Sent:
    """``cls`` from the JSON another rank sent, read and never trusted: ``rank`` must be a rank number (else
    ValueError); every other field keeps a value of its declared JSON type (a bool is no int), else
    ``missing``'s value or None."""
    rank = d.get("rank") if isinstance(d, Mapping) else None
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
        raise ValueError(f"no rank number in {str(d)[:80]}")
    values: dict[str, Any] = {"rank": rank}
    for f in dataclasses.fields(cls):
        if f.name == "rank":
            continue
        typ = _JSON_TYPES[str(f.type).split("|")[0].split("[")[0].strip()]
        v = d.get(f.name)
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        values[f.name] = v if ok else missing.get(f.name)
    return cls(**values)
