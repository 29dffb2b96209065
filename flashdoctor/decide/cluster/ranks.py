"""What the ranks of a cluster check send rank 0: a rank's status, its join announcement and its finished
work, as plain JSON (ranks on another flashdoctor or Python still compare)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class RankStatus(str, Enum):
    OK = "ok"  # checked, exit code 0
    FAILED = "failed"  # checked, its check (or smoke test) failed
    ERROR = "error"  # its work raised: an unreadable --target-for-rank file, a probe that crashed
    UNFINISHED = "unfinished"  # joined, but sent no result within --rank-timeout
    MISSING = "missing"  # never joined within --timeout


# -- what the ranks send -----------------------------------------------------------------------------
@dataclass(frozen=True)
class JoinInfo:
    """What a rank announces when it joins: enough to name it if it never finishes."""

    rank: int
    host: str | None = None
    pid: int | None = None
    local_rank: int | None = None
    node_rank: int | None = None
    local_world_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "host": self.host,
            "pid": self.pid,
            "local_rank": self.local_rank,
            "node_rank": self.node_rank,
            "local_world_size": self.local_world_size,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> JoinInfo:
        def opt_int(k: str) -> int | None:
            v = d.get(k)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        host = d.get("host")
        return JoinInfo(
            rank=int(d["rank"]),
            host=host if isinstance(host, str) else None,
            pid=opt_int("pid"),
            local_rank=opt_int("local_rank"),
            node_rank=opt_int("node_rank"),
            local_world_size=opt_int("local_world_size"),
        )


@dataclass(frozen=True)
class RankResult:
    """One rank's finished work, as sent to rank 0.

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
    check: dict[str, Any] | None = None
    smoke: dict[str, Any] | None = None
    smoke_passed: bool | None = None
    smoke_error: str | None = None  # the smoke test could not run at all
    exit_code: int = 0
    error: str | None = None
    elapsed_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "host": self.host,
            "local_rank": self.local_rank,
            "node_rank": self.node_rank,
            "device": self.device,
            "device_note": self.device_note,
            "source": self.source,
            "exit_code": self.exit_code,
            "error": self.error,
            "elapsed_s": self.elapsed_s,
            "check": self.check,
            "smoke": self.smoke,
            "smoke_passed": self.smoke_passed,
            "smoke_error": self.smoke_error,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RankResult:
        def opt(k: str, typ: type | tuple[type, ...]) -> Any:
            v = d.get(k)
            return v if isinstance(v, typ) and not (typ is int and isinstance(v, bool)) else None

        code = d.get("exit_code")
        return RankResult(
            rank=int(d["rank"]),
            host=opt("host", str),
            local_rank=opt("local_rank", int),
            node_rank=opt("node_rank", int),
            device=opt("device", str),
            device_note=opt("device_note", str),
            source=opt("source", str),
            check=opt("check", dict),
            smoke=opt("smoke", dict),
            smoke_passed=opt("smoke_passed", bool),
            smoke_error=opt("smoke_error", str),
            exit_code=code if isinstance(code, int) and not isinstance(code, bool) else 1,
            error=opt("error", str),
            elapsed_s=opt("elapsed_s", (int, float)),
        )
