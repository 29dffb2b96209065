"""Compare the JSON reports of scripts/gpu_smoke_bench.sh with the reference figures, side by side.

    python scripts/compare_bench.py OUTDIR

The reference figures were measured on one H100 80GB HBM3 with torch 2.11 (docs facts.md; the issue
"Smoke test and bench"). The goal is to reproduce them within ±10% on that machine; each row prints
expected, measured, their ratio and whether it is inside ±10%. On another GPU (an H200, the CPU mode)
the ratios are printed but mean little: the script says so. It also prints the smoke's wall time
against its 20 s goal. It only reads files; the exit status is always 0 (a measurement, not a test).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# (report file, backend, mode) -> expected ms; H100 80GB HBM3, torch 2.11.0+cu130, bf16.
REFERENCE_MS: dict[tuple[str, str, str], float] = {
    ("bench-long", "sdpa-cudnn", "fwd"): 1.70,
    ("bench-long", "sdpa-flash", "fwd"): 3.12,
    ("bench-long", "sdpa-efficient", "fwd"): 6.1,
    ("bench-long", "sdpa-math", "fwd"): 30.9,
    ("bench-long", "sdpa-cudnn", "fwd_bwd"): 7.2,
    ("bench-long", "sdpa-flash", "fwd_bwd"): 12.6,
    ("bench-long", "sdpa-efficient", "fwd_bwd"): 25.9,
    ("bench-long", "sdpa-math", "fwd_bwd"): 61.4,
    ("bench-long", "fa2", "fwd"): 2.85,  # the minimal FA2 build (head dim 128, bf16, sm90)
    ("bench-long-causal", "sdpa-cudnn", "fwd"): 0.92,
    ("bench-long-causal", "sdpa-flash", "fwd"): 1.74,
    ("bench-long-causal", "fa2", "fwd"): 1.59,
    ("bench-seed", "sdpa-math", "fwd"): 0.49,
    ("bench-seed", "sdpa-efficient", "fwd"): 0.081,
    ("bench-seed", "sdpa-flash", "fwd"): 0.047,
    ("bench-seed", "sdpa-cudnn", "fwd"): 0.036,
}
# TFLOP/s quoted beside those times (the FLOP formula must turn one into the other).
REFERENCE_TFLOPS: dict[tuple[str, str, str], float] = {
    ("bench-long", "sdpa-cudnn", "fwd"): 649,
    ("bench-long", "sdpa-flash", "fwd"): 353,
    ("bench-long", "sdpa-efficient", "fwd"): 180,
    ("bench-long", "sdpa-math", "fwd"): 36,
    ("bench-long", "fa2", "fwd"): 385,
    ("bench-long-causal", "sdpa-cudnn", "fwd"): 598,
    ("bench-long-causal", "sdpa-flash", "fwd"): 316,
    ("bench-long-causal", "fa2", "fwd"): 345,
}
REFERENCE_PEAK_TFLOPS = 790.0  # bf16 matmul on such a machine
REFERENCE_GPU = "H100 80GB HBM3"
SMOKE_GOAL_S = 20.0
TOLERANCE = 0.10


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, json.JSONDecodeError) as exc:
        print(f"  {path.name}: unreadable ({exc})")
        return None


def _timings(out: Path) -> dict[str, float]:
    t: dict[str, float] = {}
    try:
        for line in (out / "timings.txt").read_text().splitlines():
            key, _, val = line.partition(" ")
            t[key] = float(val)
    except (OSError, ValueError):
        pass
    return t


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = Path(argv[1])
    comparable = True
    print(f"reference figures: {REFERENCE_GPU}, torch 2.11, bf16 (facts.md); goal: within ±{TOLERANCE:.0%}")
    rows: list[tuple[str, ...]] = []
    for name in ("bench-long", "bench-long-causal", "bench-seed"):
        doc = _load(out / f"{name}.json")
        if doc is None:
            continue
        gpu = (doc.get("gpu") or {}).get("name") or "?"
        if doc.get("device") != "cuda" or REFERENCE_GPU not in gpu:
            comparable = False
        print(f"{name}: {doc['shape']['label']} on {gpu} (torch {doc.get('torch')})", end="")
        peak = doc.get("matmul_peak_tflops")
        print(
            f"; bf16 matmul peak {peak:.0f} TFLOP/s (reference ~{REFERENCE_PEAK_TFLOPS:.0f})" if peak else ""
        )
        if doc.get("skipped_reason"):
            print(f"  skipped: {doc['skipped_reason']}")
            continue
        by_backend = {r["backend"]: r for r in doc["rows"]}
        for (file, backend, mode), ms in REFERENCE_MS.items():
            if file != name:
                continue
            r = by_backend.get(backend)
            got = None if r is None else r.get(f"{mode}_ms")
            tf_ref = REFERENCE_TFLOPS.get((file, backend, mode))
            tf_got = None if r is None else r.get(f"{mode}_tflops")
            if got is None:
                status = "absent" if r is None or r["status"] == "not-installed" else r["status"]
                rows.append(
                    (name, backend, mode, f"{ms:g}", "-", "-", status, f"{tf_ref:g}" if tf_ref else "", "")
                )
                continue
            ratio = got / ms
            inside = abs(ratio - 1) <= TOLERANCE
            rows.append(
                (
                    name,
                    backend,
                    mode,
                    f"{ms:g}",
                    f"{got:.3g}",
                    f"{ratio:.2f}",
                    "within ±10%" if inside else "OFF",
                    f"{tf_ref:g}" if tf_ref else "",
                    f"{tf_got:.0f}" if tf_got is not None else "",
                )
            )
        fastest = next((r for r in doc["rows"] if r.get("fastest_fwd_bwd") or r.get("fastest_fwd")), None)
        if doc.get("recommendation"):
            print(f"  → {doc['recommendation']}")
        elif fastest:
            print(f"  fastest: {fastest['title']}")
    header = ("report", "backend", "mode", "ref ms", "ms", "ratio", "", "ref TF/s", "TF/s")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    measured = [r for r in rows if r[5] != "-"]
    inside = sum(r[6] == "within ±10%" for r in measured)
    print(f"{inside}/{len(measured)} measured figures within ±{TOLERANCE:.0%} of the reference")
    if not comparable:
        print(
            "note: not measured on an H100 80GB HBM3 with CUDA: the ratios above are not a reproduction check"
        )

    smoke = _load(out / "smoke.json")
    t = _timings(out)
    if smoke is not None:
        counts: dict[str, int] = {}
        for r in smoke.get("results", []):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(
            f"smoke: {smoke['status']} (exit {smoke['exit_code']}), "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f"; torch import {smoke.get('torch_import_s') or 0:.1f} s, {smoke.get('runs')} runner process(es)"
        )
        for f in smoke.get("findings", []):
            if f["status"] in ("fail", "warn"):
                print(f"  {f['status']}: {f['message']} [{f['code']}]")
    for key, label in (("smoke_json_wall_s", "smoke --json"), ("smoke_human_wall_s", "smoke (2nd run)")):
        if key in t:
            verdict = "meets" if t[key] <= SMOKE_GOAL_S else "MISSES"
            print(f"{label}: {t[key]:.1f} s wall, {verdict} the {SMOKE_GOAL_S:.0f} s goal")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
