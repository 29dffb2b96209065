"""Install and uninstall with the target environment's own installer: its pip, or uv where the
environment has no pip or was made by uv.

Always ``--no-deps`` for the wheel itself (a FlashAttention wheel lists ``torch`` as a dependency, and a
resolver that sees it may "upgrade" torch to a CUDA build it was never meant to have). Dependencies the
target lacks are added in a separate step in which *every* installed distribution is pinned to its
current version by a constraints file (torch first among them): that step can only add packages, and
fails instead of changing any. flashdoctor never changes torch.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from flashdoctor.actions.net.download import open_own_file
from flashdoctor.actions.net.urls import redact_text
from flashdoctor.errors import InstallError
from flashdoctor.probe.state import TargetState
from flashdoctor.probe.system import run

PIP_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Installer:
    kind: Literal["pip", "uv"]
    python: str
    uv: str | None = None

    def _base(self) -> list[str]:
        if self.kind == "uv":
            assert self.uv is not None
            return [self.uv, "pip"]
        return [self.python, "-m", "pip"]

    def install_cmd(
        self,
        requirements: Sequence[str],
        constraints: Path | None,
        no_deps: bool = True,
        reinstall: bool = True,
        find_links: Sequence[str] = (),
        index_url: str | None = None,
    ) -> list[str]:
        cmd = [*self._base(), "install"]
        if self.kind == "uv":
            cmd += ["--python", self.python]
            if reinstall:
                cmd.append("--reinstall")
        else:
            cmd += ["--no-input", "--disable-pip-version-check", "--progress-bar", "off"]
            if reinstall:
                cmd.append("--force-reinstall")
        if no_deps:
            cmd.append("--no-deps")
        if constraints is not None:
            cmd += ["-c", str(constraints)]
        for fl in find_links:
            cmd += ["--find-links", fl]
        if index_url:
            cmd += ["--index-url", index_url]
        cmd += list(requirements)
        return cmd

    def uninstall_cmd(self, dists: Sequence[str]) -> list[str]:
        if self.kind == "uv":
            return [*self._base(), "uninstall", "--python", self.python, *dists]
        return [*self._base(), "uninstall", "-y", "--disable-pip-version-check", *dists]

    def describe(self) -> str:
        return "uv pip" if self.kind == "uv" else f"{self.python} -m pip"


def choose_installer(state: TargetState, environ: Mapping[str, str], python: str) -> Installer:
    """pip when the target has it (and is not uv-managed with uv at hand); uv otherwise."""
    uv = shutil.which("uv", path=environ.get("PATH", os.defpath))
    if state.env_manager == "uv" and uv:
        return Installer("uv", python, uv)
    if state.has_pip:
        return Installer("pip", python)
    if uv:
        return Installer("uv", python, uv)
    raise InstallError(
        f"the target interpreter {python} has no pip, and uv is not on PATH",
        hint=f"add pip with `{python} -m ensurepip`, or install uv",
    )


def constraints_text(state: TargetState, everything: bool = False, exclude: Sequence[str] = ()) -> str:
    """Pin torch (and with ``everything`` every other installed distribution but ``exclude``), so that
    an install can only add packages."""
    lines = [
        "# written by flashdoctor: the target's torch"
        + (" and every other distribution" if everything else "")
    ]
    if state.torch:
        lines.append(f"torch=={state.torch}")
    if everything:
        skip = {canonicalize_name(e) for e in exclude} | {"torch"}
        for name, version in sorted(state.dists.items()):
            if name in skip or not version:
                continue
            try:
                Version(version)
            except InvalidVersion:
                continue  # a legacy version string pip would refuse to parse
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def run_installer(cmd: list[str], environ: Mapping[str, str], log: Path | None = None) -> tuple[int, str]:
    env = dict(environ)
    env.setdefault("PIP_NO_INPUT", "1")
    # In a session of its own, stopped as a group: a SIGTERM to flashdoctor alone or a timeout stops what pip
    # started too (a build backend compiling an sdist, nvcc), before the restore; a terminal's Ctrl-C reaches
    # flashdoctor, which stops the group. It needs no terminal: stdin is closed and PIP_NO_INPUT is set.
    rc, out, err = run(cmd, env=env, timeout=PIP_TIMEOUT, own_group=True)
    # credentials in an --index-url (and a token) never reach the log or the result
    text = redact_text((out + ("\n" if out and err else "") + err).strip(), (environ.get("GITHUB_TOKEN"),))
    if log is not None:
        try:
            # never through a link planted at the (predictable) log name; private to this user
            fd = open_own_file(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write("$ " + redact_text(" ".join(cmd)) + f"\n{text}\n[exit {rc}]\n\n")
        except OSError:
            pass
    return rc, text
