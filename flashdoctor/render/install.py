"""Rendering for `flashdoctor install` / `lock`: the download progress bar and the result."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from flashdoctor.model.install import InstallResult
from flashdoctor.render.console import STATUS_MARK, make_console, print_finding, print_markup, say
from flashdoctor.render.text import clean

STATUS_STYLE = {
    "installed": "bold green",
    "nothing-to-do": "green",
    "rolled-back": "bold red",
    "restore-failed": "bold red",
    "refused": "bold red",
    "download-failed": "bold red",
}


class RichProgress:
    """The downloader's Progress on a rich bar: size, speed, ETA. Only used on a terminal."""

    def __init__(self, console: Console) -> None:
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Any = None
        self._started = False

    def start(self, name: str, total: int | None, done: int) -> None:
        name = escape(clean(name))  # a wheel's name from an index or a plan: untrusted
        if not self._started:
            self._p.start()
            self._started = True
        if self._task is None:
            self._task = self._p.add_task(name, total=total, completed=done)
        else:
            self._p.reset(self._task, total=total, completed=done, description=name)

    def update(self, done: int) -> None:
        if self._task is not None:
            self._p.update(self._task, completed=done)

    def stop(self) -> None:
        if self._started:
            self._p.stop()
            self._started = False
            self._task = None


def download_progress(enabled: bool) -> RichProgress | None:
    """The download bar on standard error when it is a terminal (and ``enabled``), else None."""
    err = make_console(stderr=True)
    return RichProgress(err) if enabled and err.is_terminal else None


def render_install(result: InstallResult, console: Console, verbose: bool = False) -> None:
    style = STATUS_STYLE.get(result.status, "bold")
    print_markup(
        console,
        f"[bold]flashdoctor install[/] {result.variant}: [{style}]{escape(result.status)}[/] — "
        f"{escape(result.message)}",
        hang=2,
    )
    for s in result.steps:
        mark, mstyle = STATUS_MARK["ok" if s.ok else "fail"]
        print_markup(
            console,
            f" [{mstyle}]{mark}[/] {escape(s.name):<15} {escape(s.detail)} [dim]{s.seconds:.1f}s[/]",
            hang=19,
        )
    if result.sha256:
        # the verification's own words name where the digest came from ("... (the plan file)")
        checked = (result.verification or {}).get("text") or result.sha256_check or ""
        print_markup(console, f"   [dim]{escape(checked)}: {escape(result.sha256)}[/]", hang=5)
    for w in result.warnings:
        print_finding(console, "warn", w)
    for d in result.diagnoses:
        print_finding(console, "cause", d.message, d.code, details=(("evidence", d.evidence), ("fix", d.fix)))
    if (
        result.status not in ("installed", "nothing-to-do")
        and result.error
        and (verbose or not result.diagnoses)
    ):
        for line in result.error.strip().splitlines()[-12:]:
            say(console, line, "dim", hang=2)
    if result.hint:
        print_markup(console, f"   [dim]hint:[/] {escape(result.hint)}", hang=9)
    if result.log and result.status != "installed":
        print_markup(console, f"   [dim]installer log: {escape(result.log)}[/]", hang=5)
