"""render.github: the annotations and the step summary of `check` in GitHub Actions."""

from __future__ import annotations

import html
import re

from flashdoctor.model.findings import CheckReport, Finding, Status
from flashdoctor.render import github
from tests.support.targets import target_env


def test_a_failed_smoke_test_is_an_error_annotation_that_says_what_failed() -> None:
    # `check --smoke` exits 1 when the smoke test fails; before, no annotation named the failure (the
    # smoke report's findings were left out), so the run's page showed only the exit code.
    numerics = Finding(
        code="smoke-numerics",
        status=Status.FAIL,
        message="FA2 flash_attn: output differs from the fp32 reference (max error 0.5)",
        fix="Reinstall the variant",
        variant="fa2",
        subject="fa2 @ GPU 0",
    )
    proof = Finding(
        code="smoke-no-kernel-proof", status=Status.WARN, message="no FA3 kernel seen", variant="fa3"
    )
    passed = Finding(code="smoke-ok", status=Status.OK, message="SDPA math passed")
    smoke = {"status": "failed", "exit_code": 1, "findings": [f.to_json() for f in (numerics, proof, passed)]}
    report = CheckReport(
        environment=target_env("h100"), findings=(), verdicts={}, source="probe", extra={"smoke": smoke}
    )
    assert github.annotation_lines(report) == [
        "::error title=flashdoctor smoke-numerics (fa2)::FA2 flash_attn: output differs from the fp32 "
        "reference (max error 0.5) — fix: Reinstall the variant",
        "::warning title=flashdoctor smoke-no-kernel-proof (fa3)::no FA3 kernel seen",
    ]
    reasons = github.exit_reasons(report, 1)  # the smoke report is read where the annotations read it
    assert reasons == ["the smoke test failed (exit code 1): smoke-numerics"]
    assert "- the smoke test failed (exit code 1): smoke-numerics" in github.summary_markdown(
        report, 1, reasons
    )


def test_the_summary_shows_untrusted_text_as_text_never_as_markup() -> None:
    """A GPU name from a target spec or a driver is untrusted: in the job summary it must not become a
    link, an image, an HTML tag, code or emphasis, nor end its table cell."""
    evil = "<img src=x onerror=alert(1)> [docs](https://evil.example) ![i](https://evil.example/i.png) `x` **b** | cell"
    bad = Finding(
        code="gpu-too-old", status=Status.FAIL, message=f"GPU {evil} is too old", fix="use <b>this</b>"
    )
    report = CheckReport(environment=target_env("h100"), findings=(bad,), verdicts={}, source="probe")
    md = github.summary_markdown(report, 1, [f"gpu {evil}"])
    for markup in ("<img", "<b>", "](", "`x`", "**b**", "| cell"):
        assert not re.search(r"(?<!\\)" + re.escape(markup), md), markup  # only escaped, if at all
    row = next(line for line in md.splitlines() if "gpu-too-old" in line)
    assert row.count(" | ") == 3  # the row's own four cells, no more
    # what a reader sees is the text itself: unescaping gives it back
    shown = row.split(" | ")[2]
    assert html.unescape(re.sub(r"\\(.)", r"\1", shown)) == f"GPU {evil} is too old"
