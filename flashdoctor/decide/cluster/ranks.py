"""What the ranks of a cluster check send rank 0: a rank's status, its join announcement and its finished
work, as plain JSON (ranks on another flashdoctor or Python still compare)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

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
        return JoinInfo(
            rank=int(d["rank"]),
            host=_opt(d, "host", str),
            pid=_opt(d, "pid", int),
            local_rank=_opt(d, "local_rank", int),
            node_rank=_opt(d, "node_rank", int),
            local_world_size=_opt(d, "local_world_size", int),
        )


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
        code = _opt(d, "exit_code", int)
        return RankResult(
            rank=int(d["rank"]),
            host=_opt(d, "host", str),
            local_rank=_opt(d, "local_rank", int),
            node_rank=_opt(d, "node_rank", int),
            device=_opt(d, "device", str),
            device_note=_opt(d, "device_note", str),
            source=_opt(d, "source", str),
            exit_code=1 if code is None else code,
            error=_opt(d, "error", str),
            elapsed_s=_opt(d, "elapsed_s", (int, float)),
            check=_opt(d, "check", dict),
            smoke=_opt(d, "smoke", dict),
            smoke_passed=_opt(d, "smoke_passed", bool),
            smoke_error=_opt(d, "smoke_error", str),
        )


def _opt(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    """``d[key]`` when it has the JSON type ``typ`` (a bool is no int), else None: what another rank sent
    is read, never trusted."""
    v = d.get(key)
    return v if isinstance(v, typ) and not (typ is int and isinstance(v, bool)) else None
