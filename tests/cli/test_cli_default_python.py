"""flashdoctor installed as an isolated tool checks the environment the user is in (issue 17): a real
venv holding flashdoctor and its dependencies but no torch (as `python -m venv .venv && pip install .`,
pipx or `uv tool install` make one), started by its console script; a second real venv with the CPU torch
is the user's. Whether that venv is first on PATH, activated (VIRTUAL_ENV) or a conda env
(CONDA_PREFIX), `check` diagnoses it, and says so on its first line and in the JSON."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.paths import ROOT

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _closure(name: str) -> set[str]:
    """flashdoctor's runtime dependencies, recursively (no extras: no torch)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = md.distribution(todo.pop())
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is not None and not r.marker.evaluate({"extra": ""}):
                continue
            if r.name.lower() not in seen:
                seen.add(r.name.lower())
                todo.append(r.name)
    return seen


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with flashdoctor and its dependencies (linked from this one, nothing downloaded) and no
    torch; its console script bin/flashdoctor as pip writes one."""
    d = tmp_path_factory.mktemp("tool") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True)
    site = next((d / "lib").glob("python3*/site-packages"))
    deps = d / "deps"
    deps.mkdir()
    for name in _closure("flashdoctor"):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = Path(str(dist.locate_file(top)))
            if src.exists() and not (deps / top).exists():
                (deps / top).symlink_to(src)
    (site / "flashdoctor-dev.pth").write_text(f"{ROOT}\n{deps}\n")
    script = d / "bin" / "flashdoctor"
    script.write_text(
        f"#!{d / 'bin' / 'python'}\nimport sys\nfrom flashdoctor.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    probe = subprocess.run([str(d / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, "the tool venv must not see torch"
    return d


def _env(path_dirs: list[Path], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([*(str(p) for p in path_dirs), "/usr/bin", "/bin"])
    env.update(extra)
    return env


def _check(tool: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool / "bin" / "flashdoctor"), "check", "--no-import-test", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _json(tool: Path, env: dict[str, str]) -> tuple[dict[str, object], str]:
    p = _check(tool, env, "--json")
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout), p.stderr


def test_the_tool_venv_first_on_path_is_skipped_for_the_users_torch_venv(
    tool: Path, torch_venv: Path
) -> None:
    user_bin = torch_venv.parent
    doc, err = _json(tool, _env([tool / "bin", user_bin]))
    assert doc["interpreter"] == {
        "path": str(user_bin / "python3"),
        "reason": "PATH",
        "why": "the first Python on PATH that is not flashdoctor's own",
    }
    assert doc["environment"]["torch"] == "2.13.0+cpu"  # type: ignore[index]
    assert " ".join(err.split()).startswith(
        f"python: {user_bin / 'python3'} (the first Python on PATH that is"
    )
    human = _check(tool, _env([tool / "bin", user_bin]))
    first = human.stdout.splitlines()[0]
    assert first.startswith(f"python: {user_bin / 'python3'}"), human.stdout
    assert "torch 2.13.0+cpu" in " ".join(human.stdout.split())
    assert "[torch-cpu-only]" in human.stdout and "[torch-missing]" not in human.stdout


def test_an_activated_venv_wins_over_path(tool: Path, torch_venv: Path) -> None:
    doc, err = _json(tool, _env([tool / "bin"], VIRTUAL_ENV=str(torch_venv.parents[1])))
    assert doc["interpreter"]["reason"] == "VIRTUAL_ENV"  # type: ignore[index]
    assert doc["environment"]["torch"] == "2.13.0+cpu"  # type: ignore[index]
    assert "(the activated virtual environment (VIRTUAL_ENV))" in " ".join(err.split())


def test_an_activated_conda_env(tool: Path, torch_venv: Path) -> None:
    doc, _err = _json(tool, _env([tool / "bin"], CONDA_PREFIX=str(torch_venv.parents[1])))
    assert doc["interpreter"]["reason"] == "CONDA_PREFIX"  # type: ignore[index]
    assert doc["interpreter"]["path"].startswith(str(torch_venv.parents[1]))  # type: ignore[index]
    assert doc["environment"]["torch"] == "2.13.0+cpu"  # type: ignore[index]


def test_without_another_python_the_tool_checks_itself_and_says_so(tool: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _env([tool / "bin"])
    env["PATH"] = os.pathsep.join([str(tool / "bin"), str(empty)])  # no system python either
    doc, err = _json(tool, env)
    assert doc["interpreter"]["reason"] == "own"  # type: ignore[index]
    assert doc["environment"]["torch"] is None  # type: ignore[index]
    assert re.match(r"python: \S+ \(flashdoctor's own", " ".join(err.split()))


def test_python_dash_m_checks_the_python_that_runs_it(tool: Path, torch_venv: Path) -> None:
    p = subprocess.run(
        [str(tool / "bin" / "python"), "-m", "flashdoctor", "check", "--json", "--no-import-test"],
        capture_output=True,
        text=True,
        env=_env([torch_venv.parent]),
        timeout=120,
    )
    doc = json.loads(p.stdout)
    assert doc["interpreter"]["reason"] == "python -m" and doc["environment"]["torch"] is None
