"""explain's time on a hostile log is bounded: whatever its lines hold, an answer comes in seconds.

Some signature patterns take time quadratic in the text they search (``(?P<pkg>[\\w.-]+==...) has no wheels``
is tried at every position of a long word: 35 s on one 64 KiB line of ``_`` at stop 39). The scan bounds
what they see (scan.line_cost, the continuation a wrap may add); these logs are built from the worst
signatures measured then. The bound is generous (a slow, shared machine: the worst case here takes about
9 s on the 2-core development box), far below the minutes or hours the unbounded scan took on each log.
"""

from __future__ import annotations

import time

import pytest

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.decide.explain.scan import KEYWORD_LINE_BUDGET

BOUND_S = 40.0
pytestmark = pytest.mark.slow  # a few seconds each: the bounds are what they prove
# The keywords of the signatures whose patterns were slowest on a long run of one character (stop 39):
# uv-no-matching-tag, not-a-supported-wheel, pip-conflict-flash-attn-range.
WORST = ("no wheels with a matching", "is not a supported wheel on this platform", "has requirement flash")


def _timed(data: bytes) -> float:
    t = time.perf_counter()
    explain_bytes(data)
    return time.perf_counter() - t


def test_many_long_lines_of_the_worst_signatures_keywords():
    line = (" ".join(WORST) + " " + "_" * 16_000).encode()
    assert _timed(b"\n".join([line] * KEYWORD_LINE_BUDGET)) < BOUND_S


def test_a_line_that_looks_wrapped_before_a_huge_line():
    # The line is long enough to be a terminal's cut one, so its continuation is read with it: only as much
    # of that as a wrap leaves, not the next megabyte.
    log = ("x" * 60 + " has no wheels with a matching\n" + "_" * (1 << 20)).encode()
    assert _timed(log) < BOUND_S


def test_a_log_without_line_breaks_full_of_the_worst_keyword():
    log = (("no wheels with a matching" + "_" * 3000) * 2000).encode()  # 6 MB on one line
    assert _timed(log) < BOUND_S


def test_a_context_pattern_on_long_lines():
    # The context fa_listed ("flash-attn 2.8.3" listed) decides between two signatures of this import error;
    # its pattern is the slowest of all on a keyword followed by spaces.
    cause = "ImportError: cannot import name 'flash_attn_varlen_func' from 'transformers.modeling_flash_attention_utils'"
    lines = [kw + " " * 4000 + "x" for kw in ("flash-attn", "flash_attn", "flash-attention")]
    # 900 lines: without the budget every one is read (39 s for 300 of them at stop 39, so minutes here)
    assert _timed("\n".join([cause, *lines * 300]).encode()) < BOUND_S
