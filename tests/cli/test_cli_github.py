"""`check` under GitHub Actions as the runner runs it (real processes, GITHUB_* files): --json stays one
JSON document on stdout with the annotations on stderr (the runner reads workflow commands from both
streams), an unmet --require is an ::error that names why, and the step summary says why it failed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.knowledge.schemas import schema_validator
from tests.github_action.runner import workflow_commands
from tests.support.paths import ROOT, TARGETS

pytestmark = pytest.mark.system


def gha(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    summary = tmp_path / "step_summary.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args], capture_output=True, text=True, env=env, timeout=120
    )
    return p, summary.read_text(encoding="utf-8") if summary.exists() else ""


def test_json_stays_valid_json_with_annotations_on_stderr(tmp_path: Path) -> None:
    p, summary = gha(tmp_path, "check", "--json", "--target", str(TARGETS / "t4.json"))
    assert p.returncode == 0  # the T4's findings concern variants that are neither installed nor required
    doc = json.loads(p.stdout)  # the whole of stdout: one document
    schema_validator("check-report.schema.json").validate(doc)
    assert "::" not in p.stdout
    assert "::error title=flashdoctor gpu-unsupported (fa2)::" in p.stderr
    assert "::warning title=flashdoctor bf16-unsupported::" in p.stderr
    assert "Exit code: 0" in summary and "Failed" not in summary
    p, summary = gha(tmp_path, "check", "--json", "--target", str(TARGETS / "old-driver.json"))
    assert p.returncode == 1 and json.loads(p.stdout)["exit_code"] == 1
    assert "::error title=flashdoctor driver-too-old::" in p.stderr
    assert "**Failed (exit code 1):**" in summary and "failing check(s): driver-too-old" in summary


def test_human_output_keeps_annotations_on_stdout(tmp_path: Path) -> None:
    p, _ = gha(tmp_path, "check", "--target", str(TARGETS / "t4.json"))
    assert "::error title=flashdoctor gpu-unsupported (fa2)::" in p.stdout


def test_an_unmet_require_is_an_error_annotation_and_the_summary_says_why(tmp_path: Path) -> None:
    # torch 2.13: no FA2 wheel loads there (buildable), nothing fails otherwise
    p, summary = gha(
        tmp_path, "check", "--json", "--require", "fa2", "--target", str(TARGETS / "h100-torch213.json")
    )
    assert p.returncode == 1
    assert json.loads(p.stdout)["exit_code"] == 1
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("::error")]
    assert errors and errors[0].startswith(
        "::error title=flashdoctor --require fa2::fa2 is buildable, not ready: "
    )
    assert "no prebuilt wheel fits" in errors[0]
    assert "- --require fa2: fa2 is buildable, not ready (no prebuilt wheel fits" in summary
    assert "Exit code: 1 — --require fa2: fa2 is buildable" in summary
    ok, summary = gha(tmp_path, "check", "--json", "--require", "fa3", "--target", str(TARGETS / "h100.json"))
    assert ok.returncode == 1  # fa3 is installable here, not ready: the same, for fa3
    assert "::error title=flashdoctor --require fa3::fa3 is installable, not ready" in ok.stderr


def test_check_smoke_json_stays_valid_json_too(tmp_path: Path) -> None:
    p, summary = gha(tmp_path, "check", "--smoke", "--json")
    doc = json.loads(p.stdout)
    assert doc["exit_code"] == p.returncode and "smoke" in doc
    assert "::" not in p.stdout and summary.startswith("## flashdoctor check")


def test_untrusted_text_never_becomes_a_workflow_command(tmp_path: Path) -> None:
    # What the runner reads as a command (tests/github_action/runner.py: workflow_commands): `::name` at a
    # line's start (a newline in a gcc version), `##[name]` anywhere in a line (a GPU name, a file name).
    # Unframed, the file name's ##[stop-commands] silenced every annotation after it and the GPU name's
    # ##[add-mask] hid "NVIDIA" in the rest of the job's log.
    spec = json.loads((TARGETS / "h100.json").read_text())
    spec["gpus"][0]["name"] = "NVIDIA H100 ##[add-mask]NVIDIA"
    spec["gcc"] = "13.3.0\n::error title=forged::all good"
    target = tmp_path / "##[stop-commands]gone.json"
    target.write_text(json.dumps(spec), encoding="utf-8")
    for args in ((), ("--json",), ("-v",)):
        p, _ = gha(tmp_path, "check", *args, "--require", "fa2", "--target", str(target))
        assert p.returncode == 1, p.stderr
        commands = workflow_commands(p.stdout) + workflow_commands(p.stderr)
        pauses = [data for name, _, data in commands if name == "stop-commands"]
        assert all(re.fullmatch("[0-9a-f]{32}", token) for token in pauses), (args, pauses)  # ours only
        commands = [c for c in commands if c[0] != "stop-commands"]
        assert all(name in ("error", "warning") for name, _, _ in commands), (args, commands)
        assert all(props.startswith("title=flashdoctor ") for _, props, _ in commands), (args, commands)
        assert ("error", "title=flashdoctor --require fa2") in [c[:2] for c in commands], (args, commands)
        assert "##[stop-commands]gone.json" in p.stdout + p.stderr  # shown, not run
        if "--json" not in args:
            assert "NVIDIA H100 ##[add-mask]NVIDIA" in p.stdout
    p, _ = gha(tmp_path, "check", "--json", "--target", str(target))
    assert json.loads(p.stdout)["environment"]["gpus"][0]["name"] == spec["gpus"][0]["name"]  # the same data


def test_a_logs_lines_shown_by_explain_are_never_run_as_workflow_commands(tmp_path: Path) -> None:
    """explain quotes the log's lines; a log is untrusted (a build's output, a pasted issue). Unframed, a
    quoted `##[add-mask]NVIDIA` hid "NVIDIA" in the rest of the job's log. Every command's human output is
    framed in GitHub Actions; --json needs no frame and stays one JSON document."""
    log = tmp_path / "build.log"
    log.write_text(
        "ImportError: ##[add-mask]NVIDIA flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: undefined symbol: "
        "_ZN3c104cuda9SetDeviceEi\n::error title=forged::all good\n",
        encoding="utf-8",
    )
    for args in (("explain", str(log), "--no-probe"), ("wheels", "--target", str(TARGETS / "h100.json"))):
        p, _ = gha(tmp_path, *args)
        assert p.returncode == 0, p.stderr
        commands = workflow_commands(p.stdout) + workflow_commands(p.stderr)
        assert [name for name, _, _ in commands] == ["stop-commands"], (args, commands)
        assert re.fullmatch("[0-9a-f]{32}", commands[0][2])
    assert "##[add-mask]NVIDIA" in gha(tmp_path, "explain", str(log), "--no-probe")[0].stdout  # shown
    p, _ = gha(tmp_path, "explain", str(log), "--no-probe", "--json")
    assert json.loads(p.stdout)["diagnoses"] and workflow_commands(p.stdout) == []


def test_a_usage_error_from_click_quotes_its_value_as_text(tmp_path: Path) -> None:
    """click's own usage errors (a -o FILE that cannot be written, an extra argument) quote what was given:
    a path or a value from a workflow's expression. Printed as click printed it, a newline in it started a
    line the runner ran (`::add-mask::NVIDIA` hid "NVIDIA" in the rest of the job's log) and an OSC
    sequence reached the terminal; now it is text, like every other error (exit 2 and an annotation)."""
    hostile = "x\n::add-mask::NVIDIA\x1b]0;pwned\x07"
    for args in (
        ("smoke", "-o", str(tmp_path / hostile / "report.json")),  # BadParameter: not a writable directory
        ("check", hostile),  # "Got unexpected extra argument"
    ):
        p, _ = gha(tmp_path, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert "\x1b" not in p.stderr and "\x07" not in p.stderr, (args, p.stderr)
        assert "␛]0;pwned␇" in p.stderr, (args, p.stderr)  # shown, as a symbol each
        commands = workflow_commands(p.stdout) + workflow_commands(p.stderr)
        assert all(name == "stop-commands" for name, _, _ in commands[:-1]), (args, commands)
        assert commands[-1][:2] == ("error", "title=flashdoctor (exit code 2)"), (args, commands)
