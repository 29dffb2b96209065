#!/usr/bin/env python3
"""Score the wheel selector against real user environments with confirmed outcomes.

Each case of tests/data/selection_eval/cases.json is a machine taken from a public issue thread (a target
spec) and what the thread confirms: the wheel that installed and imported (``action: wheel`` with
``filename_any``), that no prebuilt wheel fits and a source build was needed (``action: build``), and/or
wheels that were confirmed NOT to work (``wheel_not``). This script plans an install for every case the
way ``flashdoctor install --dry-run --json --target SPEC`` does and says, per case, right or wrong.

A miss is one of:
  unsafe        the plan picks a wheel the thread saw fail (wheel_not), or a wheel where only a source
                build worked;
  other-wheel   the plan picks a wheel, but not the one the thread confirms (it may work: unverified);
  conservative  the plan builds from source where a confirmed wheel exists;
  unsupported   the plan says the variant cannot run here at all;
  coverage      (tag on other misses) the confirmed wheel is not in the index at all.

Of the other-wheel misses, those that pick the confirmed wheel's exact cell (source, tags, torch minor,
CUDA major, ABI) built against the same torch (or against the target's torch) are counted apart: a newer
release of what the thread saw work.

The plan comes from flashdoctor itself, in-process (its index loader and ``make_plan``, wherever the
package keeps them); if those cannot be imported the CLI runs in a subprocess with the target written to
a temporary file. Nothing touches the network.

Usage:
  python scripts/eval_selection.py [-v] [--json] [--code DIR] [--index FILE] [--cases FILE] [--only ID]
      [--cli]

  --code DIR   the flashdoctor tree to evaluate (put first on sys.path; default: this repository).
  --cli        skip the in-process path and run the CLI for every case.
  --pinned     where a wheel was confirmed, plan with its release given as ``--version ==X`` (what a user
               runs whose project pins that release): whether the selector then finds the confirmed
               copy. A second measure, not the score: the release is read off the answer.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ROOT / "tests" / "data" / "selection_eval" / "cases.json"
SCHEMA = "flashdoctor/selection-eval/1"

# Where the pieces have lived; the first importable one wins.
_PLAN_MODULES = ("flashdoctor.wheels", "flashdoctor.decide.wheels")
_TARGET_MODULES = ("flashdoctor.environment", "flashdoctor.model.target", "flashdoctor.model.environment")


# -- the selector, in-process or through the CLI ------------------------------------------------------
@dataclass
class Outcome:
    action: str
    wheel: str | None = None
    source: str | None = None
    reasons: list[str] = field(default_factory=list)
    rejected: dict[str, list[str]] = field(default_factory=dict)  # filename -> reasons (plan's list)
    alternatives: list[str] = field(default_factory=list)
    # in-process only: every entry's verdict, for "why was the expected wheel not chosen"
    fits: list[str] | None = None
    misses: dict[str, list[str]] | None = None
    error: str | None = None


def pinned_spec(case: dict[str, Any]) -> str | None:
    """``==X`` for the release of the case's first confirmed wheel (the public version: no local label),
    or None where no wheel was confirmed."""
    names = case["expected"].get("filename_any") or []
    if case["expected"].get("action") != "wheel" or not names:
        return None
    version = names[0].removesuffix(".whl").split("-")[1]
    return "==" + version.split("+")[0]


class InProcess:
    pinned = False
    #: every entry's verdict (``-v``'s "why was the expected wheel not chosen"): a second selection per case
    details = True

    def __init__(self, index_path: str | None) -> None:
        self.plan_mod = _first_module(_PLAN_MODULES, ("make_plan", "load_index", "select_wheels"))
        self.target_mod = _first_module(_TARGET_MODULES, ("environment_from_target",))
        self.index = self.plan_mod.load_index(index_path)
        self.index_path = index_path

    def describe(self) -> str:
        origin = getattr(self.index, "origin", None) or self.index_path or "default index"
        return (
            f"in-process: {self.plan_mod.__name__}.make_plan ({_module_file(self.plan_mod)}), index {origin}"
        )

    def filenames(self) -> set[str]:
        return {e.filename for e in _entries(self.index)}

    def run(self, case: dict[str, Any]) -> Outcome:
        env = self.target_mod.environment_from_target(case["target"])
        variant = case.get("variant", "fa2")
        community = bool(case.get("allow_community", False))
        spec = pinned_spec(case) if self.pinned else None
        plan = self.plan_mod.make_plan(env, variant, self.index, spec, allow_community=community)
        data = plan.to_json()
        out = _outcome_from_json(data)
        if not self.details:
            return out
        try:
            sel = self.plan_mod.select_wheels(env, variant, self.index, allow_community=community)
            out.fits = [e.filename for e in sel.fits]
            misses: dict[str, list[str]] = {}
            for e, codes in sel.misses:
                misses.setdefault(e.filename, list(codes))
            out.misses = misses
        except Exception as exc:  # the details are a bonus; the plan is what is scored
            out.reasons.append(f"(select_wheels unavailable: {exc})")
        return out


class ViaCli:
    pinned = False

    def __init__(self, code: Path, index_path: str | None, python: str) -> None:
        self.code = code
        self.index_path = index_path
        self.python = python

    def describe(self) -> str:
        return f"subprocess: {self.python} -m flashdoctor install --dry-run --json (PYTHONPATH={self.code})"

    def filenames(self) -> set[str] | None:
        path = self.index_path or str(self.code / "wheels_index.json")
        try:
            doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        rows = doc.get("wheels") or doc.get("entries") or [] if isinstance(doc, dict) else doc
        return {r["filename"] for r in rows if isinstance(r, dict) and "filename" in r}

    def run(self, case: dict[str, Any]) -> Outcome:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(case["target"], fh)
            spec = fh.name
        cmd = [self.python, "-m", "flashdoctor", "install", "--dry-run", "--json", "--target", spec]
        cmd.append("--" + case.get("variant", "fa2"))
        if case.get("allow_community"):
            cmd.append("--allow-community")
        spec = pinned_spec(case) if self.pinned else None
        if spec:
            cmd += ["--version", spec]
        if self.index_path:
            cmd += ["--index", self.index_path]
        envvars = dict(os.environ, PYTHONPATH=str(self.code))
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, cwd=str(self.code), env=envvars, timeout=120
            )
        finally:
            os.unlink(spec)
        try:
            return _outcome_from_json(json.loads(proc.stdout))
        except ValueError:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return Outcome("error", error=f"exit {proc.returncode}: {tail[0]}")


def _first_module(names: tuple[str, ...], attrs: tuple[str, ...]) -> Any:
    errors = []
    for name in names:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if all(hasattr(mod, a) for a in attrs):
            return mod
        errors.append(f"{name}: lacks {', '.join(a for a in attrs if not hasattr(mod, a))}")
    raise ImportError("; ".join(errors))


def _module_file(mod: Any) -> str:
    return str(Path(getattr(mod, "__file__", "?")).parent)


def _entries(index: Any) -> list[Any]:
    for attr in ("entries", "wheels", "all"):
        val = getattr(index, attr, None)
        if val is not None:
            return list(val() if callable(val) else val)
    return list(index)


def _outcome_from_json(data: dict[str, Any]) -> Outcome:
    wheel = data.get("wheel") or {}
    return Outcome(
        action=str(data.get("action")),
        wheel=wheel.get("filename"),
        source=wheel.get("source"),
        reasons=[str(r) for r in data.get("reasons", [])],
        rejected={r["filename"]: list(r.get("reasons", [])) for r in data.get("rejected", [])},
        alternatives=[a.get("filename") for a in data.get("alternatives", [])],
    )


# -- scoring --------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    right: bool
    kind: str  # "right" | "unsafe" | "other-wheel" | "conservative" | "unsupported" | "error"
    coverage_gap: bool = False


def judge(case: dict[str, Any], out: Outcome, index_names: set[str] | None) -> Verdict:
    exp = case["expected"]
    action = exp.get("action")
    good = set(exp.get("filename_any", []))
    bad = set(exp.get("wheel_not", []))
    gap = bool(good) and index_names is not None and not (good & index_names)
    if out.action == "error":
        return Verdict(False, "error", gap)
    if out.action == "wheel" and out.wheel in bad:
        return Verdict(False, "unsafe", gap)
    if action == "wheel":
        if out.action == "wheel":
            return Verdict(True, "right", gap) if out.wheel in good else Verdict(False, "other-wheel", gap)
        if out.action == "build":
            return Verdict(False, "conservative", gap)
        return Verdict(False, "unsupported" if out.action == "unsupported" else "error", gap)
    if action == "build":
        if out.action == "build":
            return Verdict(True, "right", gap)
        if out.action == "wheel":
            return Verdict(False, "unsafe", gap)
        return Verdict(False, "unsupported" if out.action == "unsupported" else "error", gap)
    # wheel_not only: anything but a listed wheel is right
    return Verdict(True, "right", gap)


def same_build(case: dict[str, Any], out: Outcome, entries: dict[str, Any]) -> bool:
    """Whether an other-wheel pick is the confirmed wheel's exact cell (source, Python and platform tags,
    torch minor, CUDA major, C++ ABI) built against the same torch as a confirmed wheel, or against the
    target's own torch: a newer release of what the thread saw work. Unverified all the same."""
    pick = entries.get(out.wheel or "")
    if pick is None:
        return False

    def cell(e: Any) -> tuple[Any, ...]:
        n = e.name
        return (e.source, n.pythons, n.platforms, n.torch, e.cuda_mm[0] if e.cuda_mm else None, e.abi)

    torch = str(case.get("target", {}).get("torch") or "").split("+")[0]
    for name in case["expected"].get("filename_any", []):
        good = entries.get(name)
        if good is None or cell(good) != cell(pick):
            continue
        if pick.torch_build and (pick.torch_build == good.torch_build or pick.torch_build == torch):
            return True
    return False


def expected_text(exp: dict[str, Any]) -> str:
    parts = []
    if exp.get("action") == "wheel":
        files = exp.get("filename_any", [])
        parts.append("wheel " + (files[0] if len(files) == 1 else f"one of {len(files)}: {files[0]} ..."))
    elif exp.get("action") == "build":
        parts.append("build")
    if exp.get("wheel_not"):
        parts.append("not " + ", ".join(exp["wheel_not"]))
    return "; ".join(parts)


def got_text(out: Outcome) -> str:
    if out.action == "wheel":
        return f"wheel {out.wheel} [{out.source}]"
    if out.action == "error":
        return f"error ({out.error})"
    return out.action


def why_lines(case: dict[str, Any], out: Outcome, index_names: set[str] | None) -> list[str]:
    exp = case["expected"]
    lines = [f"    expected: {expected_text(exp)}", f"    got:      {got_text(out)}"]
    for r in out.reasons[:4]:
        lines.append(f"      reason: {r}")
    for f in exp.get("filename_any", []):
        if index_names is not None and f not in index_names:
            lines.append(f"    confirmed wheel not in the index: {f}")
            continue
        if out.fits is not None and f in out.fits:
            lines.append(f"    confirmed wheel fits, ranked #{out.fits.index(f) + 1} of {len(out.fits)}: {f}")
        elif out.misses is not None and f in out.misses:
            lines.append(f"    confirmed wheel rejected ({', '.join(out.misses[f])}): {f}")
        elif f in out.rejected:
            lines.append(f"    confirmed wheel rejected ({'; '.join(out.rejected[f])}): {f}")
        else:
            lines.append(f"    confirmed wheel: no verdict shown: {f}")
    if out.action == "wheel" and out.wheel in set(exp.get("wheel_not", [])):
        lines.append(f"    picked a wheel the thread saw fail: {out.wheel}")
    lines.append(f"    cause: {case.get('cause', '')}")
    return lines


# -- main -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=str(DEFAULT_CASES))
    ap.add_argument("--index", default=None, help="wheel index (default: the evaluated tree's own)")
    ap.add_argument(
        "--code", default=str(ROOT), help="flashdoctor tree to evaluate (default: this repository)"
    )
    ap.add_argument("--cli", action="store_true", help="run the CLI in a subprocess instead of in-process")
    ap.add_argument("--only", action="append", default=[], help="case id (repeatable)")
    ap.add_argument(
        "--pinned",
        action="store_true",
        help="give a confirmed wheel's release as --version (a second measure)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="say why each miss happened")
    ap.add_argument("--json", action="store_true", help="print the numbers (and per-case results) as JSON")
    args = ap.parse_args(argv)

    doc = json.loads(Path(args.cases).read_text(encoding="utf-8"))
    if doc.get("schema") != SCHEMA:
        print(f"{args.cases}: schema is {doc.get('schema')!r}, expected {SCHEMA!r}", file=sys.stderr)
        return 2
    cases = [c for c in doc["cases"] if not args.only or c["id"] in args.only]

    code = Path(args.code).resolve()
    index_path = args.index
    if index_path is None and (code / "wheels_index.json").is_file():
        index_path = str(code / "wheels_index.json")
    runner: InProcess | ViaCli
    if args.cli:
        runner = ViaCli(code, index_path, sys.executable)
    else:
        sys.path.insert(0, str(code))
        try:
            runner = InProcess(index_path)
        except Exception as exc:
            print(f"in-process selector unavailable ({exc}); using the CLI", file=sys.stderr)
            runner = ViaCli(code, index_path, sys.executable)
    runner.pinned = args.pinned
    if isinstance(runner, InProcess):
        runner.details = args.verbose
    names = runner.filenames()

    results = []
    for case in cases:
        try:
            out = runner.run(case)
        except Exception as exc:
            if isinstance(runner, InProcess):  # a changed signature: the CLI still speaks the same JSON
                cli = ViaCli(code, index_path, sys.executable)
                cli.pinned = args.pinned
                out = cli.run(case)
            else:
                out = Outcome("error", error=str(exc))
        v = judge(case, out, names)
        results.append((case, out, v))

    entries = {e.filename: e for e in _entries(runner.index)} if isinstance(runner, InProcess) else {}
    same = [c["id"] for c, o, v in results if v.kind == "other-wheel" and same_build(c, o, entries)]
    total = len(results)
    right = sum(1 for _, _, v in results if v.right)
    kinds: dict[str, int] = {}
    for _, _, v in results:
        if not v.right:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
    by_conf: dict[str, list[int]] = {}
    for c, _, v in results:
        slot = by_conf.setdefault(c.get("confidence", "?"), [0, 0])
        slot[0] += int(v.right)
        slot[1] += 1
    numbers: dict[str, Any] = {
        "total": total,
        "right": right,
        "wrong": total - right,
        "score": round(right / total, 4) if total else None,
        "lenient_right": right + kinds.get("other-wheel", 0) + kinds.get("conservative", 0),
        "misses_by_kind": kinds,
        "other_wheel_same_build": len(same),
        "coverage_gaps": sum(1 for _, _, v in results if v.coverage_gap),
        "by_confidence": {k: {"right": a, "total": b} for k, (a, b) in sorted(by_conf.items())},
        "selector": runner.describe(),
        "pinned": args.pinned,
    }

    if args.json:
        numbers["cases"] = [
            {
                "id": c["id"],
                "right": v.right,
                "kind": v.kind,
                "coverage_gap": v.coverage_gap,
                "action": o.action,
                "wheel": o.wheel,
                "source": o.source,
            }
            for c, o, v in results
        ]
        print(json.dumps(numbers, indent=1))
        return 0

    print(f"# {runner.describe()}")
    width = max((len(c["id"]) for c, _, _ in results), default=10)
    for case, out, v in results:
        mark = "RIGHT" if v.right else "WRONG"
        tag = "" if v.right else f" ({v.kind}{', coverage' if v.coverage_gap else ''})"
        print(f"{mark}  {case['id']:<{width}}  {got_text(out)}{tag}")
        if args.verbose and not v.right:
            print("\n".join(why_lines(case, out, names)))
    print()
    print(f"score: {right}/{total}" + (f" ({100 * right / total:.0f}%)" if total else ""))
    if kinds:
        print("misses: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(
        "lenient (other-wheel and conservative counted right): "
        f"{numbers['lenient_right']}/{total}; coverage gaps: {numbers['coverage_gaps']}"
    )
    if entries:
        print(
            f"other-wheel picks of the confirmed wheel's cell built against the same torch: {len(same)}"
            + (f" ({', '.join(same)})" if same and args.verbose else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
