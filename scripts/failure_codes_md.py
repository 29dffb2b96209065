#!/usr/bin/env python3
"""Print the README's "Failure codes" table from flashdoctor/data/signatures.json (the one source).

    PYTHONPATH=. python scripts/failure_codes_md.py
tests/decide/explain/test_signatures_data.py checks that the README holds exactly this table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flashdoctor.knowledge.signatures import codes


def table() -> str:
    rows = ["| code | what it means and why | fix |", "|---|---|---|"]
    for info in codes().values():
        cause = f"**{info.title}.** {info.cause}".replace("|", "\\|")
        rows.append(f"| `{info.code}` | {cause} | {info.fix.replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
