"""Drift: the fields compared across the ranks of a cluster check (data/cluster_drift.json, with one field
per FlashAttention variant from the registry's ``drift``), each rank's comparable value, and the vote."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.variants import VARIANT_DIST, VARIANTS, variant_info
from flashdoctor.model.findings import Status


# -- the fields -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftField:
    field: str
    label: str
    status: Status
    why: str
    source: str


def drift_fields() -> tuple[DriftField, ...]:
    """The fields in report order: data/cluster_drift.json's, where its ``{"variants": true}`` entry stands
    one per variant (named by its distribution, worded by the registry's ``drift``)."""
    out: list[DriftField] = []
    for f in load_data("cluster_drift")["fields"]:
        if f.get("variants"):
            for v in VARIANTS:
                d = variant_info(v).drift
                out.append(
                    DriftField(VARIANT_DIST[v], d["label"], Status(d["status"]), d["why"], d["source"])
                )
        else:
            out.append(DriftField(f["field"], f["label"], Status(f["status"]), f["why"], f["source"]))
    return tuple(out)


def gpu_text(g: Mapping[str, Any]) -> str:
    name = g.get("name") or "unknown GPU"
    cap = g.get("capability")
    if isinstance(cap, str) and "." in cap:
        major, minor = cap.split(".", 1)
        return f"{name} (sm_{major}{minor})"
    return str(name)


def drift_values(check: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The comparable value of each drift field in one rank's check document. None = unknown (the
    key is absent from the environment, as a check document leaves unknown keys out)."""
    env: Mapping[str, Any] = (check or {}).get("environment") or {}
    out: dict[str, str | None] = {}

    def has(k: str) -> bool:
        return k in env

    if has("python"):
        abi = env.get("python_abi")
        out["python"] = (
            f"{env['python']} ({abi})" if abi and env.get("python") else env.get("python") or "none"
        )
    else:
        out["python"] = None
    has_torch = has("torch")
    no_torch = has_torch and env.get("torch") is None
    out["torch"] = (env["torch"] or "not installed") if has_torch else None
    if no_torch:
        out["torch_cuda"] = "no torch"
        out["cxx11abi"] = "no torch"
    else:
        out["torch_cuda"] = (env["torch_cuda"] or "none (CPU/ROCm build)") if has("torch_cuda") else None
        if has("cxx11abi") and env.get("cxx11abi") is not None:
            out["cxx11abi"] = "cxx11 (new)" if env["cxx11abi"] else "pre-cxx11 (old)"
        else:
            out["cxx11abi"] = None
    if has("installed") and isinstance(env.get("installed"), Mapping):
        inst = env["installed"]
        for dist in (VARIANT_DIST[v] for v in VARIANTS):
            row = inst.get(dist)
            if not isinstance(row, Mapping):
                out[dist] = "not installed"
                continue
            text = str(row.get("version") or "unknown version")
            archs = row.get("archs")
            if isinstance(archs, list) and archs:
                text += f" [{','.join(str(a) for a in archs)}]"
            out[dist] = text
    else:
        for v in VARIANTS:
            out[VARIANT_DIST[v]] = None
    if has("driver"):
        d = env.get("driver")
        dc = env.get("driver_cuda")
        out["driver"] = "none" if d is None else (f"{d} (CUDA {dc})" if dc else str(d))
    else:
        out["driver"] = None
    if has("gpus") and isinstance(env.get("gpus"), list):
        gpus = [g for g in env["gpus"] if isinstance(g, Mapping)]
        out["gpu"] = " + ".join(gpu_text(g) for g in gpus) if gpus else "none"
    else:
        out["gpu"] = None
    if has("platform"):
        glibc = env.get("glibc")
        out["platform"] = f"{env.get('platform')}" + (f" glibc {glibc}" if glibc else "")
    else:
        out["platform"] = None
    out["nvcc"] = (env["nvcc"] or "none") if has("nvcc") else None
    return out


@dataclass(frozen=True)
class Drift:
    """A field whose known values differ across ranks.

    ``majority`` is the value held by strictly more ranks than any other (None on a tie);
    ``odd`` are the ranks that do not hold it (empty on a tie: nobody is singled out).
    """

    field: str
    label: str
    status: Status
    why: str
    groups: tuple[tuple[str, tuple[int, ...]], ...]  # (value, ranks), most common first
    majority: str | None
    odd: tuple[int, ...]
    unknown: tuple[int, ...] = ()

    def value_of(self, rank: int) -> str | None:
        for value, ranks in self.groups:
            if rank in ranks:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "label": self.label,
            "status": self.status.value,
            "why": self.why,
            "majority": self.majority,
            "odd_ranks": list(self.odd),
            "values": [{"value": v, "ranks": list(r)} for v, r in self.groups],
            "unknown_ranks": list(self.unknown),
        }


def compute_drift(
    values: Mapping[int, Mapping[str, str | None]], fields: Sequence[DriftField] | None = None
) -> tuple[Drift, ...]:
    """Compare each field across ranks. Ranks where a field is unknown take no part in its vote."""
    out: list[Drift] = []
    for f in fields if fields is not None else drift_fields():
        groups: dict[str, list[int]] = {}
        unknown: list[int] = []
        for rank in sorted(values):
            v = values[rank].get(f.field)
            if v is None:
                unknown.append(rank)
            else:
                groups.setdefault(v, []).append(rank)
        if len(groups) <= 1:
            continue
        # Most common first; ties keep the order of the lowest rank holding the value.
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
        top = len(ordered[0][1])
        majority = ordered[0][0] if len(ordered[1][1]) < top else None
        odd = (
            tuple(sorted(r for v, rs in ordered if v != majority for r in rs)) if majority is not None else ()
        )
        out.append(
            Drift(
                field=f.field,
                label=f.label,
                status=f.status,
                why=f.why,
                groups=tuple((v, tuple(rs)) for v, rs in ordered),
                majority=majority,
                odd=odd,
                unknown=tuple(unknown),
            )
        )
    return tuple(out)
