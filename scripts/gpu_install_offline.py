#!/usr/bin/env python3
"""GPU machine, no network: install the FA2 wheel that `flashdoctor build` left in a wheelhouse, then prove it.

    python3 scripts/gpu_install_offline.py WHEELHOUSE [--python PY]

Steps, each printed with its wall time:
  1. `flashdoctor install --fa2 --wheelhouse DIR --dry-run --json`: the plan must be "wheel" from the wheelhouse
     (the selector finds no prebuilt wheel for this torch; the fingerprinted local build fits);
  2. `flashdoctor install --fa2 --wheelhouse DIR --yes --json`: install, import check, smoke test on the GPU;
  3. `flashdoctor check --require fa2 --json`: FA2 is "ready".
Exit 0 only when all three hold. Nothing here uses the network. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fd(py: str, *args: str) -> tuple[int, dict, float, str]:  # type: ignore[type-arg]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    p = subprocess.run(
        [py, "-m", "flashdoctor", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    dt = time.perf_counter() - t0
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        doc = {}
    return p.returncode, doc, dt, p.stdout + p.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheelhouse")
    ap.add_argument("--python", default=sys.executable, help="target interpreter (default: this one)")
    a = ap.parse_args()
    wh = str(Path(a.wheelhouse).resolve())
    ok = True

    rc, plan, dt, out = fd(
        a.python, "install", "--fa2", "--python", a.python, "--wheelhouse", wh, "--dry-run", "--json"
    )
    wheel = plan.get("wheel") or {}
    print(
        f"[1] plan ({dt:.1f}s): action={plan.get('action')} source={wheel.get('source')} wheel={wheel.get('filename')}"
    )
    for n in plan.get("wheelhouse_notes", []):
        print(f"    wheelhouse: {n}")
    if rc != 0 or plan.get("action") != "wheel" or wheel.get("source") != "wheelhouse":
        print(out[-3000:])
        return 1

    rc, res, dt, out = fd(
        a.python, "install", "--fa2", "--python", a.python, "--wheelhouse", wh, "--yes", "--json"
    )
    print(f"[2] install ({dt:.1f}s): status={res.get('status')} exit={rc} installed={res.get('installed')}")
    for s in res.get("steps", []):
        print(f"    {'ok ' if s['ok'] else 'BAD'} {s['name']:<15} {s['seconds']:>6.1f}s  {s['detail']}")
    for w in res.get("warnings", []):
        print(f"    warning: {w}")
    smoke = res.get("smoke") or {}
    print(f"    smoke: {smoke.get('summary')}")
    if rc != 0 or res.get("status") != "installed" or not smoke.get("ok"):
        print(out[-4000:])
        ok = False

    rc, chk, dt, out = fd(a.python, "check", "--require", "fa2", "--python", a.python, "--json")
    verdict = (chk.get("verdicts") or {}).get("fa2", {}).get("verdict")
    print(f"[3] check --require fa2 ({dt:.1f}s): verdict={verdict} exit={rc}")
    if rc != 0:
        ok = False
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
