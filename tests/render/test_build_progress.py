"""Drawing the build's progress events: plain [N/M] lines off a terminal, a rich bar on one."""

from __future__ import annotations

import io

from rich.console import Console

from flashdoctor.render.progress import LineProgress, RichProgress, eta_seconds


def test_plain_lines_with_eta_and_no_control_characters() -> None:
    lines: list[str] = []
    p = LineProgress(lines.append)
    p.started(4)
    p.step(1, 4, "flash_fwd_hdim128_bf16_sm90.cu", 30.0)
    p.step(4, 4, "\x1b[31mevil\x07.cu", 125.0)
    p.finished(True, 125.0)
    assert lines[0] == "[1/4]  25%  elapsed 0:30  eta 1:30  flash_fwd_hdim128_bf16_sm90.cu"
    # control characters made visible (render.text.clean)
    assert lines[1] == "[4/4] 100%  elapsed 2:05  eta 0:00  \u241b[31mevil\u2407.cu"
    assert "\x1b" not in "".join(lines) and len(lines) == 2


def test_eta() -> None:
    assert eta_seconds(0, 7, 10.0) is None
    assert eta_seconds(2, 8, 100.0) == 300.0


def test_rich_bar_draws_between_started_and_finished() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    bar = RichProgress(console, "fa3 build")
    bar.finished(False, 0.0)  # never started (a blocked build): nothing drawn, nothing raised
    assert out.getvalue() == ""
    bar.started(4)
    bar.step(2, 4, "flash_bwd_hdim128_bf16_sm90.cu", 10.0)
    bar.finished(True, 20.0)
    text = out.getvalue()
    assert "fa3 build" in text and "2/4" in text and "flash_bwd_hdim128_bf16_sm90.cu" in text
