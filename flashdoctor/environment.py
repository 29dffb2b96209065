"""The environment value: everything flashdoctor knows about one machine and one interpreter.

It is produced either by the probes (`flashdoctor.probe`) or from a target spec (a JSON file that
describes a machine you are not on). Every decision in flashdoctor is a pure function of it.

"Unknown" and "absent" are different facts: ``torch=None`` with "torch" in ``unknown`` means we could
not tell; ``torch=None`` otherwise means torch is not installed. Checks that need an unknown field
return ``skip``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

Variant = Literal["fa2", "fa3", "fa4"]
VARIANTS: tuple[Variant, ...] = ("fa2", "fa3", "fa4")

# Distribution name (canonical) -> variant. FA3 is published as `flash_attn_3`; FA4 as `flash-attn-4`.
DIST_VARIANT: dict[str, Variant] = {
    "flash-attn": "fa2",
    "flash-attn-3": "fa3",
    "flash-attn-4": "fa4",
}
VARIANT_DIST: dict[Variant, str] = {v: k for k, v in DIST_VARIANT.items()}

# Keys of the target spec (README "Target spec"). The order is the order written by --save-target.
TARGET_KEYS: tuple[str, ...] = (
    "python",
    "python_abi",
    "platform",
    "glibc",
    "torch",
    "torch_cuda",
    "torch_hip",
    "cxx11abi",
    "torch_arch_list",
    "driver",
    "driver_cuda",
    "gpus",
    "nvcc",
    "nvcc_path",
    "nvccs",
    "cuda_home",
    "cuda_home_headers",
    "gcc",
    "ninja",
    "cpus",
    "memory_gb",
    "disk_free_gb",
    "installed",
    "env_manager",
    "python_executable",
)
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


def parse_version(text: str | None) -> Version | None:
    """Lenient version parse: "12.8" -> 12.8, "2.8.0+cu128" -> 2.8.0+cu128, junk -> None."""
    if text is None:
        return None
    try:
        return Version(str(text).strip())
    except InvalidVersion:
        m = re.match(r"\d+(\.\d+)*", str(text).strip())
        if not m:
            return None
        try:
            return Version(m.group(0))
        except InvalidVersion:  # pragma: no cover - the regex only admits valid releases
            return None


def major_minor(text: str | None) -> tuple[int, int] | None:
    v = parse_version(text)
    if v is None:
        return None
    rel = (*v.release, 0)
    return rel[0], rel[1]


@dataclass(frozen=True)
class GPU:
    """One visible GPU. ``capability`` is the compute capability as "major.minor"."""

    index: int | None = None
    name: str | None = None
    capability: str | None = None
    memory_gb: float | None = None
    uuid: str | None = None

    @property
    def cc(self) -> tuple[int, int] | None:
        return major_minor(self.capability)

    @property
    def sm(self) -> int | None:
        cc = self.cc
        return None if cc is None else cc[0] * 10 + cc[1]

    @property
    def bf16(self) -> bool | None:
        # bf16 tensor-core arithmetic arrived with Ampere (sm80).
        cc = self.cc
        return None if cc is None else cc >= (8, 0)

    @property
    def fp16(self) -> bool | None:
        cc = self.cc
        return None if cc is None else cc >= (5, 3)

    @property
    def label(self) -> str:
        idx = "?" if self.index is None else str(self.index)
        sm = f"sm_{self.sm}" if self.sm is not None else "sm_?"
        return f"GPU {idx} {self.name or 'unknown'} ({sm})"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "capability": self.capability,
            "memory_gb": self.memory_gb,
        }
        if self.index is not None:
            d["index"] = self.index
        if self.uuid is not None:
            d["uuid"] = self.uuid
        return d


@dataclass(frozen=True)
class Nvcc:
    path: str
    version: str | None


@dataclass(frozen=True)
class FlashInstall:
    """An installed FlashAttention distribution.

    ``import_ok`` is None when the import was not tried (a target spec, or probing skipped it).
    ``archs`` lists the code found in the extension: "sm_90" for SASS, "compute_90" for PTX.
    """

    dist: str
    version: str | None
    import_ok: bool | None = None
    import_error: str | None = None
    import_crashed: bool = False
    module_path: str | None = None
    extension_path: str | None = None
    archs: tuple[str, ...] | None = None

    @property
    def variant(self) -> Variant:
        return DIST_VARIANT[canonicalize_name(self.dist)]

    @property
    def local_label(self) -> str | None:
        v = parse_version(self.version)
        return None if v is None else v.local

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version}
        for k in ("import_ok", "import_error", "module_path", "extension_path"):
            val = getattr(self, k)
            if val is not None:
                d[k] = val
        if self.import_crashed:
            d["import_crashed"] = True
        if self.archs is not None:
            d["archs"] = list(self.archs)
        return d


@dataclass(frozen=True)
class Environment:
    """One machine + interpreter. Built by the probes or from a target spec; never mutated."""

    python: str | None = None  # "3.12"
    python_abi: str | None = None  # "cp312", "cp313t"
    platform: str | None = None  # "linux_x86_64" | "linux_aarch64" | "win_amd64" | ...
    glibc: str | None = None
    torch: str | None = None  # "2.8.0+cu128"; None = not installed (unless unknown)
    torch_cuda: str | None = None  # "12.8"; None for CPU / ROCm builds
    torch_hip: str | None = None
    cxx11abi: bool | None = None
    torch_arch_list: tuple[str, ...] | None = None
    driver: str | None = None  # NVIDIA driver version; None = no driver
    driver_cuda: str | None = None  # newest CUDA the driver supports ("13.0")
    gpus: tuple[GPU, ...] = ()
    nvcc: str | None = None  # release of the nvcc a build would use; None = none
    nvcc_path: str | None = None
    nvccs: tuple[Nvcc, ...] = ()
    cuda_home: str | None = None
    cuda_home_headers: bool | None = None  # CUDA_HOME/include/cuda_runtime.h exists
    gcc: str | None = None
    ninja: bool | None = None
    cpus: int | None = None
    memory_gb: float | None = None  # available memory
    disk_free_gb: float | None = None
    installed: tuple[FlashInstall, ...] = ()
    env_manager: str | None = None  # "pip" | "uv" | "conda"
    python_executable: str | None = None
    unknown: frozenset[str] = field(default_factory=frozenset)
    notes: tuple[str, ...] = ()  # what the probes could not find out, and why

    # -- queries -------------------------------------------------------------------------------
    def known(self, key: str) -> bool:
        return key not in self.unknown

    @property
    def torch_version(self) -> Version | None:
        return parse_version(self.torch)

    @property
    def torch_mm(self) -> tuple[int, int] | None:
        """torch major.minor, which FA2 wheels must match exactly."""
        return major_minor(self.torch)

    @property
    def torch_cuda_mm(self) -> tuple[int, int] | None:
        return major_minor(self.torch_cuda)

    @property
    def nvcc_mm(self) -> tuple[int, int] | None:
        return major_minor(self.nvcc)

    @property
    def os(self) -> str | None:
        if self.platform is None:
            return None
        if self.platform.startswith("win"):
            return "windows"
        if self.platform.startswith("macosx"):
            return "macos"
        if "linux" in self.platform:
            return "linux"
        return None

    @property
    def machine(self) -> str | None:
        if self.platform is None:
            return None
        for arch in ("x86_64", "aarch64", "amd64", "arm64"):
            if self.platform.endswith(arch):
                return arch
        return None

    def installed_variant(self, variant: Variant) -> FlashInstall | None:
        for inst in self.installed:
            if inst.variant == variant:
                return inst
        return None

    # -- target spec ---------------------------------------------------------------------------
    def to_target(self) -> dict[str, Any]:
        """The target-spec form. Unknown keys are left out, as a target spec does."""
        out: dict[str, Any] = {}
        for key in TARGET_KEYS:
            if key in self.unknown:
                continue
            val = getattr(self, key)
            if key == "gpus":
                out[key] = [g.to_json() for g in val]
            elif key == "nvccs":
                if val:
                    out[key] = [{"path": n.path, "version": n.version} for n in val]
            elif key == "installed":
                out[key] = {i.dist: i.to_json() for i in val}
            elif key == "torch_arch_list":
                out[key] = None if val is None else list(val)
            elif key in ("nvcc_path", "env_manager", "python_executable", "python_abi") and val is None:
                continue
            else:
                out[key] = val
        return out

    def replace(self, **changes: Any) -> Environment:
        return dataclasses.replace(self, **changes)


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
        from flashdoctor.knowledge import driver_max_cuda

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


def describe(
    env: Environment, keys: Iterable[str] = ("python", "platform", "torch", "driver", "nvcc")
) -> str:
    parts = []
    for k in keys:
        parts.append(f"{k}={'?' if not env.known(k) else getattr(env, k)}")
    return " ".join(parts)
