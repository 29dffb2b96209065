#!/usr/bin/env python3
"""Time the environment probe (flashdoctor/probe/_interp.py, the script `check` runs in the target
interpreter) of this tree against another tree's, side by side, in an environment with many installed
distributions: what reading every distribution's Requires-Dist (what installed packages require of
FlashAttention) costs `check`.

A temporary directory gets N distributions (dist-info with a METADATA of ~8 KB each, a tenth of them
requiring flash-attn) and is put on PYTHONPATH; each script runs R times in turn, fresh processes of this
interpreter; the medians are compared.

Usage: python scripts/bench_interp_probe.py --baseline DIR [--dists 400] [--repeats 15]
(DIR: another checkout, e.g. `git worktree add /tmp/base HEAD~1`.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_site(root: Path, n: int) -> None:
    body = "A long description line of a package's README.\n" * 160
    for i in range(n):
        info = root / f"pkg{i:04d}-1.0.dist-info"
        info.mkdir(parents=True)
        reqs = "Requires-Dist: numpy\nRequires-Dist: packaging>=20\n"
        if i % 10 == 0:
            reqs += "Requires-Dist: flash-attn<=2.6.3,>=2.1\n"
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: pkg{i:04d}\nVersion: 1.0\n{reqs}\n{body}", encoding="utf-8"
        )


def config(tree: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = "from flashdoctor.probe import interp_config; print(interp_config())"  # as launch_interp passes it
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout


def timed(script: Path, cfg: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(script), cfg], capture_output=True, text=True, env=env, check=True
    )
    dt = time.perf_counter() - t0
    json.loads(out.stdout)
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path, help="the other checkout")
    ap.add_argument("--dists", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    scripts = {
        "this": ROOT / "flashdoctor/probe/_interp.py",
        "baseline": args.baseline / "flashdoctor/probe/_interp.py",
    }
    cfg = config(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        make_site(site, args.dists)
        env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
        times: dict[str, list[float]] = {k: [] for k in scripts}
        for _ in range(args.repeats):
            for name, script in scripts.items():
                times[name].append(timed(script, cfg, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(
            f"{k:9s} median {v * 1000:.1f} ms  (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})"
        )
    print(
        f"this - baseline: {(med['this'] - med['baseline']) * 1000:+.1f} ms with {args.dists} distributions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
