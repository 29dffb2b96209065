"""The cluster report: per-rank entries, cluster findings, drift and the exit code, assembled from what rank
0 received (flashdoctor.decide.cluster)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flashdoctor import __version__
from flashdoctor.decide.cluster.drift import Drift, DriftField, compute_drift, drift_values, gpu_text
from flashdoctor.decide.cluster.ranks import Gathered, JoinInfo, RankResult, RankStatus
from flashdoctor.knowledge.variants import DIST_VARIANT, VARIANTS
from flashdoctor.model.findings import Finding, Status

CLUSTER_SCHEMA_ID = "flashdoctor/cluster/1"


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
        return dev + " + ".join(gpu_text(g) for g in gpus if isinstance(g, Mapping))

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
    transport: str  # "gloo", or "store" when the ranks' gloo group failed (results: always the store)
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


_WORLD_FIX = (
    "Start every rank with the same WORLD_SIZE and a rank of its own (torchrun sets both; under srun, "
    "RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS, or leave them unset)."
)


def _join_text(ranks: Iterable[int]) -> str:
    rs = list(ranks)
    return ("rank " if len(rs) == 1 else "ranks ") + ", ".join(map(str, rs))


def build_cluster_report(
    gathered: Gathered,
    *,
    launcher: str,
    world_size: int,
    rendezvous: str,
    strict: bool = False,
    timeouts: Mapping[str, float] | None = None,
    smoke: bool = False,
    fields: Sequence[DriftField] | None = None,
) -> ClusterReport:
    """Assemble the report from what rank 0 received. Every rank of the world appears exactly once."""
    joins, results, transport = gathered.joins, gathered.results, gathered.transport
    missing_set = set(gathered.missing)
    unfinished_set = set(gathered.unfinished) - missing_set
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

    by_rank = {e.rank: e for e in entries}
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

    # Ranks started for another job size: the report (and its "passed") is about rank 0's world only.
    others: dict[int, list[int]] = {}
    for r, j in sorted(joins.items()):
        if j.world_size is not None and j.world_size != world_size:
            others.setdefault(j.world_size, []).append(r)
    for size, ranks in sorted(others.items()):
        named = ", ".join(by_rank[r].label() for r in ranks) if len(ranks) <= 3 else _join_text(ranks)
        findings.append(
            Finding(
                "cluster-world-size-mismatch",
                Status.FAIL,
                f"{named} {'was' if len(ranks) == 1 else 'were'} started with WORLD_SIZE {size}, rank 0 with "
                f"{world_size}: the ranks disagree on the job's size",
                fix=_WORLD_FIX,
                subject=f"WORLD_SIZE {size}",
            )
        )
    if gathered.extra_joins:
        n = gathered.extra_joins
        findings.append(
            Finding(
                "cluster-world-size-mismatch",
                Status.FAIL,
                f"{n} more process{'es' if n != 1 else ''} joined than ranks 0-{world_size - 1}: started with "
                "another WORLD_SIZE, or as a rank already taken",
                fix=_WORLD_FIX,
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
                fix="Install the same build on every node, e.g. from one shared --wheelhouse (docs/cluster.md).",
                subject=d.field,
            )
        )

    if transport != "gloo":
        findings.append(
            Finding(
                "cluster-gloo-failed",
                Status.WARN,
                "the ranks' gloo group over torch.distributed failed; the outcome went through the rendezvous store",
                evidence=gathered.transport_error,
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
