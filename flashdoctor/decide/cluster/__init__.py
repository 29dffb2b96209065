"""The cluster report: per-rank results, drift across ranks, cluster findings and the exit code.

Pure: built from the documents the ranks sent (plain JSON, so that ranks on another flashdoctor or
Python still compare) and from what the rendezvous saw (who joined, who never finished). The JSON form
is public interface (README "Cluster report JSON", schema flashdoctor/schemas/cluster-report.schema.json).

- :mod:`.ranks`: what the ranks send (JoinInfo, RankResult), what rank 0 gathered of them (Gathered)
  and a rank's status;
- :mod:`.drift`: the fields compared across ranks and the vote (drift judgement);
- :mod:`.report`: the report's assembly (entries, findings, exit code, JSON form).
"""

from __future__ import annotations

from flashdoctor.decide.cluster.drift import Drift, DriftField, compute_drift, drift_fields, drift_values
from flashdoctor.decide.cluster.ranks import Gathered, JoinInfo, RankResult, RankStatus
from flashdoctor.decide.cluster.report import (
    CLUSTER_SCHEMA_ID,
    ClusterReport,
    RankEntry,
    build_cluster_report,
    cluster_report_to_json,
)

__all__ = [
    "CLUSTER_SCHEMA_ID",
    "ClusterReport",
    "Drift",
    "DriftField",
    "Gathered",
    "JoinInfo",
    "RankEntry",
    "RankResult",
    "RankStatus",
    "build_cluster_report",
    "cluster_report_to_json",
    "compute_drift",
    "drift_fields",
    "drift_values",
]
