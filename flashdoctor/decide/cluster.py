"""The cluster report: per-rank results, drift across ranks, cluster findings and the exit code.

Pure: built from the documents the ranks sent (plain JSON, so that ranks on another flashdoctor or
Python still compare) and from what the rendezvous saw (who joined, who never finished). The JSON form
is public interface (README "Cluster report JSON", schema flashdoctor/schemas/cluster-report.schema.json).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flashdoctor import __version__
from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.variants import DIST_VARIANT, VARIANT_DIST, VARIANTS
from flashdoctor.model.findings import Finding, Status

CLUSTER_SCHEMA_ID = "flashdoctor/cluster/1"


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


# -- drift -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftField:
    field: str
    label: str
    status: Status
    why: str
    source: str


def drift_fields() -> tuple[DriftField, ...]:
    return tuple(
        DriftField(f["field"], f["label"], Status(f["status"]), f["why"], f["source"])
        for f in load_data("cluster_drift")["fields"]
    )


def _gpu_text(g: Mapping[str, Any]) -> str:
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
        out["gpu"] = " + ".join(_gpu_text(g) for g in gpus) if gpus else "none"
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


# -- the report --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankEntry:
    rank: int
    status: RankStatus
    join: JoinInfo | None
    result: RankResult | None
    host_guess: str | None = None  # a missing rank's host, inferred from its node's other ranks

    @property
    def host(self) -> str | None:
        if self.result is not None and self.result.host:
            return self.result.host
        if self.join is not None and self.join.host:
            return self.join.host
        return self.host_guess

    @property
    def gpu(self) -> str | None:
        """The rank's GPU as the report shows it: "GPU 3 NVIDIA H100 80GB HBM3 (sm_90)"."""
        if self.result is None or self.result.check is None:
            return None
        gpus = (self.result.check.get("environment") or {}).get("gpus")
        if not isinstance(gpus, list):
            return None
        if not gpus:
            return "none"
        dev = f"GPU {self.result.device} " if self.result.device is not None else ""
        return dev + " + ".join(_gpu_text(g) for g in gpus if isinstance(g, Mapping))

    @property
    def verdicts(self) -> dict[str, str]:
        if self.result is None or self.result.check is None:
            return {}
        raw = self.result.check.get("verdicts") or {}
        return {v: str(raw[v].get("verdict")) for v in VARIANTS if isinstance(raw.get(v), Mapping)}

    def label(self) -> str:
        """How findings name a rank: "rank 3 (host node07, GPU 3)"."""
        bits = []
        host = self.host
        if host:
            bits.append(
                f"host {host}" + (" (inferred)" if self.host_guess and host == self.host_guess else "")
            )
        if self.result is not None and self.result.device is not None:
            bits.append(f"GPU {self.result.device}")
        return f"rank {self.rank}" + (f" ({', '.join(bits)})" if bits else "")

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "rank": self.rank,
            "status": self.status.value,
            "host": self.host,
            "host_inferred": self.host_guess is not None and self.host == self.host_guess,
            "local_rank": r.local_rank if r else (self.join.local_rank if self.join else None),
            "node_rank": r.node_rank if r else (self.join.node_rank if self.join else None),
            "device": r.device if r else None,
            "gpu": self.gpu,
            "source": r.source if r else None,
            "verdicts": self.verdicts,
            "exit_code": r.exit_code if r else None,
            "error": r.error if r else None,
            "elapsed_s": r.elapsed_s if r else None,
            "check": r.check if r else None,
            "smoke": r.smoke if r else None,
            "smoke_passed": r.smoke_passed if r else None,
            "smoke_error": r.smoke_error if r else None,
        }


@dataclass(frozen=True)
class ClusterReport:
    launcher: str
    world_size: int
    rendezvous: str
    ranks: tuple[RankEntry, ...]
    drift: tuple[Drift, ...]
    findings: tuple[Finding, ...]
    transport: str  # "gloo", or "store" when the gloo gather failed and the store copies were used
    timeouts: dict[str, float] = field(default_factory=dict)
    smoke: bool = False

    def entry(self, rank: int) -> RankEntry:
        return next(e for e in self.ranks if e.rank == rank)

    def exit_code(self, strict: bool = False) -> int:
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return 1 if any(f.status in bad for f in self.findings) else 0

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in RankStatus}
        for e in self.ranks:
            out[e.status.value] += 1
        return out

    @property
    def hosts(self) -> list[str]:
        return sorted({e.host for e in self.ranks if e.host and e.join is not None})


def _failing_findings(check: Mapping[str, Any], strict: bool) -> list[Mapping[str, Any]]:
    """The findings that made a rank's check fail, as ``CheckReport.counted`` picks them: a finding
    about one variant counts when that variant is installed there."""
    env = check.get("environment") or {}
    raw = env.get("installed")
    installed: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    relevant = {DIST_VARIANT[d] for d in installed if d in DIST_VARIANT}
    bad = {"fail", "warn"} if strict else {"fail"}
    return [
        f
        for f in check.get("findings") or []
        if isinstance(f, Mapping)
        and f.get("status") in bad
        and (f.get("variant") is None or f.get("variant") in relevant)
    ]


def _smoke_reason(doc: Mapping[str, Any] | None) -> str:
    """The first failing smoke finding, if the document has one."""
    for f in (doc or {}).get("findings") or []:
        if isinstance(f, Mapping) and f.get("status") == "fail":
            return f": {f.get('message')} [{f.get('code')}]"
    return ""


def _infer_host(rank: int, joins: Mapping[int, JoinInfo]) -> str | None:
    """A missing rank's host, when the launcher places ranks in contiguous blocks of LOCAL_WORLD_SIZE
    per node (torchrun) and a rank of the same block joined."""
    sizes = {j.local_world_size for j in joins.values()}
    if len(sizes) != 1:
        return None
    (lws,) = sizes
    if not lws:
        return None
    hosts = {j.host for j in joins.values() if j.rank // lws == rank // lws and j.host}
    return hosts.pop() if len(hosts) == 1 else None


def _join_text(ranks: Iterable[int]) -> str:
    rs = list(ranks)
    return ("rank " if len(rs) == 1 else "ranks ") + ", ".join(map(str, rs))


def build_cluster_report(
    *,
    launcher: str,
    world_size: int,
    rendezvous: str,
    joins: Mapping[int, JoinInfo],
    results: Mapping[int, RankResult],
    missing: Iterable[int] = (),
    unfinished: Iterable[int] = (),
    transport: str = "gloo",
    transport_error: str | None = None,
    strict: bool = False,
    timeouts: Mapping[str, float] | None = None,
    smoke: bool = False,
    fields: Sequence[DriftField] | None = None,
) -> ClusterReport:
    """Assemble the report from what rank 0 received. Every rank of the world appears exactly once."""
    missing_set = set(missing)
    unfinished_set = set(unfinished) - missing_set
    tmo = dict(timeouts or {})
    entries: list[RankEntry] = []
    for rank in range(world_size):
        res = results.get(rank)
        join = joins.get(rank)
        if rank in missing_set:
            entries.append(
                RankEntry(rank, RankStatus.MISSING, None, None, host_guess=_infer_host(rank, joins))
            )
        elif res is None or rank in unfinished_set:
            entries.append(RankEntry(rank, RankStatus.UNFINISHED, join, None))
        elif res.error is not None:
            entries.append(RankEntry(rank, RankStatus.ERROR, join, res))
        else:
            entries.append(
                RankEntry(rank, RankStatus.OK if res.exit_code == 0 else RankStatus.FAILED, join, res)
            )

    findings: list[Finding] = []
    for e in entries:
        if e.status is RankStatus.MISSING:
            wait = f" within {tmo['join_s']:g} s" if "join_s" in tmo else ""
            where = f"; its node's other ranks run on {e.host_guess}" if e.host_guess else "; host unknown"
            findings.append(
                Finding(
                    "cluster-rank-missing",
                    Status.FAIL,
                    f"rank {e.rank} never joined{wait}{where}",
                    evidence=f"rendezvous {rendezvous}, world size {world_size}",
                    fix="Check that the launcher started it (srun/torchrun logs of that node) and that its node "
                    f"reaches {rendezvous}.",
                    subject=f"rank {e.rank}",
                )
            )
        elif e.status is RankStatus.UNFINISHED:
            wait = f" within {tmo['rank_s']:g} s" if "rank_s" in tmo else ""
            findings.append(
                Finding(
                    "cluster-rank-unfinished",
                    Status.FAIL,
                    f"{e.label()} joined but sent no result{wait}: its probe or smoke test hangs",
                    evidence=f"pid {e.join.pid}" if e.join and e.join.pid else None,
                    fix="Run `flashdoctor check -v` on that node; a hung NVML or import test points at the driver "
                    "or the install there. Raise --rank-timeout if it is only slow.",
                    subject=f"rank {e.rank}",
                )
            )
        elif e.status is RankStatus.ERROR:
            assert e.result is not None
            findings.append(
                Finding(
                    "cluster-rank-error",
                    Status.FAIL,
                    f"{e.label()} could not run its check: {e.result.error}",
                    subject=f"rank {e.rank}",
                )
            )
        elif e.status is RankStatus.FAILED:
            assert e.result is not None
            reasons: list[str] = []
            if e.result.check is not None:
                reasons = [
                    f"{f.get('message')} [{f.get('code')}]" for f in _failing_findings(e.result.check, strict)
                ]
            if e.result.smoke_error is not None:
                reasons.append(f"its smoke test could not run: {e.result.smoke_error}")
            elif e.result.smoke_passed is False:
                reasons.append("its smoke test failed" + _smoke_reason(e.result.smoke))
            if not reasons:
                reasons.append(f"its check exited {e.result.exit_code} (a --require not met)")
            findings.append(
                Finding(
                    "cluster-rank-failed",
                    Status.FAIL,
                    f"{e.label()} failed: "
                    + "; ".join(reasons[:3])
                    + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""),
                    fix=f"See that rank's findings (-v, or ranks[{e.rank}].check in --json).",
                    subject=f"rank {e.rank}",
                )
            )
        if e.result is not None and e.result.device_note:
            findings.append(
                Finding(
                    "cluster-no-gpu-for-rank",
                    Status.WARN,
                    f"{e.label()}: {e.result.device_note}",
                    fix="Start one rank per GPU (torchrun --nproc-per-node <GPUs>, srun --gpus-per-task=1).",
                    subject=f"rank {e.rank}",
                )
            )

    # Two ranks of one host on the same GPU: NCCL refuses it ("Duplicate GPU detected").
    owners: dict[tuple[str, str], list[int]] = {}
    for e in entries:
        if e.result is None or e.result.device is None or not e.host:
            continue
        gpus = ((e.result.check or {}).get("environment") or {}).get("gpus") or []
        uuid = gpus[0].get("uuid") if len(gpus) == 1 and isinstance(gpus[0], Mapping) else None
        owners.setdefault((e.host, uuid or f"device {e.result.device}"), []).append(e.rank)
    for (host, gpu), ranks in sorted(owners.items()):
        if len(ranks) > 1:
            findings.append(
                Finding(
                    "cluster-gpu-shared",
                    Status.FAIL,
                    f"{_join_text(ranks)} on host {host} were given the same GPU ({gpu})",
                    fix="Give each rank its own GPU: LOCAL_RANK must differ per node, or set CUDA_VISIBLE_DEVICES per task.",
                    subject=f"host {host}",
                )
            )

    checked = {
        e.rank: drift_values(e.result.check)
        for e in entries
        if e.result is not None and e.result.check is not None
    }
    drift = compute_drift(checked, fields)
    by_rank = {e.rank: e for e in entries}
    for d in drift:
        if d.majority is not None:
            odd = "; ".join(f"{by_rank[r].label()}: {d.value_of(r)}" for r in d.odd)
            msg = f"{d.label} differs across ranks: {d.majority} on {_join_text(d.groups[0][1])}; odd one(s) out: {odd}"
        else:
            msg = f"{d.label} differs across ranks, no majority: " + "; ".join(
                f"{v} on {_join_text(rs)}" for v, rs in d.groups
            )
        findings.append(
            Finding(
                "cluster-drift",
                d.status,
                msg,
                evidence=d.why,
                fix="Install the same build on every node, e.g. from one shared --wheelhouse (README 'Cluster preflight').",
                subject=d.field,
            )
        )

    if transport != "gloo":
        findings.append(
            Finding(
                "cluster-gloo-failed",
                Status.WARN,
                "the gloo gather over torch.distributed failed; the ranks' results were read from the rendezvous store",
                evidence=transport_error,
                fix="Check that the nodes reach each other on the interface gloo picks (GLOO_SOCKET_IFNAME).",
            )
        )
    counts = {s: sum(1 for e in entries if e.status is s) for s in RankStatus}
    if counts[RankStatus.OK] == world_size:
        findings.insert(
            0,
            Finding(
                "cluster-ranks-ok",
                Status.OK,
                f"all {world_size} ranks checked and passed"
                + (f" on {len({e.host for e in entries if e.host})} hosts" if world_size > 1 else ""),
            ),
        )
    return ClusterReport(
        launcher=launcher,
        world_size=world_size,
        rendezvous=rendezvous,
        ranks=tuple(entries),
        drift=drift,
        findings=tuple(findings),
        transport=transport,
        timeouts=tmo,
        smoke=smoke,
    )


def cluster_report_to_json(report: ClusterReport, strict: bool = False) -> dict[str, Any]:
    counts = report.counts()
    summary = {"ranks": report.world_size, **counts, "drift_fields": len(report.drift)}
    return {
        "schema": CLUSTER_SCHEMA_ID,
        "flashdoctor": __version__,
        "launcher": report.launcher,
        "world_size": report.world_size,
        "rendezvous": report.rendezvous,
        "transport": report.transport,
        "timeouts": report.timeouts,
        "smoke": report.smoke,
        "hosts": report.hosts,
        "ranks": [e.to_json() for e in report.ranks],
        "drift": [d.to_json() for d in report.drift],
        "findings": [f.to_json() for f in report.findings],
        "summary": summary,
        "exit_code": report.exit_code(strict=strict),
    }
