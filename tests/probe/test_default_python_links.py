"""choose_interpreter with pythons laid out as real installs lay them out: a venv's python is a symbolic
link to the base interpreter, so resolving links to the end cannot tell a venv from its base."""

from __future__ import annotations

import os
from pathlib import Path

from flashdoctor.probe.default_python import Interpreter, choose_interpreter


def _base(root: Path) -> Path:
    """A base interpreter: <root>/bin/python3.12 and the python3 link to it, as a distribution lays out."""
    exe = root / "bin" / "python3.12"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "bin" / "python3").symlink_to("python3.12")
    return exe


def _venv(root: Path, base: Path) -> Path:
    """A venv as `python -m venv` makes it: pyvenv.cfg, and bin/python3 a link to the base interpreter."""
    (root / "bin").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text(f"home = {base.parent}\n")
    (root / "bin" / "python3").symlink_to(base)
    return root / "bin" / "python3"


def _choose(
    path: list[Path],
    own: Path,
    own_prefix: Path,
    environ: dict[str, str] | None = None,
    own_has_torch: bool = False,
    module_run: bool = False,
) -> Interpreter:
    """choose_interpreter with PATH = the directories of ``path``, flashdoctor running as ``own``."""
    return choose_interpreter(
        {"PATH": os.pathsep.join(str(p.parent) for p in path), **(environ or {})},
        own_executable=str(own),
        own_prefix=str(own_prefix),
        windows=False,
        own_has_torch=own_has_torch,
        module_run=module_run,
    )


def test_flashdoctor_in_a_venv_finds_the_system_python_its_venv_links_to(tmp_path: Path) -> None:
    # pipx / uv tool / `python -m venv .venv`: flashdoctor's venv links to /usr/bin/python3.12, and the
    # user's torch lives in that system python. It is the user's, not flashdoctor's own.
    base = _base(tmp_path / "usr")
    tool = _venv(tmp_path / "tool", base)
    got = _choose([tool, base], tool, tmp_path / "tool")
    assert (got.path, got.reason) == (str(base.parent / "python3"), "PATH")


def test_flashdoctor_in_the_system_python_finds_a_venv_on_path(tmp_path: Path) -> None:
    base = _base(tmp_path / "usr")
    user = _venv(tmp_path / "train", base)
    got = _choose([base, user], base, tmp_path / "usr")
    # the system python3 is flashdoctor's own; the venv that links to it is not
    assert (got.path, got.reason) == (str(user), "PATH")


def test_a_chain_of_links_into_flashdoctors_venv_is_its_own(tmp_path: Path) -> None:
    base = _base(tmp_path / "usr")
    tool = _venv(tmp_path / "tool", base)
    links = tmp_path / "links"
    links.mkdir()
    (links / "python3").symlink_to(tool)
    other = _base(tmp_path / "opt")
    got = _choose([links / "python3", other], tool, tmp_path / "tool")
    assert got.path == str(other.parent / "python3")


def test_a_link_loop_is_not_followed_forever(tmp_path: Path) -> None:
    loop = tmp_path / "loop" / "bin"
    loop.mkdir(parents=True)
    (loop / "python3").symlink_to(loop / "python")
    (loop / "python").symlink_to(loop / "python3")
    base = _base(tmp_path / "usr")
    got = _choose([loop / "python3", base], tmp_path / "none" / "python3", tmp_path / "none")
    assert got.path == str(base.parent / "python3")  # a dangling loop is no executable


def test_flashdoctor_installed_in_the_training_env_first_on_path_checks_that_env(tmp_path: Path) -> None:
    # a Docker image: pip install flashdoctor into /opt/conda (torch there), no activation, PATH first
    conda = _base(tmp_path / "opt" / "conda")
    system = _base(tmp_path / "usr")
    prefix = tmp_path / "opt" / "conda"
    got = _choose([conda, system], conda, prefix, own_has_torch=True)
    assert (got.path, got.reason) == (str(conda), "own-torch")
    # the same environment without torch is a tool's: the user's Python comes next on PATH
    assert _choose([conda, system], conda, prefix).path == str(system.parent / "python3")


def test_python_dash_m_names_its_interpreter(tmp_path: Path) -> None:
    base = _base(tmp_path / "usr")
    user = _venv(tmp_path / "train", base)
    got = _choose(
        [base], user, tmp_path / "train", environ={"VIRTUAL_ENV": str(tmp_path / "other")}, module_run=True
    )
    assert (got.path, got.reason) == (str(user), "python -m")
    assert got.to_json() == {"path": str(user), "reason": "python -m", "why": got.why}
    assert "python -m flashdoctor" in got.describe()


def test_a_relative_link_to_a_venv_names_it_by_its_real_path(tmp_path: Path) -> None:
    # ~/x/bin/py -> ../venv/bin/python3 gave the public JSON field linked_venv as "<tmp>/x/bin/../venv".
    from flashdoctor.probe.default_python import linked_venv

    base = _base(tmp_path / "usr")
    _venv(tmp_path / "x" / "venv", base)
    link = tmp_path / "x" / "bin" / "py"
    link.parent.mkdir()
    link.symlink_to("../venv/bin/python3")
    got = linked_venv(str(link))
    real = os.path.realpath(tmp_path)
    assert got is not None and (got.prefix, got.python) == (f"{real}/x/venv", f"{real}/x/venv/bin/python3")
