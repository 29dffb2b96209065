"""`flashdoctor check` through click's runner (targets: no probing) and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flashdoctor.cli import cli, main
from flashdoctor.knowledge.schemas import schema_validator
from tests.conftest import TARGETS

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def test_json_report_validates_and_carries_the_exit_code():
    r = run("check", "--target", target("old-driver"), "--json")
    doc = json.loads(r.output)
    schema_validator("check-report.schema.json").validate(doc)
    assert doc["schema"] == "flashdoctor/check/1"
    assert doc["exit_code"] == 1
    assert doc["source"].startswith("target:")
    assert {f["code"] for f in doc["findings"]} >= {"driver-too-old"}


@pytest.mark.parametrize("name", sorted(p.stem for p in TARGETS.glob("*.json")))
def test_every_target_renders_both_ways(name: str):
    r = run("check", "--target", target(name), "--json")
    schema_validator("check-report.schema.json").validate(json.loads(r.output))
    human = run("check", "--target", target(name), "-v")
    assert "flashdoctor check" in human.output
    for v in ("fa2", "fa3", "fa4"):
        assert v in human.output


def test_exit_codes_strict_and_require():
    # main() is the console script: it turns return values into exit codes
    def code(*args: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        return int(exc.value.code or 0)

    assert code("check", "--target", target("h100")) == 0
    assert code("check", "--target", target("nvcc-mismatch"), "--strict") == 1
    assert code("check", "--target", target("h100"), "--require", "fa2") == 1
    assert code("check", "--target", target("old-driver")) == 1
    assert code("check", "--target", "/nonexistent.json") == 2
    assert code("check", "--bogus") == 2
    assert code("check", "--target", target("h100"), "--python", sys.executable) == 2


def test_require_ready(tmp_path: Path):
    spec = json.loads(Path(target("h100")).read_text())
    spec["installed"] = {"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["sm_90"]}}
    p = tmp_path / "ready.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(SystemExit) as exc:
        main(["check", "--target", str(p), "--require", "fa2"])
    assert exc.value.code == 0


def test_bad_target_message_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"gpus": [{"capability": 9}], "cpus": "many"}))
    with pytest.raises(SystemExit) as exc:
        main(["check", "--target", str(p)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'cpus'" in err and "Traceback" not in err


def test_github_actions_annotations_and_summary(tmp_path: Path):
    summary = tmp_path / "summary.md"
    r = run(
        "check", "--target", target("t4"), env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    )
    lines = [ln for ln in r.output.splitlines() if ln.startswith("::")]
    assert any(ln.startswith("::error title=flashdoctor gpu-unsupported (fa2)::") for ln in lines)
    assert any(ln.startswith("::warning title=flashdoctor bf16-unsupported::") for ln in lines)
    text = summary.read_text()
    assert "## flashdoctor check" in text and "| fa2 | **unsupported** |" in text


def test_no_annotations_outside_github():
    r = run("check", "--target", target("t4"))
    assert "::error" not in r.output


def test_save_target_round_trip(tmp_path: Path):
    out = tmp_path / "saved.json"
    run("check", "--target", target("b200"), "--save-target", str(out))
    saved = json.loads(out.read_text())
    schema_validator("target.schema.json").validate(saved)
    a = json.loads(run("check", "--target", target("b200"), "--json").output)
    b = json.loads(run("check", "--target", str(out), "--json").output)
    assert a["findings"] == b["findings"] and a["verdicts"] == b["verdicts"]


def test_internal_error_is_reported_with_a_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import flashdoctor.decide.checks

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(flashdoctor.decide.checks, "run_checks", boom)
    with pytest.raises(SystemExit) as exc:
        main(["check", "--target", target("h100")])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "unexpected error" in err and "simulated bug" in err
    log = err.split("traceback is in ")[1].split(";")[0]
    assert "RuntimeError: simulated bug" in Path(log).read_text()


@pytest.mark.system
def test_real_process_check_json():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    schema_validator("check-report.schema.json").validate(doc)
    assert doc["exit_code"] == p.returncode
    v = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert v.returncode == 0 and "flashdoctor" in v.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "nosuchcommand"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.system
def test_no_color_and_pipe_output_is_plain():
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--target", target("t4")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "\x1b[" not in p.stdout
    assert "✗" in p.stdout
