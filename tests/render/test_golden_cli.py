"""check, install --dry-run, wheels, explain and build --dry-run as a user sees them at 80 and 200
columns, kept as golden captures taken from a real terminal (tmux; tests/golden/cli-*-{80,200}.txt).

- test_in_process_output_equals_the_terminal_capture: the CLI run in-process with COLUMNS set (as in a
  pipe or a CI log), folded where a terminal folds, is exactly the capture;
- test_tmux_capture_equals_the_golden: the same command in a real tmux pane today gives the same screen
  (FLASHDOCTOR_UPDATE_GOLDEN=1 rewrites the files from tmux);
- test_no_word_is_broken: every line fits the width, except one that ends in a word wider than any
  line (a URL) — so a terminal never breaks a word that a line could have kept whole.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.render.golden_cli import COMMANDS, WIDTHS, capture_in_tmux, golden_path, render_in_process

CASES = [(name, width) for name in sorted(COMMANDS) for width in WIDTHS]
IDS = [f"{n}-{w}" for n, w in CASES]


@pytest.mark.parametrize(("name", "width"), CASES, ids=IDS)
def test_in_process_output_equals_the_terminal_capture(name: str, width: int) -> None:
    got = render_in_process(name, width)
    golden = golden_path(name, width).read_text(encoding="utf-8")
    assert got == golden, f"{golden_path(name, width).name}: the CLI's output and the tmux capture differ"


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
@pytest.mark.parametrize(("name", "width"), CASES, ids=IDS)
def test_tmux_capture_equals_the_golden(name: str, width: int) -> None:
    got = capture_in_tmux(name, width)
    path = golden_path(name, width)
    if os.environ.get("FLASHDOCTOR_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), (
        f"{path.name} changed; FLASHDOCTOR_UPDATE_GOLDEN=1 rewrites it"
    )


def _raw(name: str, width: int) -> list[str]:
    """The in-process output before folding: the lines the program wrote."""
    from click.testing import CliRunner

    from flashdoctor.cli import cli
    from tests.render.golden_cli import ROOT

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        r = CliRunner().invoke(cli, list(COMMANDS[name]), env={"COLUMNS": str(width)})
    finally:
        os.chdir(cwd)
    return r.stdout.splitlines()


@pytest.mark.parametrize(("name", "width"), CASES, ids=IDS)
def test_no_word_is_broken(name: str, width: int) -> None:
    for line in _raw(name, width):
        assert line == line.rstrip(), f"trailing spaces: {line!r}"
        if len(line) <= width:
            continue
        # a line wider than the width ends in the one word too wide for any line (a URL)
        assert len(line.split()[-1]) > width, f"wider than {width}: {line!r}"


def test_the_goldens_show_what_the_issue_found_broken() -> None:
    """Issue 17: `flash-attn-m|issing`, `scaled_dot_product_attenti|on`, `cxx11abiFALS|E` at 80 columns."""
    text = "\n".join(golden_path(n, 80).read_text(encoding="utf-8") for n in COMMANDS)
    for word in (
        "[flash-attn-missing]",
        "(torch.nn.functional.scaled_dot_product_attention).",
        "cxx11abiFALSE",
    ):
        assert word in text, word
    assert not re.search(r"flash-attn-m$|attenti$|cxx11abiFALS$", text, re.MULTILINE)
