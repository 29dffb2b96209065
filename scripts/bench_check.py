#!/usr/bin/env python3
"""Time `flashdoctor check` against `python -m torch.utils.collect_env`, side by side in one run.

Both are run as fresh processes of the same interpreter, alternating, and the medians compared.
Goal: ratio <= 0.6 (issue 2). Usage: python scripts/bench_check.py [--repeats N] [--python PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    dt = time.perf_counter() - t0
    return dt, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="interpreter that has torch (and runs both)")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    check = [args.python, "-m", "flashdoctor", "check", "--json"]
    collect = [args.python, "-m", "torch.utils.collect_env"]
    timed(check, env)  # warm the page cache for both before measuring
    timed(collect, env)
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.repeats):
        dt, rc = timed(check, env)
        if rc not in (0, 1):
            print(f"flashdoctor check failed with exit {rc}", file=sys.stderr)
            return 2
        a.append(dt)
        dt, rc = timed(collect, env)
        if rc != 0:
            print("torch.utils.collect_env failed: is torch installed in this interpreter?", file=sys.stderr)
            return 2
        b.append(dt)
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"flashdoctor check      median {ma:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in a)})")
    print(f"torch collect_env      median {mb:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in b)})")
    print(
        f"ratio check/collect_env = {ma / mb:.2f}  (goal <= 0.60: {'met' if ma / mb <= 0.6 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
