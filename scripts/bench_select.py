#!/usr/bin/env python3
"""Time wheel selection over the full committed index, and compare it with a plain tag filter.

- selection: ``select_wheels`` (every entry of the variant evaluated, reasons kept, ranked) for a set
  of target machines; the median per call is the figure (goal: well under 100 ms).
- baseline: what pip does with a list of filenames — ``packaging.utils.parse_wheel_filename`` and a tag
  intersection with the target's supported tags — over the same filenames, side by side.
- also printed: loading the index (JSON + per-entry parsing; the schema pass cached / not cached).

Usage: python scripts/bench_select.py [--repeats N] [--index FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.utils import parse_wheel_filename  # noqa: E402

from flashdoctor.actions.inputs import load_target  # noqa: E402
from flashdoctor.decide.wheels import index as index_mod  # noqa: E402
from flashdoctor.decide.wheels import make_plan, select_wheels  # noqa: E402
from flashdoctor.decide.wheels.select import supported_tags  # noqa: E402

TARGETS = ("h100", "a100", "rtx4090", "b200", "rtx5090", "jetson-orin")
GOAL_MS = 100.0


def median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--index", default=str(ROOT / "wheels_index.json"))
    args = ap.parse_args()

    doc = json.loads(Path(args.index).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    index_mod.index_from_document(doc, origin=args.index, validate=True)
    load_validated = (time.perf_counter() - t0) * 1000
    index_mod.parse_wheel_name.cache_clear()
    t0 = time.perf_counter()
    index = index_mod.index_from_document(doc, origin=args.index, validate=False)
    load_cached = (time.perf_counter() - t0) * 1000
    print(f"index: {len(index.entries)} wheels, {Path(args.index).stat().st_size / 1e6:.2f} MB")
    print(f"load (per-entry parsing, schema pass cached): {load_cached:7.1f} ms")
    print(f"load (first time, with the JSON Schema pass): {load_validated:7.1f} ms")
    print()
    print(
        f"{'target':12} {'fa2 wheels':>10} {'select ms':>10} {'plan ms':>9} {'baseline ms':>12} {'ratio':>6}"
    )
    worst = 0.0
    filenames = [e.filename for e in index.for_variant("fa2")]
    for name in TARGETS:
        env = load_target(str(ROOT / "tests" / "targets" / f"{name}.json"))
        tags = supported_tags(env)

        def plain_filter(tags=tags) -> None:  # type: ignore[no-untyped-def]
            for f in filenames:
                _n, _v, _b, wtags = parse_wheel_filename(f)
                _ = bool(wtags & tags)

        sel_ms = median_ms(lambda env=env: select_wheels(env, "fa2", index), args.repeats)
        plan_ms = median_ms(lambda env=env: make_plan(env, "fa2", index), args.repeats)
        base_ms = median_ms(plain_filter, args.repeats)
        worst = max(worst, sel_ms)
        print(
            f"{name:12} {len(filenames):10} {sel_ms:10.1f} {plan_ms:9.1f} {base_ms:12.1f} {sel_ms / base_ms:6.2f}"
        )
    print()
    print(f"slowest selection {worst:.1f} ms: {worst / GOAL_MS:.2f} of the {GOAL_MS:.0f} ms goal")
    return 0 if worst < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
