#!/usr/bin/env python3
"""Time `flashdoctor check` against `python -m torch.utils.collect_env`, side by side in one run.

All three are fresh processes of the same interpreter, run in turn, and the medians compared:

- `check`         the first answer a user gets (human output: torch's arch list is not read);
- `check --json`  the full report (also walks libtorch_cuda.so's fat binary for torch's arch list);
- collect_env     PyTorch's own environment report.

Goal (issue 17): check <= 0.10 x collect_env on a GPU machine.
Usage: python scripts/bench_check.py [--repeats N] [--python PATH] [--flashdoctor PATH] [--baseline PATH]
(--flashdoctor: flashdoctor's console script in its own venv, as the README installs it; it is given
--python PATH. Default: `PATH -m flashdoctor` with this checkout on PYTHONPATH. --baseline: another
flashdoctor's console script, e.g. an earlier commit's, timed in the same rounds: `check` against
`check`, side by side.)
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
GOAL = 0.10


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    dt = time.perf_counter() - t0
    if b"Traceback (most recent call last)" in p.stderr:  # a crash is not a timing
        sys.stderr.write(p.stderr.decode("utf-8", "replace")[-2000:])
        return dt, 99
    return dt, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--python", default=sys.executable, help="interpreter that has torch (and runs all three)"
    )
    ap.add_argument("--flashdoctor", help="flashdoctor's console script (its own venv); given --python")
    ap.add_argument("--baseline", help="another flashdoctor's console script, timed in the same rounds")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.flashdoctor:
        fd = [args.flashdoctor, "check", "--python", args.python]
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        # `python -m flashdoctor` checks the Python that runs it: the one with torch.
        fd = [args.python, "-m", "flashdoctor", "check"]
    runs = {
        "flashdoctor check": fd,
        "flashdoctor check --json": [*fd, "--json"],
        "torch collect_env": [args.python, "-m", "torch.utils.collect_env"],
    }
    if args.baseline:
        runs["baseline check"] = [args.baseline, "check", "--python", args.python]
        runs["baseline check --json"] = [args.baseline, "check", "--json", "--python", args.python]
    for cmd in runs.values():  # warm the page cache for all of them before measuring
        timed(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, cmd in runs.items():
            dt, rc = timed(cmd, env)
            ok = rc == 0 if name.startswith("torch") else rc in (0, 1)
            if not ok:
                what = "is torch installed in this interpreter?" if name.startswith("torch") else f"exit {rc}"
                print(f"{name} failed: {what}", file=sys.stderr)
                return 2
            times[name].append(dt)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:<26} median {med[name]:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in t)})")
    base = med["torch collect_env"]
    for name in ("flashdoctor check", "flashdoctor check --json"):
        ratio = med[name] / base
        verdict = ("met" if ratio <= GOAL else "NOT met") if name == "flashdoctor check" else "for reference"
        print(f"ratio {name} / collect_env = {ratio:.3f}  (goal <= {GOAL:.2f}: {verdict})")
    if args.baseline:
        for name in ("check", "check --json"):
            new, old = med[f"flashdoctor {name}"], med[f"baseline {name}"]
            print(f"flashdoctor {name} / baseline {name} = {new / old:.3f}  ({(new - old) * 1000:+.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
