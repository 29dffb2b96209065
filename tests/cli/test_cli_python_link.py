"""--python given as a symbolic link, outside any venv, to a venv's bin/python (~/bin/py ->
~/venvs/x/bin/python): Python finds pyvenv.cfg next to the path it was started by, not next to the link's
target, so that path runs as the base interpreter (sys.prefix the base install; `~/bin/py -m pip` installs
there too). A real venv and a real link, through the CLI: check warns naming both, install refuses."""

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
from tests.support.paths import ROOT
from tests.support.venvs import site_packages

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the link ~/bin/py, the venv it links into)."""
    root = tmp_path_factory.mktemp("link")
    venv = root / "venvs" / "x"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (root / "bin").mkdir()
    link = root / "bin" / "py"
    link.symlink_to(venv / "bin" / "python")
    prefix = subprocess.run(
        [str(link), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(prefix) != venv  # the premise: the link runs as the base Python
    return link, venv


def _run(*args: str):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _said(text: str) -> str:
    """The text unwrapped (messages are wrapped at words to the terminal's width)."""
    return " ".join(text.split())


def test_check_warns_that_the_link_runs_as_the_base_python(linked: tuple[Path, Path]) -> None:
    link, venv = linked
    r = _run("check", "--python", str(link), "--no-import-test", "--json")
    said = _said(r.stderr)
    assert f"{link} runs as the base Python" in said, said
    assert f"not as the virtual environment it links to ({venv})" in said
    assert f"pass {venv / 'bin' / 'python'} to work on that environment" in said

    doc = json.loads(r.stdout)
    schema_validator("check-report.schema.json").validate(doc)
    assert doc["interpreter"]["path"] == str(link)
    assert doc["interpreter"]["linked_venv"] == str(venv)


def test_install_refuses_to_act_on_the_base_python_through_the_link(
    linked: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    link, venv = linked
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    with pytest.raises(SystemExit) as exc:  # main() is the console script: a usage error exits 2
        main(["install", "--python", str(link), "--yes"])
    assert exc.value.code == 2
    said = _said(capsys.readouterr().err)
    assert f"{link} runs as the base Python {os.path.realpath(link)}" in said, said
    assert f"pass {venv / 'bin' / 'python'} to work on that environment" in said
    assert "Traceback" not in said


def test_the_venvs_own_python_draws_no_warning(linked: tuple[Path, Path]) -> None:
    _link, venv = linked
    r = _run("check", "--python", str(venv / "bin" / "python"), "--no-import-test", "--json")
    assert "base Python" not in r.stderr


@pytest.mark.slow
def test_run_as_python_dash_m_through_the_link_says_how_to_run_flashdoctor_in_the_venv(
    linked: tuple[Path, Path],
) -> None:
    """`~/bin/py -m flashdoctor check`: the link is the interpreter flashdoctor runs in, given with no
    --python, yet the warning said "pass <venv>/bin/python" (there was nothing to pass). It says to run
    flashdoctor with the venv's own python now. flashdoctor and its dependencies reach the base Python the
    link runs as through PYTHONPATH (they are not installed there)."""
    link, venv = linked
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(site_packages(Path(sys.executable)))])
    p = subprocess.run(
        [str(link), "-m", "flashdoctor", "check", "--no-import-test", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    said = _said(p.stderr)
    assert f"{link} runs as the base Python" in said, said
    assert (
        f"run flashdoctor with the venv's own python ({venv / 'bin' / 'python'} -m flashdoctor ...)" in said
    )
    assert "pass " not in said
    assert json.loads(p.stdout)["interpreter"]["reason"] == "python -m"


def test_a_default_python_on_path_that_is_such_a_link_is_told_to_pass_python(
    linked: tuple[Path, Path], tmp_path: Path
) -> None:
    """The first python3 on PATH is such a link (an image's): the advice named the venv's python to
    "pass" without saying as what; it says --python now."""
    _link, venv = linked
    (tmp_path / "python3").symlink_to(venv / "bin" / "python")
    env = {"PATH": str(tmp_path), "VIRTUAL_ENV": None, "CONDA_PREFIX": None}
    r = CliRunner().invoke(cli, ["check", "--no-import-test", "--json"], env=env, catch_exceptions=False)
    said = _said(r.stderr)
    assert f"{tmp_path / 'python3'} runs as the base Python" in said, said
    assert f"pass --python {venv / 'bin' / 'python'} to work on that environment" in said
