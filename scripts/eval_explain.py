#!/usr/bin/env python3
"""Score `flashdoctor explain` on the real-failure evaluation set (tests/data/explain_eval/).

Each case holds a log excerpt as posted in a public issue thread and the flashdoctor codes that name its
confirmed cause (`expected`, best first). A case counts as a top-1 hit when the first diagnosis is one of
`expected`, a top-3 hit when one of the first three is. Explain runs without probing the machine
(env=None, the equivalent of `explain --no-probe`), in-process when the engine can be imported, else
through the CLI in a subprocess. No network is needed.

    PYTHONPATH=. python scripts/eval_explain.py                 # tune split (cases.json)
    PYTHONPATH=. python scripts/eval_explain.py --holdout -v    # holdout split, list the misses
    PYTHONPATH=. python scripts/eval_explain.py --cases FILE --json
    PYTHONPATH=. python scripts/eval_explain.py --holdout --summary-only   # the aggregate score only
    PYTHONPATH=. python scripts/eval_explain.py --dev -v         # dev split (dev.json, built to tune on)

Tune signatures against cases.json only; run --holdout to report, not to tune.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "explain_eval"

Runner = Callable[[bytes], list[str]]


def _in_process() -> tuple[Runner, str] | None:
    """explain_bytes from wherever the installed/PYTHONPATH flashdoctor keeps it (its path moved once)."""
    import importlib

    fn = None
    origin = ""
    for mod in ("flashdoctor.explain", "flashdoctor.decide.explain"):
        try:
            module = importlib.import_module(mod)
            fn = module.explain_bytes
            origin = module.__file__ or mod
            break
        except (ImportError, AttributeError):
            continue
    if fn is None:
        return None
    kwargs = _releases_kwargs()

    def run(data: bytes) -> list[str]:
        return [d.code for d in fn(data, None, **kwargs).diagnoses]

    return run, f"in-process ({origin})"


def _releases_kwargs() -> dict[str, Any]:
    """What `explain --no-probe` passes besides the log: the bundled index's release table (where this
    flashdoctor has one; older code has none and gets nothing)."""
    try:
        from flashdoctor.decide.wheels.index import release_torch
    except ImportError:
        return {}
    doc = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))
    table = release_torch(doc)
    return {"releases": lambda: table}


def _subprocess() -> tuple[Runner, str]:
    cmd = [sys.executable, "-m", "flashdoctor", "explain", "--no-probe", "--json"]

    def run(data: bytes) -> list[str]:
        with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as f:
            f.write(data)
            path = f.name
        try:
            proc = subprocess.run([*cmd, path], capture_output=True, timeout=120)
        finally:
            os.unlink(path)
        try:
            return [d["code"] for d in json.loads(proc.stdout)["diagnoses"]]
        except (ValueError, KeyError, TypeError):
            sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
            raise SystemExit(f"explain CLI gave no JSON (exit {proc.returncode})") from None

    return run, "subprocess: " + " ".join(cmd[1:])


def make_runner(force_cli: bool) -> tuple[Runner, str]:
    if not force_cli:
        found = _in_process()
        if found is None and str(ROOT) not in sys.path:
            sys.path.append(str(ROOT))  # last resort: the checkout this script lives in
            found = _in_process()
        if found is not None:
            return found
    return _subprocess()


def evaluate(cases: list[dict[str, Any]], run: Runner) -> dict[str, Any]:
    rows, times = [], []
    for case in cases:
        data = case["log"].encode("utf-8")
        t0 = time.perf_counter()
        got = run(data)
        times.append(time.perf_counter() - t0)
        expected = case["expected"]
        rows.append(
            {
                "id": case["id"],
                "expected": expected,
                "got": got[:3],
                "top1": bool(got) and got[0] in expected,
                "top3": any(code in expected for code in got[:3]),
                "none": not got,
                "confidence": case.get("confidence"),
            }
        )
    n = len(rows)

    def pct(k: int) -> float:
        return round(100.0 * k / n, 1) if n else 0.0

    top1 = sum(r["top1"] for r in rows)
    top3 = sum(r["top3"] for r in rows)
    none = sum(r["none"] for r in rows)
    by_conf: dict[str, dict[str, int]] = {}
    for conf in sorted({r["confidence"] for r in rows if r["confidence"]}):
        sub = [r for r in rows if r["confidence"] == conf]
        by_conf[conf] = {
            "cases": len(sub),
            "top1": sum(r["top1"] for r in sub),
            "top3": sum(r["top3"] for r in sub),
        }
    # Cases whose confirmed cause no code names (expected []): always a top-1 miss; the best explain can do
    # there is to name nothing rather than a wrong code.
    uncoded = [r for r in rows if not r["expected"]]
    return {
        "cases": n,
        "uncoded": len(uncoded),
        "uncoded_quiet": sum(r["none"] for r in uncoded),
        "coded_top1": top1,
        "coded_cases": n - len(uncoded),
        "top1": top1,
        "top1_pct": pct(top1),
        "top3": top3,
        "top3_pct": pct(top3),
        "no_diagnosis": none,
        "median_ms": round(1000 * statistics.median(times), 3) if times else 0.0,
        "by_confidence": by_conf,
        "misses": [r for r in rows if not r["top1"]],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cases", type=Path, help="evaluation file (default: tests/data/explain_eval/cases.json)"
    )
    ap.add_argument("--holdout", action="store_true", help="use holdout.json instead of cases.json")
    ap.add_argument("--dev", action="store_true", help="use dev.json instead of cases.json")
    ap.add_argument(
        "--summary-only",
        action="store_true",
        help="print only the aggregate scores (no case ids, no per-code rows): for the holdout split",
    )
    ap.add_argument("--cli", action="store_true", help="always run the CLI in a subprocess")
    ap.add_argument("-v", "--verbose", action="store_true", help="list each miss (id, expected, got)")
    ap.add_argument("--by-code", action="store_true", help="top-1 hits per first expected code")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = ap.parse_args(argv)

    default = "holdout.json" if args.holdout else "dev.json" if args.dev else "cases.json"
    path = args.cases or DATA / default
    doc = json.loads(path.read_text(encoding="utf-8"))
    cases = doc["cases"] if isinstance(doc, dict) else doc
    run, how = make_runner(args.cli)
    res = evaluate(cases, run)

    if args.summary_only:
        args.verbose = args.by_code = False
        res["by_confidence"] = {}
    if args.json:
        out = {k: v for k, v in res.items() if k != "rows"}
        if args.summary_only:
            out.pop("misses")
        out["file"] = str(path)
        out["runner"] = how
        if not args.verbose:
            out["misses"] = [m["id"] for m in res["misses"]]
        print(json.dumps(out, indent=2))
        return 0

    n = res["cases"]
    print(f"{path.name}: {n} cases  [{how}]")
    print(f"  top-1: {res['top1']}/{n} ({res['top1_pct']}%)")
    print(f"  top-3: {res['top3']}/{n} ({res['top3_pct']}%)")
    print(f"  no diagnosis: {res['no_diagnosis']}")
    print(
        f"  cases no code names: {res['uncoded']} (nothing named for {res['uncoded_quiet']}); "
        f"top-1 on the others: {res['coded_top1']}/{res['coded_cases']}"
    )
    print(f"  median time per log: {res['median_ms']} ms")
    for conf, c in res["by_confidence"].items():
        print(f"  {conf}: top-1 {c['top1']}/{c['cases']}, top-3 {c['top3']}/{c['cases']}")
    if args.by_code:
        tot: Counter[str] = Counter()
        hit: Counter[str] = Counter()
        for r in res["rows"]:
            tot[r["expected"][0]] += 1
            hit[r["expected"][0]] += r["top1"]
        print("  top-1 by expected code:")
        for code, k in tot.most_common():
            print(f"    {code:30s} {hit[code]}/{k}")
    if args.verbose and res["misses"]:
        print("  misses (top-1):")
        for m in res["misses"]:
            flag = "" if not m["top3"] else "  [top-3 hit]"
            print(f"    {m['id']}: expected {m['expected']} got {m['got'] or ['(none)']}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
