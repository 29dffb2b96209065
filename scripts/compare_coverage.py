#!/usr/bin/env python3
"""Compare `flashdoctor wheels --coverage` (FA2) with another coverage table, cell by cell.

The other table is the wheel dataset's coverage_fa2.json: {"x86_64" | "aarch64" | "win": [{"torch",
"cuda" ("128"), "python" ("cp312"), "sources": [...]}, ...]}. For every cell it prints where the two
disagree about which sources have a wheel that would load, grouped by the kind of disagreement.

Usage: python scripts/compare_coverage.py PATH/coverage_fa2.json [--index FILE] [--examples N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashdoctor.decide.wheels import load_index  # noqa: E402
from flashdoctor.decide.wheels.coverage import coverage  # noqa: E402

PLATFORM = {"x86_64": "linux_x86_64", "aarch64": "linux_aarch64", "win": "win_amd64"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other")
    ap.add_argument("--index", default=None)
    ap.add_argument("--examples", type=int, default=4)
    args = ap.parse_args()
    theirs = json.loads(Path(args.other).read_text(encoding="utf-8"))
    mine = coverage(load_index(args.index), "fa2")
    total = agree = 0
    kinds: dict[str, list[str]] = defaultdict(list)
    for arch, cells in theirs.items():
        platform = PLATFORM[arch]
        by_key = {
            (c.torch, c.cuda.replace(".", ""), "cp" + c.python.replace(".", "")): c for c in mine[platform]
        }
        for cell in cells:
            total += 1
            key = (cell["torch"], cell["cuda"], cell["python"])
            m = by_key.get(key)
            if m is None:
                kinds["cell not in flashdoctor's grid"].append(f"{platform} {key}")
                continue
            ours = set(m.community) | ({"official"} if m.has_official else set())
            other = set(cell["sources"])
            if ours == other:
                agree += 1
                continue
            for s in sorted(other - ours):
                kinds[f"they list {s}, flashdoctor does not"].append(
                    f"{platform} torch {key[0]} cu{key[1]} {key[2]}"
                )
            for s in sorted(ours - other):
                kinds[f"flashdoctor finds {s}, they do not"].append(
                    f"{platform} torch {key[0]} cu{key[1]} {key[2]}"
                )
    print(f"{agree}/{total} cells agree")
    for kind, cells in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        print(f"- {kind}: {len(cells)} cells, e.g. " + "; ".join(cells[: args.examples]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
