"""GitHub Actions output: workflow-command annotations and a Markdown job summary."""

from __future__ import annotations

from collections.abc import Mapping

from flashdoctor.model.findings import CheckReport, Status


def _escape_data(text: str) -> str:
    # https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(report: CheckReport) -> list[str]:
    lines = []
    for f in report.findings:
        if f.status not in (Status.WARN, Status.FAIL):
            continue
        level = "error" if f.status is Status.FAIL else "warning"
        title = _escape_prop(f"flashdoctor {f.code}" + (f" ({f.variant})" if f.variant else ""))
        body = f.message + (f" — fix: {f.fix}" if f.fix else "")
        lines.append(f"::{level} title={title}::{_escape_data(body)}")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(report: CheckReport, exit_code: int) -> str:
    mark = {"ok": "✅", "warn": "⚠️", "fail": "❌", "skip": "➖"}
    out = ["## flashdoctor check", ""]
    out.append("| variant | verdict | why |")
    out.append("|---|---|---|")
    for v, vv in report.verdicts.items():
        out.append(f"| {v} | **{vv.verdict.value}** | {_md('; '.join(vv.reasons))} |")
    out += ["", "| | code | finding | fix |", "|---|---|---|---|"]
    for f in report.findings:
        if f.status is Status.SKIP:
            continue
        out.append(f"| {mark[f.status.value]} | `{f.code}` | {_md(f.message)} | {_md(f.fix or '')} |")
    out += ["", f"Exit code: {exit_code}", ""]
    return "\n".join(out)


def in_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"
