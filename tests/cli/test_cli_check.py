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
from tests.support.paths import ROOT, TARGETS


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def test_json_report_validates_and_carries_the_exit_code():
    r = run("check", "--target", target("old-driver"), "--json")
    doc = json.loads(r.stdout)
    schema_validator("check-report.schema.json").validate(doc)
    assert doc["schema"] == "flashdoctor/check/1"
    assert doc["exit_code"] == 1
    assert doc["source"].startswith("target:")
    assert {f["code"] for f in doc["findings"]} >= {"driver-too-old"}


@pytest.mark.parametrize("name", sorted(p.stem for p in TARGETS.glob("*.json")))
def test_every_target_renders_both_ways(name: str):
    r = run("check", "--target", target(name), "--json")
    schema_validator("check-report.schema.json").validate(json.loads(r.stdout))
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
    a = json.loads(run("check", "--target", target("b200"), "--json").stdout)
    b = json.loads(run("check", "--target", str(out), "--json").stdout)
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


# -- what each GPU runs, shown also when every check passes (issue 17) --------------------------------------
def test_gpu_line_says_which_dtypes_each_variant_runs() -> None:
    out = run("check", "--target", target("h100")).output
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if "[gpu-found]" in ln)
    assert (
        lines[i + 1].strip() == "runs: fa2 fp16, bf16 · fa3 fp16, bf16, fp8 (forward only) · fa4 fp16, bf16"
    )
    t4 = run("check", "--target", target("t4")).output
    assert "runs: no FlashAttention variant (use PyTorch SDPA)" in t4
    a100 = run("check", "--target", target("rtx4090")).output
    assert "fa3 fp16, bf16 (experimental)" in a100
    doc = json.loads(run("check", "--target", target("h100"), "--json").stdout)
    schema_validator("check-report.schema.json").validate(doc)
    assert doc["gpu_support"][0]["variants"]["fa3"]["dtypes"] == ["fp16", "bf16", "fp8-forward"]


# -- every fix is a command that works as printed --------------------------------------------------------
def _fixes(doc: dict) -> list[str]:  # type: ignore[type-arg]
    out = [f["fix"] for f in doc["findings"] if f["fix"]]
    out += [v["fix"] for v in doc["verdicts"].values() if v["fix"]]
    return out


@pytest.mark.parametrize("name", sorted(p.stem for p in TARGETS.glob("*.json")))
def test_flashdoctor_fixes_parse_with_the_real_cli(name: str) -> None:
    """A fix that names a flashdoctor command is accepted by flashdoctor's own parser, options and all;
    a pip fix that installs torch pins the installed version when it replaces one."""
    import shlex

    import click

    doc = json.loads(run("check", "--target", target(name), "--json").stdout)
    for fix in (part for whole in _fixes(doc) for part in whole.split("; then ")):
        if fix.startswith("flashdoctor "):
            args = shlex.split(fix)[1:]
            command = cli.get_command(click.Context(cli), args[0])
            assert command is not None, fix
            command.make_context(args[0], args[1:], parent=click.Context(cli))  # raises on a bad option
        if "torch" in fix and "--index-url https://download.pytorch.org/whl/" in fix:
            torch = doc["environment"].get("torch")
            if torch and "--force-reinstall torch==" in fix:
                assert f"torch=={torch.split('+')[0]} " in fix, fix
            elif torch:
                assert "--force-reinstall torch " in fix, (
                    fix
                )  # an unpinned reinstall: the newest for the driver


def _torch_wheel(out: Path, version: str) -> Path:
    from tests.support.install_helpers import make_wheel

    return make_wheel(
        out, dist="torch", version=version, tag="py3-none-any", files={"torch/__init__.py": ""}, requires=()
    )


@pytest.mark.system
@pytest.mark.slow
def test_the_cpu_torch_fix_replaces_the_build_as_printed(tmp_path: Path) -> None:
    """Run the printed fix with real pip against a loopback copy of the PyTorch cu130 index, in a venv
    whose torch is 2.13.0+cpu: the old advice changes nothing ("Requirement already satisfied"), the new
    one installs 2.13.0+cu130."""
    import shlex
    from urllib.parse import quote

    from flashdoctor.decide.explain import run_checks
    from tests.support.loopback import Response, serve

    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and "proxy" not in k.lower()}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    pip = [py, "-m", "pip", "install", "--no-index", "-q"]
    subprocess.run([*pip, str(_torch_wheel(tmp_path / "w", "2.13.0+cpu"))], check=True, env=env, timeout=120)
    cuda = _torch_wheel(tmp_path / "cu130", "2.13.0+cu130")

    def torch_version() -> str:
        code = "import importlib.metadata as m; print(m.version('torch'))"
        return subprocess.run(
            [py, "-c", code], capture_output=True, text=True, env=env, timeout=60
        ).stdout.strip()

    from tests.support.targets import target_env

    fix = next(
        f.fix
        for f in run_checks(target_env("h100-cpu-torch", python_executable=py)).findings
        if f.code == "torch-cpu-only"
    )
    assert fix is not None and fix.startswith(f"{py} -m pip install --force-reinstall torch==2.13.0 ")
    with serve() as srv:
        href = f"/whl/cu130/{quote(cuda.name)}"
        srv.route("/whl/cu130/torch/", Response(200, f'<a href="{href}">{cuda.name}</a>'))
        srv.route(href, Response(200, cuda.read_bytes()))
        local = lambda cmd: shlex.split(cmd.replace("https://download.pytorch.org", srv.base))  # noqa: E731
        old = subprocess.run(
            local(f"{py} -m pip install torch --index-url https://download.pytorch.org/whl/cu130"),
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert old.returncode == 0 and "Requirement already satisfied" in old.stdout
        assert torch_version() == "2.13.0+cpu"
        new = subprocess.run(local(fix), capture_output=True, text=True, env=env, timeout=120)
        assert new.returncode == 0, new.stdout + new.stderr
    assert torch_version() == "2.13.0+cu130"
