"""The GitHub Action (action.yml) run as the runner runs it (tests/github_action/runner.py): inputs, outputs,
annotations, the step summary and a valid JSON report, on real target specs and on this very machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.github_action.runner import load_action, parse_file_commands, run_action, workflow_commands
from tests.support.paths import ROOT, TARGETS

pytestmark = pytest.mark.system


def _environ() -> dict[str, str]:
    """The job's environment: flashdoctor and its Python on PATH (install: false), nothing of GitHub's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_action_file_is_valid_for_github() -> None:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe, "check-jsonschema is part of the test extra"
    for schema, path in (
        ("vendor.github-actions", ROOT / "action.yml"),
        ("vendor.github-workflows", ROOT / "docs" / "examples" / "gpu-preflight.yml"),
    ):
        proc = subprocess.run(
            [exe, "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_input_is_used_and_every_output_is_set(tmp_path: Path) -> None:
    action = load_action()
    text = (ROOT / "action.yml").read_text()
    for name in action["inputs"]:
        assert f"inputs.{name}" in text, f"input {name} is declared but never used"
    run = run_action({"install": "false", "target": str(TARGETS / "h100.json")}, tmp_path, _environ())
    assert set(run.outputs) == set(action["outputs"])
    assert all(run.outputs[k] != "" for k in run.outputs), run.outputs


def test_a_required_variant_that_is_not_ready_fails_the_job_and_says_why(tmp_path: Path) -> None:
    run = run_action(
        {"install": "false", "target": str(TARGETS / "h100-torch213.json"), "require": "fa2"},
        tmp_path,
        _environ(),
    )
    assert run.failed and run.outputs["exit-code"] == "1"
    verdicts = json.loads(run.outputs["verdicts"])
    assert verdicts["fa2"] == run.outputs["fa2"] == "buildable"
    # The report is the whole, valid JSON document: annotations did not go into it.
    doc = json.loads((tmp_path / run.outputs["report"]).read_text())
    assert doc["schema"] == "flashdoctor/check/1" and doc["exit_code"] == 1
    # An error annotation that names the variant and why, and a summary that says the same.
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("::error")]
    assert any("fa2" in e and "buildable" in e for e in errors), errors
    assert "fa2" in run.summary and "buildable" in run.summary and "not ready" in run.summary


def test_required_variants_are_read_in_any_case(tmp_path: Path) -> None:
    # Before: `require: FA2` (as the docs title the variants) was bad input, exit code 2.
    run = run_action(
        {"install": "false", "target": str(TARGETS / "h100-torch213.json"), "require": "FA2, Fa3"},
        tmp_path,
        _environ(),
    )
    assert run.failed and run.outputs["exit-code"] == "1", run.stderr
    errors = [data for name, _, data in workflow_commands(run.stderr) if name == "error"]
    assert any("fa2 is buildable, not ready" in e for e in errors), run.stderr
    assert any("fa3 is installable, not ready" in e for e in errors), run.stderr


def test_a_ready_machine_passes_with_its_verdicts(tmp_path: Path) -> None:
    run = run_action({"install": "false", "target": str(TARGETS / "h100.json")}, tmp_path, _environ())
    assert not run.failed and run.outputs["exit-code"] == "0"
    assert set(json.loads(run.outputs["verdicts"])) == {"fa2", "fa3", "fa4"}


def test_this_gpu_less_machine_is_checked_for_real(tmp_path: Path) -> None:
    run = run_action(
        {"install": "false", "require": "fa2, fa3", "python": sys.executable}, tmp_path, _environ()
    )
    assert run.failed and run.outputs["exit-code"] == "1"
    assert run.outputs["fa2"] == run.outputs["fa3"] == "unsupported"
    assert any(line.startswith("::error") for line in run.stderr.splitlines())


def test_bad_input_is_a_clear_failure(tmp_path: Path) -> None:
    run = run_action({"install": "false", "target": str(tmp_path / "nope.json")}, tmp_path, _environ())
    assert run.failed and run.outputs["exit-code"] == "2"
    assert "nope.json" in run.stderr
    # ... and an annotation says it on the run's page (before: only "exit code 2" there)
    errors = [data for name, _, data in workflow_commands(run.stderr) if name == "error"]
    assert any("cannot read target spec" in e and "nope.json" in e for e in errors), run.stderr
    run = run_action({"install": "false", "require": "fa2 fa5"}, tmp_path, _environ())
    assert run.failed and run.outputs["exit-code"] == "2"
    errors = [data for name, _, data in workflow_commands(run.stderr) if name == "error"]
    assert any("'fa5' is not one of" in e for e in errors), run.stderr


def test_a_switch_that_is_neither_true_nor_false_is_bad_input(tmp_path: Path) -> None:
    # Before: `strict: yes` (or `smoke: on`) was silently false, and the preflight passed without it.
    t4 = str(TARGETS / "t4.json")  # exit 0, or 1 with --strict (bf16-unsupported is a warning)
    run = run_action({"install": "false", "target": t4, "strict": "yes"}, tmp_path, _environ())
    assert run.failed and run.outputs["exit-code"] == "2"
    errors = [data for name, _, data in workflow_commands(run.stderr) if name == "error"]
    assert any("strict" in e and "true or false" in e for e in errors), run.stderr
    # GitHub's own comparison (`if: inputs.install == 'true'`) ignores case; so do the switches now
    run = run_action({"install": "false", "target": t4, "strict": "True"}, tmp_path, _environ())
    assert run.failed and run.outputs["exit-code"] == "1"


def test_the_report_goes_to_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    # Before: bash could not open the file, so flashdoctor never ran and exit-code was 1 ("a failing check").
    path = "reports/preflight/check.json"
    run = run_action(
        {"install": "false", "target": str(TARGETS / "h100.json"), "json-path": path}, tmp_path, _environ()
    )
    assert not run.failed and run.outputs["exit-code"] == "0", run.stderr
    assert run.outputs["report"] == path and json.loads((tmp_path / path).read_text())["exit_code"] == 0


def test_an_empty_json_path_is_the_default(tmp_path: Path) -> None:
    # `json-path: ${{ inputs.report }}` with the input unset: bash's "No such file or directory" and
    # exit-code 1 ("a failing check"), flashdoctor never ran. Empty is the default now, as for `python`.
    run = run_action(
        {"install": "false", "target": str(TARGETS / "h100.json"), "json-path": ""}, tmp_path, _environ()
    )
    assert not run.failed and run.outputs["exit-code"] == "0", run.stderr
    default = load_action()["inputs"]["json-path"]["default"]
    assert run.outputs["report"] == default and json.loads((tmp_path / default).read_text())["exit_code"] == 0


def test_a_json_path_that_cannot_be_written_is_bad_input(tmp_path: Path) -> None:
    # Before: bash's own error ("reports: Is a directory") and exit-code 1, as if a check had failed.
    (tmp_path / "reports").mkdir()
    (tmp_path / "a-file").write_text("")
    for path, why in (("reports", "is a folder"), ("a-file/check.json", "cannot be written")):
        run = run_action(
            {"install": "false", "target": str(TARGETS / "h100.json"), "json-path": path},
            tmp_path,
            _environ(),
        )
        assert run.failed and run.outputs["exit-code"] == "2", (path, run.stderr)
        errors = [data for name, _, data in workflow_commands(run.stderr) if name == "error"]
        assert any("json-path" in e and why in e for e in errors), (path, run.stderr)
        assert "bash:" not in run.stderr and "mkdir:" not in run.stderr, run.stderr


def test_an_output_value_cannot_write_other_outputs(tmp_path: Path) -> None:
    # A json-path built from an expression may hold a newline; written as `report=VALUE`, its second line
    # was an output of its own (here a forged exit-code). Now such a value is a `name<<DELIMITER` block.
    path = "check\nexit-code=0\n.json"
    run = run_action(
        {"install": "false", "target": str(TARGETS / "h100.json"), "require": "fa2", "json-path": path},
        tmp_path,
        _environ(),
    )
    assert run.failed and run.outputs["exit-code"] == "1" and run.outputs["report"] == path
    assert json.loads((tmp_path / path).read_text())["exit_code"] == 1


def test_file_command_parser_reads_both_forms() -> None:
    assert parse_file_commands("a=1\nb<<EOF\nx\ny\nEOF\nc=z=1\n") == {"a": "1", "b": "x\ny", "c": "z=1"}


@pytest.mark.slow
def test_the_install_step_installs_flashdoctor_into_its_own_venv(tmp_path: Path) -> None:
    run = run_action({"target": str(TARGETS / "h100.json")}, tmp_path, _environ(), timeout=600)
    assert run.steps[0]["name"] == "Install flashdoctor" and run.steps[0]["code"] == 0, run.steps[0][
        "stderr"
    ][-2000:]
    assert not run.failed, run.stderr[-2000:]
    assert (tmp_path / "runner-temp" / "flashdoctor-venv" / "bin" / "flashdoctor").exists()


def test_the_run_scripts_pass_shellcheck() -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (Debian: apt install shellcheck)")
    for step in load_action()["runs"]["steps"]:
        script = step["run"].replace("${{", "$((").replace("}}", "))")
        proc = subprocess.run(
            [exe, "-s", "bash", "-"], input=script, text=True, capture_output=True, timeout=60
        )
        assert proc.returncode == 0, f"{step['name']}: {proc.stdout}"


def test_actionlint_accepts_a_workflow_that_uses_the_action(tmp_path: Path) -> None:
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (a Go program: https://github.com/rhysd/actionlint)")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    shutil.copy(ROOT / "docs" / "examples" / "gpu-preflight.yml", tmp_path / ".github" / "workflows")
    (tmp_path / ".github" / "actionlint.yaml").write_text("self-hosted-runner:\n  labels: [gpu]\n")
    (tmp_path / ".github" / "workflows" / "local.yml").write_text(
        "name: local\non: [push]\njobs:\n  preflight:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - id: fa\n        uses: ./\n        with:\n"
        "          require: fa2\n          smoke: 'true'\n"
        '      - run: echo "${{ steps.fa.outputs.fa2 }} ${{ steps.fa.outputs.exit-code }}"\n'
    )
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    proc = subprocess.run([exe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
