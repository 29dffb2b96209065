"""GitHub Actions output: workflow-command annotations and a Markdown job summary that says why.

The runner reads workflow commands from a step's stdout and stderr alike (actions/runner,
ScriptHandler.cs: one OutputManager on each stream), so with --json the annotations go to stderr and
stdout stays one JSON document. Untrusted text is escaped per the workflow-command rules (data: % CR LF;
properties also : and ,) and its other control characters made visible; in the Markdown summary it is
text only: no link, image, HTML tag or emphasis of its own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flashdoctor.model.findings import CheckReport, Status
from flashdoctor.render.text import clean


def escape_data(text: str) -> str:
    # https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions
    return clean(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str) -> str:
    return f"::{level} title={escape_property(title)}::{escape_data(message)}"


def _not_ready(report: CheckReport, require: Iterable[str]) -> list[tuple[str, str, str]]:
    """(variant, verdict, why) for each --require variant that is not ready."""
    out = []
    for v in require:
        vv = report.verdicts[v]  # type: ignore[index]
        if vv.verdict.value != "ready":
            why = "; ".join(vv.reasons[:3]) + (f" → {vv.fix}" if vv.fix else "")
            out.append((v, vv.verdict.value, why))
    return out


def _smoke(report: CheckReport) -> Mapping[str, Any]:
    """The smoke test's report, as JSON (``check --smoke`` puts it under extra["smoke"]); {} without one."""
    return report.extra.get("smoke") or {}


def _smoke_findings(report: CheckReport) -> list[dict[str, Any]]:
    return list(_smoke(report).get("findings") or [])


def annotation_lines(report: CheckReport, require: Iterable[str] = ()) -> list[str]:
    """An ::error for each unmet --require and each failing finding, the smoke test's included; a
    ::warning for each warning."""
    lines = []
    for v, verdict, why in _not_ready(report, require):
        lines.append(annotation("error", f"flashdoctor --require {v}", f"{v} is {verdict}, not ready: {why}"))
    for f in [f.to_json() for f in report.findings] + _smoke_findings(report):
        if f["status"] not in (Status.WARN.value, Status.FAIL.value):
            continue
        level = "error" if f["status"] == Status.FAIL.value else "warning"
        title = f"flashdoctor {f['code']}" + (f" ({f['variant']})" if f.get("variant") else "")
        body = f["message"] + (f" — fix: {f['fix']}" if f.get("fix") else "")
        lines.append(annotation(level, title, body))
    return lines


def exit_reasons(
    report: CheckReport,
    exit_code: int,
    *,
    strict: bool = False,
    require: Iterable[str] = (),
) -> list[str]:
    """Why `check` exits ``exit_code``, one sentence each (empty for 0); the smoke test's from the report."""
    if exit_code == 0:
        return []
    reasons = [
        f"--require {v}: {v} is {verdict}, not ready ({why})"
        for v, verdict, why in _not_ready(report, require)
    ]
    failed = [f.code for f in report.findings if f.status is Status.FAIL]
    if failed:
        reasons.append(f"{len(failed)} failing check(s): {', '.join(dict.fromkeys(failed))}")
    warned = [f.code for f in report.findings if f.status is Status.WARN]
    if strict and warned:
        reasons.append(f"--strict and {len(warned)} warning(s): {', '.join(dict.fromkeys(warned))}")
    smoke = _smoke(report)
    if smoke.get("exit_code"):
        codes = [f["code"] for f in smoke.get("findings") or [] if f.get("status") == Status.FAIL.value]
        reasons.append(
            f"the smoke test {smoke.get('status', 'failed')} (exit code {smoke['exit_code']})"
            + (f": {', '.join(dict.fromkeys(codes))}" if codes else "")
        )
    return reasons or [f"exit code {exit_code}"]


_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")  # what starts code, emphasis, a link or image, a table cell


def _md(text: str) -> str:
    """Untrusted text (a GPU name, a version, an error) as literal text in a Markdown table cell: HTML
    escaped (GitHub renders some tags), Markdown's punctuation backslash-escaped (GFM allows it before any
    ASCII punctuation, so it renders as itself), on one line."""
    one_line = clean(text.replace("\n", " ").replace("\r", " "))
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def summary_markdown(report: CheckReport, exit_code: int, reasons: Iterable[str] = ()) -> str:
    mark = {"ok": "✅", "warn": "⚠️", "fail": "❌", "skip": "➖"}
    out = ["## flashdoctor check", ""]
    why = list(reasons)
    if why:
        out += [f"**Failed (exit code {exit_code}):**", *(f"- {_md(r)}" for r in why), ""]
    out.append("| variant | verdict | why |")
    out.append("|---|---|---|")
    for v, vv in report.verdicts.items():
        out.append(f"| {v} | **{vv.verdict.value}** | {_md('; '.join(vv.reasons))} |")
    out += ["", "| | code | finding | fix |", "|---|---|---|---|"]
    for f in report.findings:
        if f.status is Status.SKIP:
            continue
        out.append(f"| {mark[f.status.value]} | `{f.code}` | {_md(f.message)} | {_md(f.fix or '')} |")
    out += ["", f"Exit code: {exit_code}" + (f" — {_md(why[0])}" if why else ""), ""]
    return "\n".join(out)


def append_summary(path: str, text: str) -> str | None:
    """Append to $GITHUB_STEP_SUMMARY; the error text when that fails."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        return str(exc)
    return None
