#!/usr/bin/env python3
"""Measure explain's resemblance fallback where it matters: on logs the signatures did not recognise.

Each tuning split dev2.json, dev3.json, ... was scored before any signature was tuned on it. This script
takes, per split, the signature data of the commit that added the split (its knowledge before tuning, read
with ``git show``; today's resembles_when gates added) and the resemblance corpus built from every other
tuning split (leave one split out: the split's own logs are never in it), explains the split's logs with
today's engine and that knowledge, and for the logs no signature recognised counts what the resemblance
fallback offers first: the right code, a wrong one, or nothing. ``--no-corpus`` measures the signatures'
words alone. Holdout splits are never read. Needs the repository's git history.

    PYTHONPATH=. python scripts/eval_resemblance.py [--threshold 0.1] [--margin 0.04] [--no-corpus] [-v]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import build_resemblance  # noqa: E402

from flashdoctor.decide.explain import engine  # noqa: E402
from flashdoctor.decide.explain import resemble as res  # noqa: E402
from flashdoctor.knowledge import signatures as sigs  # noqa: E402

EVAL = ROOT / "tests" / "data" / "explain_eval"
SIGNATURES = "flashdoctor/data/signatures.json"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def knowledge_before(split: Path) -> dict[str, Any] | None:
    """The signature data of the commit that added ``split`` (None without history)."""
    rel = split.relative_to(ROOT).as_posix()
    commits = _git("log", "--diff-filter=A", "--format=%H", "--", rel).split()
    if not commits:
        return None
    raw = dict(json.loads(_git("show", f"{commits[-1]}:{SIGNATURES}")))
    # The fallback's own gate (resembles_when) is part of the mechanism measured, not of the tuning.
    today = json.loads((ROOT / SIGNATURES).read_text(encoding="utf-8"))["codes"]
    for code, info in raw["codes"].items():
        if "resembles_when" in today.get(code, {}):
            info["resembles_when"] = today[code]["resembles_when"]
    return raw


def with_knowledge(raw: dict[str, Any], corpus: dict[str, Any]) -> None:
    """Make ``raw`` the signature data and ``corpus`` the resemblance corpus every module reads (both
    are cached once per process)."""
    data = {"signatures": raw, "resemblance": corpus}
    sigs.load_data = data.__getitem__  # type: ignore[assignment]
    sigs.knowledge.cache_clear()
    sigs.resemblance_corpus.cache_clear()
    res._model.cache_clear()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threshold", type=float, default=res.THRESHOLD)
    ap.add_argument("--margin", type=float, default=res.MARGIN)
    ap.add_argument("--no-corpus", action="store_true", help="the signatures' words alone")
    ap.add_argument("-v", "--verbose", action="store_true", help="list each unrecognised log's outcome")
    args = ap.parse_args(argv)
    res.THRESHOLD, res.MARGIN = args.threshold, args.margin

    splits = sorted(EVAL.glob("dev[0-9]*.json"), key=lambda p: int(p.stem[3:]))
    totals = {"right": 0, "wrong": 0, "nothing": 0}
    for split in splits:
        raw = knowledge_before(split)
        if raw is None:
            print(f"{split.name}: not in git history; skipped")
            continue
        corpus = build_resemblance.build(exclude=split.stem)
        if args.no_corpus:
            corpus["codes"] = {}
        with_knowledge(raw, corpus)
        counts = {"right": 0, "wrong": 0, "nothing": 0}
        for case in json.loads(split.read_text(encoding="utf-8"))["cases"]:
            expl = engine.explain_bytes(case["log"].encode("utf-8"), None)
            if expl.recognised:
                continue
            first = expl.diagnoses[0].code if expl.diagnoses else None
            kind = "nothing" if first is None else ("right" if first in case["expected"] else "wrong")
            counts[kind] += 1
            if args.verbose:
                print(
                    f"  {split.stem:5} {kind:7} {first or '-':28} expected {case['expected']}  {case['id']}"
                )
        print(
            f"{split.name}: unrecognised {sum(counts.values())}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        for k, v in counts.items():
            totals[k] += v
    print(
        f"all: unrecognised {sum(totals.values())}: right {totals['right']}, wrong {totals['wrong']}, "
        f"nothing {totals['nothing']} (threshold {res.THRESHOLD}, margin {res.MARGIN})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
