"""Rendering of diagnoses: the `flashdoctor explain` report, and a short block for other commands.

install, build, smoke (and anything that captures a failing subprocess) show why it failed with::

    from flashdoctor.decide.explain import explain_output
    from flashdoctor.render.explain import render_diagnoses, format_diagnoses

    diags = explain_output(captured_output, env)
    render_diagnoses(diags, console)          # rich, on the terminal
    hint = format_diagnoses(diags)            # plain text, e.g. for InstallError(..., hint=hint)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from flashdoctor.decide.explain.engine import Diagnosis, Explanation
from flashdoctor.render.console import EVIDENCE_STYLE, print_finding, print_markup


def _print_diagnosis(console: Console, d: Diagnosis, rank: int) -> None:
    if d.basis == "resemblance":
        status, note = "possible", f"{d.confidence:.2f}, by resemblance only"
    elif d.consequence_of:
        status, note = "consequence", f"{d.confidence:.2f}, consequence of {d.consequence_of}"
    elif rank == 0:
        status, note = "cause", f"{d.confidence:.2f}"
    else:
        status, note = "possible", f"{d.confidence:.2f}, also possible"
    where = (
        f"line {d.line}" if d.line is not None else (d.basis if d.basis in ("machine", "versions") else "log")
    )
    details = ((where, d.evidence or None), ("fix", d.fix))
    print_finding(console, status, d.message, d.code, note=note, details=details, strong=where)


def fixes_for(expl: Explanation, target: str | None = None) -> str:
    """Which machine the fixes are for, and how to change it: "fixes for the machine in this log (torch
    2.1.2, cp310); pass --here if it is from this machine"."""
    reason = expl.origin.reason
    if expl.origin.use_machine:
        who = "this machine" if target is None else f"the machine in {target}"
        return f"fixes for {who} ({'--here' if reason == 'here' else reason.removeprefix('agrees: ')})"
    head = f"fixes for {expl.machine}" if expl.machine else "general fixes"
    if reason == "no machine":
        return head + " (--no-probe: this machine was not looked at)"
    if reason.startswith("differs: "):
        here = "this machine" if target is None else f"the machine in {target}"
        return f"{head}, not for {here}: {reason.removeprefix('differs: ')}"
    if not expl.machine:
        head += ": the log does not show which machine it comes from"
    here = "this machine" if target is None else f"the machine in {target}"
    return f"{head}; pass --here if it is from {here}"


def render_diagnoses(
    diags: Sequence[Diagnosis], console: Console, limit: int | None = 3, title: str | None = None
) -> None:
    """A short block: each diagnosis (the one finding line), its evidence line (highlighted) and fix."""
    shown = list(diags if limit is None else diags[:limit])
    if not shown:
        return
    if title:
        print_markup(console, f"[bold]{escape(title)}[/]")
    for i, d in enumerate(shown):
        _print_diagnosis(console, d, i)
    rest = len(diags) - len(shown)
    if rest > 0:
        print_markup(console, f" [dim]… {rest} more (flashdoctor explain shows all)[/]")


def format_diagnoses(diags: Sequence[Diagnosis], limit: int | None = 3) -> str:
    """The same block as plain text (no markup), for error messages, hints and log files."""
    lines = []
    for d in diags if limit is None else diags[:limit]:
        after = f" (consequence of {d.consequence_of})" if d.consequence_of else ""
        lines.append(f"[{d.code}]{after} {d.message}")
        if d.evidence:
            where = f"line {d.line}" if d.line is not None else d.basis
            lines.append(f"  {where}: {d.evidence}")
        lines.append(f"  fix: {d.fix}")
    return "\n".join(lines)


def _print_skipped(expl: Explanation, console: Console) -> None:
    """What a long log's head and tail left out (nothing for a log read whole)."""
    s = expl.skipped
    if s is not None:
        print_markup(
            console,
            f"[yellow]the middle of this long log was not read[/]: {s.lines:,} lines "
            f"({s.bytes / 1e6:,.0f} MB) after line {s.after_line:,}; the lines after it keep their numbers",
            hang=2,
        )


def render_explanation(
    expl: Explanation, console: Console, source: str, verbose: bool = False, target: str | None = None
) -> None:
    """The `flashdoctor explain` report (``target``: the --target FILE, when one was given)."""
    size = f"{expl.lines:,} lines" if expl.lines != 1 else "1 line"
    if not expl.recognised:
        if expl.size == 0:
            print_markup(
                console,
                f"[bold]flashdoctor explain[/] {escape(source)}: the log is empty - nothing to explain.",
            )
            print_markup(
                console,
                "  Capture the failing command's output, e.g.: pip install flash-attn 2>&1 | tee install.log",
                hang=2,
            )
            return
        print_markup(
            console,
            f"[bold]flashdoctor explain[/] {escape(source)} ({size}): [yellow]no known failure recognised[/].",
        )
        _print_skipped(expl, console)
        if expl.diagnoses:  # resemblances: no signature matched, the wording is close to a known cause
            print_markup(
                console, " Closest known causes by wording (a guess: check them against the log):", hang=1
            )
            print_markup(console, f"[dim]{escape(fixes_for(expl, target))}[/]", hang=2)
            render_diagnoses(expl.diagnoses, console, limit=None)
        if expl.key_lines:
            print_markup(console, " The lines most likely to matter:")
            for k in expl.key_lines:
                print_markup(
                    console, f"   [dim]{k.line:>7} │[/] [{EVIDENCE_STYLE}]{escape(k.text)}[/]", hang=13
                )
        print_markup(
            console,
            " [dim]Run flashdoctor check for this machine's state; a log with the full pip/build output "
            "(pip install -v ... 2>&1 | tee log) gives more to go on.[/]",
            hang=1,
        )
        return
    causes = [d for d in expl.diagnoses if not d.consequence_of]
    what = "cause" if len(causes) == 1 else "possible causes"
    print_markup(
        console, f"[bold]flashdoctor explain[/] {escape(source)} ({size}): {len(causes)} {what}, best first"
    )
    _print_skipped(expl, console)
    print_markup(console, f"[dim]{escape(fixes_for(expl, target))}[/]", hang=2)
    render_diagnoses(expl.diagnoses, console, limit=None)
    if verbose:
        console.print()
        for d in expl.diagnoses:
            if d.source:
                print_markup(console, f" [dim]{escape(d.code)}: known from {escape(d.source)}[/]", hang=3)
        if expl.key_lines:
            print_markup(console, " [dim]Other lines that look like errors:[/]")
            for k in expl.key_lines:
                print_markup(console, f"   [dim]{k.line:>7} │ {escape(k.text)}[/]", hang=13)
