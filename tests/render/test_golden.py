"""The smoke and bench tables as a user sees them at 80 and 200 columns, kept as golden captures
(tests/golden/). Rendered from fixed reports (golden_reports.py) by the real renderer and console factory;
a change of layout shows up as a diff of these files. FLASHDOCTOR_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable

import pytest

from flashdoctor.render.console import make_console
from flashdoctor.render.smoke import render_bench, render_smoke
from tests.support.golden_reports import bench_report, smoke_report
from tests.support.paths import GOLDEN


def render(draw: Callable[..., None], report: object, width: int, verbose: bool = False) -> str:
    buf = io.StringIO()
    console = make_console(file=buf)
    console.width = width
    draw(report, console, verbose=verbose)
    return buf.getvalue()


CAPTURES = {
    "smoke-80.txt": lambda: render(render_smoke, smoke_report(), 80),
    "smoke-200.txt": lambda: render(render_smoke, smoke_report(), 200),
    "bench-80.txt": lambda: render(render_bench, bench_report(), 80),
    "bench-200.txt": lambda: render(render_bench, bench_report(), 200),
    "bench-disturbed-peak-80.txt": lambda: render(render_bench, bench_report(peak_tflops=270.0), 80),
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_golden_capture(name: str) -> None:
    got = CAPTURES[name]()
    path = GOLDEN / name
    if os.environ.get("FLASHDOCTOR_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), f"{name} changed; FLASHDOCTOR_UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_lines_fit_and_end_clean(name: str) -> None:
    width = int(re.findall(r"-(\d+)\.txt$", name)[0])
    for line in CAPTURES[name]().splitlines():
        assert line == line.rstrip(), f"trailing spaces: {line!r}"
        assert len(line) <= width, f"wider than {width}: {line!r}"


@pytest.mark.parametrize("width", [80, 200])
def test_no_word_is_cut(width: int) -> None:
    """Every word of every reason and kernel label in the table appears whole in the output."""
    from flashdoctor.render.smoke import _note

    report = smoke_report()
    out = render(render_smoke, report, width)
    words = set(re.findall(r"\S+", out))
    limit = 20 if width == 80 else 70
    for r in report.results:
        for word in _note(r, limit).split():
            assert word in words, (word, r.backend, r.case.name)
    for b in ("SDPA efficient", "FA3 3.0.0"):
        assert any(line.startswith(b) for line in out.splitlines())


def test_the_fa3_label_stays_on_two_lines_in_the_bench() -> None:
    """Issue 16: the FA3 minimal build's label wrapped over four lines of the bench table."""
    for width in (80, 200):
        lines = render(render_bench, bench_report(), width).splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("FA3 3.0.0"))
        more = 0  # lines after the row that hold only more of its label (no figures)
        while re.match(r"^\S", lines[start + 1 + more]) and not re.search(r"\d\.\d", lines[start + 1 + more]):
            more += 1
        assert more <= (1 if width == 80 else 0), lines[start : start + 2 + more]
        assert "%" in lines[start] and "248%" not in "\n".join(lines)


def test_a_disturbed_peak_prints_no_percentage_above_100() -> None:
    text = render(render_bench, bench_report(peak_tflops=270.0), 200)
    assert not re.search(r"\b\d{3,}%", text)
    assert "% peak not shown: FA3 flash_attn_interface reached 614 TFLOP/s" in text
    report = bench_report(peak_tflops=270.0)
    assert report.matmul_peak_reliable is False
    assert all(r.fwd_pct_peak is None and r.fwd_bwd_pct_peak is None for r in report.rows)
    assert bench_report().matmul_peak_reliable is True
