#!/usr/bin/env python3
"""How much of explain's hits survive the ways people mangle a log when they paste it.

Every tuning split's log that explain already gets right (top-1, without probing the machine) is
changed the way a paste, a web page or a terminal changes text, and explained again; the script prints,
per change, how many keep the right code first. The holdouts are never read (they are for the
generalisation figure, scripts/eval_explain.py).

Changes: ``wrap80`` (a word wrap at 80 columns: a browser, a mail client, a blog's reflow), ``hard100``
and ``hard60`` (a terminal cut every line at 100 / 60 columns), ``head600`` and ``head300`` (only the first
600 / 300 characters: an excerpt), ``last3`` (only the last three lines), ``flat`` (every line break a
space), ``nopaths`` (absolute paths replaced), ``lower`` (lower case); a web page's text: ``html`` (HTML
entities, as in a page's source or an API's HTML body), ``nbsp`` (every space a no-break space),
``zwsp`` (a zero-width space after every underscore: a page's soft breaks in long names); a prefix a
tool writes before every line: ``quote`` (a Markdown quote), ``rank`` (torchrun's "[rank0]: "),
``gha`` (a GitHub Actions timestamp), ``docker`` (a BuildKit step and its seconds), ``ray`` (a Ray actor's
"(Name pid=N) "), ``k8s`` (kubectl logs --prefix's "[pod/name/container] "); how people name things:
``names`` (every name of FlashAttention in prose or a message -- FlashAttention, Flash Attention, flash attn,
FA2, FlashAttention-2 ... -- replaced by another spelling of the same variant, never FA2 by FA3; a module,
a path, a requirement or a symbol that code reads is left as it is), ``quotes`` (typographic quotes: ' and "
become ‘ ’ and “ ”, as a word processor or a web page writes them) and ``swapquotes`` (' and " swapped, as
another language's or tool's repr writes them).

    python scripts/eval_robustness.py [--change NAME ...] [--json] [-v]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashdoctor.decide.explain import explain_bytes  # noqa: E402

DATA = ROOT / "tests" / "data" / "explain_eval"
TUNING = ("cases.json", *(p.name for p in sorted(DATA.glob("dev*.json"))))


def _word_wrap(text: str, width: int) -> str:
    return "\n".join(
        textwrap.fill(ln, width, break_long_words=True, break_on_hyphens=False) if len(ln) > width else ln
        for ln in text.splitlines()
    )


def _hard_wrap(text: str, width: int) -> str:
    out: list[str] = []
    for ln in text.splitlines():
        while len(ln) > width:
            out.append(ln[:width])
            ln = ln[width:]
        out.append(ln)
    return "\n".join(out)


# The spellings of one variant's name, in the order ``names`` rotates through them: a name in the log is
# replaced by the next spelling of its own variant (and the next occurrence by the one after), so the
# change is deterministic and every spelling is used.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "any": (
        "flash_attn",
        "FlashAttention",
        "flash-attn",
        "Flash Attention",
        "flashattn",
        "Flash-Attention",
        "flash attn",
        "flash-attention",
    ),
    "2": (
        "FlashAttention2",
        "FA2",
        "FlashAttention-2",
        "flash_attn_2",
        "Flash Attention 2",
        "FA-2",
        "flash attention v2",
        "flash_attention_2",
    ),
    "3": ("FA3", "FlashAttention-3", "flash_attn_3", "FlashAttention3", "FA-3", "Flash Attention 3"),
}
# A name in prose: not part of an identifier, a path, a module, a wheel file or a requirement, and not
# quoted (a quoted name is what code reads). flash_attn and flash-attn are also the module and the
# distribution, so they count only where a word follows them and no import, install or pip verb precedes.
_NAME = re.compile(
    r"(?<![\w./\\'\"`‘’“”=#-])(?:"
    r"(?P<three>Flash[ -]?Attention[ -]?(?:v|-)?3|(?-i:FA)-?3)"
    r"|(?P<two>Flash[ -]?Attention[ -]?(?:v|-)?2(?:\.0)?|(?-i:FA)-?2)"
    r"|(?P<any>Flash[ -]?Attention|flash attn|flashattn"
    r"|(?<!import )(?<!from )(?<!install )(?<!named )(?<!for )flash[-_]attn(?= [a-z]))"
    r")(?![\w/\\'\"`‘’“”=<>~!-]|\.\w)",
    re.IGNORECASE,
)


def _rename(text: str) -> str:
    seen = {"any": 0, "2": 0, "3": 0}

    def one(m: re.Match[str]) -> str:
        variant = "3" if m.group("three") else "2" if m.group("two") else "any"
        names = [n for n in SPELLINGS[variant] if n.lower() != m.group(0).lower()]
        seen[variant] += 1
        return names[(seen[variant] - 1) % len(names)]

    return _NAME.sub(one, text)


def _smart_quotes(text: str) -> str:
    """' and " as a word processor writes them: closing after a word character, else opening."""
    out = []
    for i, ch in enumerate(text):
        after_word = i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.)]")
        if ch == "'":
            out.append("’" if after_word else "‘")
        elif ch == '"':
            out.append("”" if after_word else "“")
        else:
            out.append(ch)
    return "".join(out)


CHANGES: dict[str, Callable[[str], str]] = {
    "wrap80": lambda t: _word_wrap(t, 80),
    "hard100": lambda t: _hard_wrap(t, 100),
    "hard60": lambda t: _hard_wrap(t, 60),
    "head600": lambda t: t[:600],
    "head300": lambda t: t[:300],
    "last3": lambda t: "\n".join(t.strip().splitlines()[-3:]),
    "flat": lambda t: " ".join(t.split()),
    "nopaths": lambda t: re.sub(r"(/[\w.+-]+){2,}", "<path>", t),
    "lower": str.lower,
    "html": lambda t: html.escape(t, quote=True),
    "nbsp": lambda t: t.replace(" ", "\u00a0"),
    "zwsp": lambda t: t.replace("_", "_\u200b"),
    "quote": lambda t: "\n".join("> " + ln for ln in t.splitlines()),
    "rank": lambda t: "\n".join("[rank0]: " + ln for ln in t.splitlines()),
    "gha": lambda t: "\n".join(
        f"2026-12-06T18:00:{i % 60:02d}.1234567Z {ln}" for i, ln in enumerate(t.splitlines())
    ),
    "docker": lambda t: "\n".join(f"#12 {10 + 0.37 * i:.3f} {ln}" for i, ln in enumerate(t.splitlines())),
    "ray": lambda t: "\n".join(f"(RayWorkerWrapper pid=2931625) {ln}" for ln in t.splitlines()),
    "k8s": lambda t: "\n".join(f"[pod/train-0/trainer] {ln}" for ln in t.splitlines()),
    "names": _rename,
    "quotes": _smart_quotes,
    "swapquotes": lambda t: t.translate(str.maketrans({"'": '"', '"': "'"})),
}


def first(text: str) -> str | None:
    codes = [d.code for d in explain_bytes(text.encode("utf-8"), None).diagnoses]
    return codes[0] if codes else None


def measure(changes: list[str], files: tuple[str, ...] = TUNING) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {c: {"kept": 0, "logs": 0, "lost": []} for c in changes}
    for name in files:
        for case in json.loads((DATA / name).read_text(encoding="utf-8"))["cases"]:
            expected = case["expected"]
            if not expected or first(case["log"]) not in expected:
                continue  # only what explain gets right as pasted
            for change in changes:
                row = out[change]
                row["logs"] = int(row["logs"]) + 1  # type: ignore[call-overload]
                got = first(CHANGES[change](case["log"]))
                if got in expected:
                    row["kept"] = int(row["kept"]) + 1  # type: ignore[call-overload]
                else:
                    row["lost"].append(f"{name}:{case['id']} -> {got}")  # type: ignore[attr-defined]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--change", action="append", choices=sorted(CHANGES), help="only this change (repeatable)"
    )
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the logs each change loses")
    args = ap.parse_args(argv)
    res = measure(args.change or list(CHANGES))
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for change, row in res.items():
        kept, logs = int(row["kept"]), int(row["logs"])  # type: ignore[call-overload]
        print(f"{change:8s} {kept}/{logs} kept ({100 * kept / max(logs, 1):.1f}%)")
        if args.verbose:
            for lost in row["lost"]:  # type: ignore[attr-defined]
                print(f"    {lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
