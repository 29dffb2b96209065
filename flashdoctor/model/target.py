"""The target spec: a JSON file that describes a machine you are not on (README "Target spec"),
read into an Environment. Untrusted input: every key is checked and an error names the key at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from packaging.utils import canonicalize_name

from flashdoctor.knowledge.drivers import driver_max_cuda
from flashdoctor.knowledge.variants import DIST_VARIANT
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import GPU, TARGET_KEYS, Environment, FlashInstall, Nvcc

SCALAR_STR_KEYS = (
    "python",
    "python_abi",
    "platform",
    "glibc",
    "torch",
    "torch_cuda",
    "torch_hip",
    "driver",
    "driver_cuda",
    "nvcc",
    "nvcc_path",
    "cuda_home",
    "gcc",
    "env_manager",
    "python_executable",
)


class TargetSpecError(ValueError):
    """A target spec that cannot be read. The message names the key at fault."""


def _expect(cond: bool, key: str, what: str) -> None:
    if not cond:
        raise TargetSpecError(f"target spec: {key!r} must be {what}")


def _gpu_from_json(i: int, raw: Any) -> GPU:
    key = f"gpus[{i}]"
    _expect(isinstance(raw, dict), key, "an object with name, capability, memory_gb")
    cap = raw.get("capability")
    if cap is not None:
        if isinstance(cap, (int, float)) and not isinstance(cap, bool):
            cap = f"{float(cap):.1f}"
        _expect(
            isinstance(cap, str) and re.fullmatch(r"\d+\.\d+", cap) is not None,
            f"{key}.capability",
            'a compute capability such as "9.0"',
        )
    mem = raw.get("memory_gb")
    _expect(
        mem is None or (isinstance(mem, (int, float)) and not isinstance(mem, bool)),
        f"{key}.memory_gb",
        "a number",
    )
    name = raw.get("name")
    _expect(name is None or isinstance(name, str), f"{key}.name", "a string")
    idx = raw.get("index", i)
    _expect(isinstance(idx, int), f"{key}.index", "an integer")
    uuid = raw.get("uuid")
    return GPU(
        index=idx,
        name=name,
        capability=cap,
        memory_gb=None if mem is None else float(mem),
        uuid=uuid if isinstance(uuid, str) else None,
    )


def _installed_from_json(raw: Any) -> tuple[FlashInstall, ...]:
    _expect(isinstance(raw, dict), "installed", 'an object such as {"flash-attn": "2.7.4.post1"}')
    out = []
    for dist, val in raw.items():
        canon = canonicalize_name(str(dist))
        if canon not in DIST_VARIANT:
            raise TargetSpecError(
                f"target spec: 'installed' has unknown distribution {dist!r} "
                f"(known: {', '.join(sorted(DIST_VARIANT))})"
            )
        if val is None:
            continue  # explicitly not installed
        if isinstance(val, str):
            out.append(FlashInstall(dist=canon, version=val))
            continue
        _expect(isinstance(val, dict), f"installed.{dist}", "a version string or an object")
        archs = val.get("archs")
        _expect(
            archs is None or (isinstance(archs, list) and all(isinstance(a, str) for a in archs)),
            f"installed.{dist}.archs",
            'a list such as ["sm_80", "sm_90"]',
        )
        ok = val.get("import_ok")
        _expect(ok is None or isinstance(ok, bool), f"installed.{dist}.import_ok", "true, false or null")
        out.append(
            FlashInstall(
                dist=canon,
                version=val.get("version"),
                import_ok=ok,
                import_error=val.get("import_error"),
                import_crashed=bool(val.get("import_crashed", False)),
                module_path=val.get("module_path"),
                extension_path=val.get("extension_path"),
                archs=None if archs is None else tuple(archs),
            )
        )
    return tuple(out)


def environment_from_target(spec: Mapping[str, Any]) -> Environment:
    """Build an Environment from a target spec. Missing keys become unknown.

    Raises TargetSpecError with a message naming the offending key.
    """
    if not isinstance(spec, Mapping):
        raise TargetSpecError("target spec: the document must be a JSON object")
    unexpected = sorted(set(spec) - set(TARGET_KEYS) - {"$schema", "comment", "name"})
    if unexpected:
        raise TargetSpecError(
            f"target spec: unknown key(s) {', '.join(map(repr, unexpected))}; known keys: {', '.join(TARGET_KEYS)}"
        )
    values: dict[str, Any] = {}
    unknown = {k for k in TARGET_KEYS if k not in spec}
    for key in SCALAR_STR_KEYS:
        if key in spec:
            val = spec[key]
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                val = str(val)  # "python": 3.12 is a common slip; keep it readable
            _expect(val is None or isinstance(val, str), key, "a string or null")
            values[key] = val
    if "python" in spec and spec["python"] is not None:
        _expect(re.fullmatch(r"\d+\.\d+", values["python"]) is not None, "python", 'a version such as "3.12"')
    if "platform" in spec and spec["platform"] is not None:
        _expect(
            re.fullmatch(r"[a-z0-9_]+", values["platform"]) is not None,
            "platform",
            'a platform tag such as "linux_x86_64", "linux_aarch64" or "win_amd64"',
        )
    for key in ("torch", "torch_cuda", "driver", "nvcc", "gcc", "glibc", "driver_cuda"):
        if values.get(key) is not None:
            _expect(parse_version(values[key]) is not None, key, "a version string")
    if "cxx11abi" in spec:
        _expect(
            spec["cxx11abi"] is None or isinstance(spec["cxx11abi"], bool), "cxx11abi", "true, false or null"
        )
        values["cxx11abi"] = spec["cxx11abi"]
    if "cuda_home_headers" in spec:
        _expect(
            spec["cuda_home_headers"] is None or isinstance(spec["cuda_home_headers"], bool),
            "cuda_home_headers",
            "true, false or null",
        )
        values["cuda_home_headers"] = spec["cuda_home_headers"]
    if "ninja" in spec:
        _expect(spec["ninja"] is None or isinstance(spec["ninja"], bool), "ninja", "true, false or null")
        values["ninja"] = spec["ninja"]
    if "cpus" in spec:
        _expect(
            spec["cpus"] is None or (isinstance(spec["cpus"], int) and not isinstance(spec["cpus"], bool)),
            "cpus",
            "an integer",
        )
        values["cpus"] = spec["cpus"]
    for key in ("memory_gb", "disk_free_gb"):
        if key in spec:
            val = spec[key]
            _expect(
                val is None or (isinstance(val, (int, float)) and not isinstance(val, bool)), key, "a number"
            )
            values[key] = None if val is None else float(val)
    if "torch_arch_list" in spec:
        val = spec["torch_arch_list"]
        _expect(
            val is None or (isinstance(val, list) and all(isinstance(a, str) for a in val)),
            "torch_arch_list",
            'a list such as ["sm_80", "sm_90"]',
        )
        values["torch_arch_list"] = None if val is None else tuple(val)
    if "gpus" in spec:
        raw = spec["gpus"]
        if raw is None:
            raw = []
        _expect(isinstance(raw, list), "gpus", "a list of GPUs")
        values["gpus"] = tuple(_gpu_from_json(i, g) for i, g in enumerate(raw))
    if "nvccs" in spec:
        raw = spec["nvccs"] or []
        _expect(isinstance(raw, list), "nvccs", "a list")
        values["nvccs"] = tuple(Nvcc(path=str(n.get("path")), version=n.get("version")) for n in raw)
    if "installed" in spec:
        values["installed"] = _installed_from_json(spec["installed"] or {})
    # Derived facts a user need not spell out.
    if values.get("python") and "python_abi" not in spec:
        values["python_abi"] = "cp" + values["python"].replace(".", "")
        unknown.discard("python_abi")
    if values.get("torch") and "torch_cuda" not in spec:
        local = parse_version(values["torch"])
        if local is not None and local.local:
            m = re.fullmatch(r"cu(\d+)(\d)", local.local)
            if m:
                values["torch_cuda"] = f"{m.group(1)}.{m.group(2)}"
                unknown.discard("torch_cuda")
            elif local.local == "cpu":
                values["torch_cuda"] = None
                unknown.discard("torch_cuda")
    if "torch" in spec and spec["torch"] is None:
        # No torch: nothing about torch is unknown any more.
        for k in ("torch_cuda", "torch_hip", "cxx11abi", "torch_arch_list"):
            unknown.discard(k)
    if "driver" in spec and spec["driver"] is None and "gpus" not in spec:
        values["gpus"] = ()
        unknown.discard("gpus")
    if values.get("driver") and "driver_cuda" not in spec:
        dc = driver_max_cuda(values["driver"])
        if dc is not None:
            values["driver_cuda"] = dc
            unknown.discard("driver_cuda")
    # Keys that only describe the probing machine stay quietly unknown.
    return Environment(**values, unknown=frozenset(unknown))


def load_target(path: str) -> Environment:
    """Read a target spec file. Raises TargetSpecError (a user error) on any problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            spec = json.load(fh)
    except OSError as exc:
        raise TargetSpecError(f"cannot read target spec {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise TargetSpecError(
            f"target spec {path} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    return environment_from_target(spec)
