#!/usr/bin/env python3
"""Write flashdoctor/data/resemblance.json: the words of the real failure logs in explain's tuning
splits (tests/data/explain_eval/*.json except holdout*), per confirmed cause code, for the resemblance
fallback (flashdoctor.decide.explain.resemble). Holdout splits are never read.

    python scripts/build_resemblance.py           # (re)write the data file
    python scripts/build_resemblance.py --check   # exit 1 when the committed file is stale

tests/decide/explain/test_resemble.py fails when the committed file differs from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashdoctor.decide.explain.resemble import corpus_words  # noqa: E402

EVAL = ROOT / "tests" / "data" / "explain_eval"
OUT = ROOT / "flashdoctor" / "data" / "resemblance.json"
WEIGHT = 0.3  # a corpus word against a signature's own (chosen by scripts/eval_resemblance.py)
MIN_LOGS = 2  # a word must be in this many logs to be kept


def tuning_splits(exclude: str | None = None) -> list[Path]:
    """The tuning splits, in a stable order (never a holdout; ``exclude`` leaves one more out)."""
    return sorted(p for p in EVAL.glob("*.json") if not p.stem.startswith("holdout") and p.stem != exclude)


def labelled_logs(splits: list[Path]) -> list[tuple[str, str]]:
    """(first confirmed code, log) of every case with a code."""
    out = []
    for split in splits:
        for case in json.loads(split.read_text(encoding="utf-8"))["cases"]:
            if case["expected"]:
                out.append((case["expected"][0], case["log"]))
    return out


def build(exclude: str | None = None) -> dict[str, Any]:
    splits = tuning_splits(exclude)
    logs = labelled_logs(splits)
    return {
        "schema": "flashdoctor/resemblance/1",
        "about": (
            "Words of real FlashAttention failure logs whose cause the thread confirmed, per cause code: "
            "the weight of a word is summed over the code's logs (1 + ln of its count in the log). Only words "
            "found in at least min_logs logs are kept. Generated: edit the evaluation data, then run the script."
        ),
        "source": {
            "built_by": "scripts/build_resemblance.py",
            "splits": [p.stem for p in splits],
            "logs": len(logs),
        },
        "weight": WEIGHT,
        "min_logs": MIN_LOGS,
        "codes": corpus_words(logs, MIN_LOGS),
    }


def render(doc: dict[str, Any]) -> str:
    """The document with one line per code (readable diffs when a split is added)."""
    head = {k: v for k, v in doc.items() if k != "codes"}
    lines = json.dumps(head, indent=1, ensure_ascii=False)[:-2].splitlines()
    codes = [f"  {json.dumps(c)}: {json.dumps(ws, ensure_ascii=False)}" for c, ws in doc["codes"].items()]
    return "\n".join([*lines[:-1], lines[-1] + ",", ' "codes": {', ",\n".join(codes), " }", "}"]) + "\n"


def main(argv: list[str]) -> int:
    text = render(build())
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run scripts/build_resemblance.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
