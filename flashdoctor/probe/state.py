"""The target environment as the installer needs it: read by a small script run in the target interpreter."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from flashdoctor.errors import InstallError
from flashdoctor.probe.interpreter import TargetScriptError, run_script, script_file

STATE_TIMEOUT = 60.0


@dataclass(frozen=True)
class InstalledDist:
    name: str
    version: str | None
    installer: str | None
    files: tuple[str, ...]  # absolute paths of the files its RECORD lists and that exist
    has_record: bool


@dataclass(frozen=True)
class TargetState:
    executable: str
    prefix: str
    purelib: str
    platlib: str
    scripts: str
    has_pip: bool
    env_manager: str
    markers: dict[str, str]
    dists: dict[str, str]  # canonical name -> version
    torch: str | None
    described: dict[str, InstalledDist | None] = field(default_factory=dict)
    # (site directory, mtime in ns) taken by the target before it listed anything: see is_current().
    stamp: tuple[tuple[str, int | None], ...] = ()

    def dist(self, name: str) -> InstalledDist | None:
        return self.described.get(canonicalize_name(name))

    def is_current(self) -> bool:
        """True when no distribution can have been added or removed since this state was read.

        Installing or removing a distribution creates or deletes its *.dist-info directory in purelib or
        platlib, which changes that directory's mtime; a state read ahead of time (before the environment
        lock was taken) is used only while those mtimes are unchanged.
        """
        if not self.stamp:
            return False
        for path, mtime in self.stamp:
            try:
                now: int | None = os.stat(path).st_mtime_ns
            except OSError:
                now = None
            if now != mtime:
                return False
        return True


def _run_state(python: str, environ: Mapping[str, str], args: list[str]) -> dict[str, Any]:
    try:
        with script_file("flashdoctor.probe", "_state.py") as path:
            return run_script(python, path, args, environ, STATE_TIMEOUT, "the state probe")
    except TargetScriptError as exc:
        raise InstallError(f"cannot read the target environment: {exc}") from None


def read_owners(
    python: str, environ: Mapping[str, str], paths: list[str], scratch: str
) -> dict[str, tuple[str, ...]]:
    """Which installed distributions (canonical names) list each of ``paths`` (absolute) in their RECORD;
    paths nobody owns are left out. ``scratch`` is a private directory for the question's file."""
    fd, qfile = tempfile.mkstemp(prefix="owners-", suffix=".json", dir=scratch)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(paths, fh)
        data = _run_state(python, environ, ["--owners", qfile])
    finally:
        with contextlib.suppress(OSError):
            os.unlink(qfile)
    raw = data.get("owners") or {}
    asked = set(paths)
    return {str(p): tuple(str(d) for d in ds) for p, ds in raw.items() if isinstance(ds, list) and p in asked}


def read_state(python: str, environ: Mapping[str, str], dists: tuple[str, ...] = ()) -> TargetState:
    data = _run_state(python, environ, list(dists))
    described: dict[str, InstalledDist | None] = {}
    for name, d in (data.get("described") or {}).items():
        if not d.get("installed"):
            described[name] = None
            continue
        described[name] = InstalledDist(
            name=name,
            version=d.get("version"),
            installer=d.get("installer"),
            files=tuple(d.get("files") or ()),
            has_record=bool(d.get("record")),
        )
    return TargetState(
        executable=data["executable"],
        prefix=data["prefix"],
        purelib=data["purelib"],
        platlib=data["platlib"],
        scripts=data["scripts"],
        has_pip=bool(data.get("has_pip")),
        env_manager=data.get("env_manager") or "pip",
        markers=dict(data.get("markers") or {}),
        dists=dict(data.get("dists") or {}),
        torch=data.get("torch"),
        described=described,
        stamp=tuple((str(p), None if m is None else int(m)) for p, m in data.get("stamp") or ()),
    )
