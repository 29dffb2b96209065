"""The target environment as the installer needs it: read by a small script run in the target interpreter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from packaging.utils import canonicalize_name

from flashdoctor.errors import InstallError
from flashdoctor.probe.system import run

STATE_TIMEOUT = 60.0


@dataclass(frozen=True)
class InstalledDist:
    name: str
    version: str | None
    installer: str | None
    files: tuple[str, ...]  # absolute paths of the files its RECORD lists and that exist
    has_record: bool
    direct_url: dict[str, Any] | None = None


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

    def dist(self, name: str) -> InstalledDist | None:
        return self.described.get(canonicalize_name(name))


def read_state(python: str, environ: Mapping[str, str], dists: tuple[str, ...] = ()) -> TargetState:
    script = resources.files("flashdoctor.install").joinpath("_state.py")
    with resources.as_file(script) as path:
        rc, out, err = run([python, str(path), *dists], env=environ, timeout=STATE_TIMEOUT)
    if rc != 0:
        raise InstallError(
            f"cannot read the target environment with {python} (exit {rc}): {err.strip()[-400:]}"
        )
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InstallError(f"the target interpreter {python} printed no state") from None
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
            direct_url=d.get("direct_url"),
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
    )
