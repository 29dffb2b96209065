"""The default target interpreter is the environment the user is in (probe/default_python.py), with real
directories and executables laid out as venvs, conda envs and PATHs are."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.actions.check import check_python_target
from flashdoctor.errors import UsageError
from flashdoctor.probe.default_python import choose_interpreter


def _python(prefix: Path, name: str = "python3") -> Path:
    exe = prefix / "bin" / name
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return exe


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    return {
        "own": _python(tmp_path / "tool-venv"),
        "user": _python(tmp_path / "train-venv"),
        "conda": _python(tmp_path / "conda" / "envs" / "ml"),
        "system": _python(tmp_path / "usr", "python3"),
    }


def _own(layout: dict[str, Path]) -> dict[str, Any]:
    # flashdoctor's own venv as a tool's: no torch in it
    return {
        "own_executable": str(layout["own"]),
        "own_prefix": str(layout["own"].parents[1]),
        "own_has_torch": False,
    }


def test_an_activated_venv_wins(layout: dict[str, Path]) -> None:
    env = {
        "VIRTUAL_ENV": str(layout["user"].parents[1]),
        "CONDA_PREFIX": str(layout["conda"].parents[1]),
        "PATH": "",
    }
    got = choose_interpreter(env, **_own(layout), windows=False)
    assert (got.path, got.reason) == (str(layout["user"]), "VIRTUAL_ENV")
    assert "activated virtual environment" in got.describe()


def test_then_an_activated_conda_env(layout: dict[str, Path]) -> None:
    got = choose_interpreter(
        {"CONDA_PREFIX": str(layout["conda"].parents[1]), "PATH": ""}, **_own(layout), windows=False
    )
    assert (got.path, got.reason) == (str(layout["conda"]), "CONDA_PREFIX")


def test_flashdoctors_own_venv_on_path_is_skipped_for_the_users_python(layout: dict[str, Path]) -> None:
    # `.venv/bin/flashdoctor check` with the tool's venv first on PATH and the training venv after it
    path = os.pathsep.join(
        [str(layout["own"].parent), str(layout["user"].parent), str(layout["system"].parent)]
    )
    got = choose_interpreter({"PATH": path}, **_own(layout), windows=False)
    assert (got.path, got.reason) == (str(layout["user"]), "PATH")


def test_a_link_to_flashdoctors_own_python_is_its_own(layout: dict[str, Path], tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "python3").symlink_to(layout["own"])
    path = os.pathsep.join([str(links), str(layout["system"].parent)])
    got = choose_interpreter({"PATH": path}, **_own(layout), windows=False)
    assert got.path == str(layout["system"])


def test_an_activated_env_without_a_python_falls_through(layout: dict[str, Path], tmp_path: Path) -> None:
    env = {"VIRTUAL_ENV": str(tmp_path / "gone"), "PATH": str(layout["system"].parent)}
    assert choose_interpreter(env, **_own(layout), windows=False).reason == "PATH"


def test_nothing_else_means_flashdoctors_own(layout: dict[str, Path], tmp_path: Path) -> None:
    not_exe = tmp_path / "noexec"
    not_exe.mkdir()
    (not_exe / "python3").write_text("")  # not executable: not a candidate
    got = choose_interpreter(
        {"PATH": os.pathsep.join(["", str(not_exe), str(layout["own"].parent)])},
        **_own(layout),
        windows=False,
    )
    assert (got.path, got.reason) == (str(layout["own"]), "own")


def test_explicit_python_is_kept_as_given(layout: dict[str, Path]) -> None:
    got = choose_interpreter(
        {"VIRTUAL_ENV": str(layout["user"].parents[1])}, explicit="/x/python", windows=False
    )
    assert (got.path, got.reason) == ("/x/python", "--python")


def test_a_relative_python_path_is_taken_from_where_flashdoctor_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a build runs pip in the unpacked sources: `--python .venv/bin/python` failed there with "cannot start
    # .venv/bin/python" (found running a build by hand). The link is kept (a venv's python is one).
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    got = choose_interpreter({}, explicit=".venv/bin/python", windows=False)
    assert got.path == str(venv_python)
    assert choose_interpreter({}, explicit="python3.11", windows=False).path == "python3.11"  # no PATH


def test_a_bare_python_name_is_a_command_found_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--python python3` answered "no such file" on the GPU machine (scripts/gpu_check_speed.sh): a name is
    # looked up on PATH, as a shell does, before a file of that name in the current directory.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "python3.99"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    here = tmp_path / "here"
    here.mkdir()
    (here / "python3.99").write_text("not this one")
    monkeypatch.chdir(here)
    got = choose_interpreter({"PATH": str(bin_dir)}, explicit="python3.99", windows=False)
    assert (got.path, got.reason) == (str(exe), "--python")
    assert choose_interpreter({"PATH": str(tmp_path)}, explicit="python3.99", windows=False).path == str(
        here / "python3.99"
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    check_python_target("python3.99", None)  # valid: a command on PATH
    with pytest.raises(UsageError, match="no such command on PATH"):
        check_python_target("python3.98", None)
    with pytest.raises(UsageError, match=r"--python \./python3\.98: no such file$"):
        check_python_target("./python3.98", None)


def test_a_path_entry_that_cannot_be_looked_at_is_skipped(layout: dict[str, Path], tmp_path: Path) -> None:
    # a PATH entry (or VIRTUAL_ENV) whose stat fails with an error other than "no such file": a name too
    # long here, a directory of another user's (EACCES) for a user who is not root; check ended with exit 3
    unreadable = str(tmp_path / ("x" * 300))
    env = {"VIRTUAL_ENV": unreadable, "PATH": os.pathsep.join([unreadable, str(layout["system"].parent)])}
    got = choose_interpreter(env, **_own(layout), windows=False)
    assert (got.path, got.reason) == (str(layout["system"]), "PATH")


def test_a_relative_path_entry_gives_the_interpreter_an_absolute_path(
    layout: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PATH=.:... (or venv/bin) gave "python3" / "venv/bin/python3": a bare name that running it looks up on
    # PATH again (another Python), and a relative path that a build, run in another directory, cannot start
    user_bin, user_prefix = layout["user"].parent, layout["user"].parents[1]
    for entry, cwd in ((".", user_bin), ("bin", user_prefix)):
        monkeypatch.chdir(cwd)
        path = os.pathsep.join([str(layout["own"].parent), entry, str(layout["system"].parent)])
        got = choose_interpreter({"PATH": path}, **_own(layout), windows=False)
        assert (got.path, got.reason) == (str(layout["user"]), "PATH")
    got = choose_interpreter({"VIRTUAL_ENV": ".", "PATH": ""}, **_own(layout), windows=False)
    assert (got.path, got.reason) == (str(layout["user"]), "VIRTUAL_ENV")
    monkeypatch.chdir(user_bin)
    got = choose_interpreter({"PATH": "."}, explicit="python3", windows=False)
    assert (got.path, got.reason) == (str(layout["user"]), "--python")
