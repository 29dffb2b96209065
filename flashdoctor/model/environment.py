"""The environment value: everything flashdoctor knows about one machine and one interpreter.

It is produced either by the probes (`flashdoctor.probe`) or from a target spec
(`flashdoctor.model.target`). Every decision in flashdoctor is a pure function of it.

"Unknown" and "absent" are different facts: ``torch=None`` with "torch" in ``unknown`` means we could
not tell; ``torch=None`` otherwise means torch is not installed. Checks that need an unknown field
return ``skip``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from flashdoctor.knowledge.variants import DIST_VARIANT, Variant
from flashdoctor.knowledge.versions import major_minor, parse_version

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
    "dependents",
    "env_manager",
    "python_executable",
)


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
    ``metadata_dirs``: every metadata folder of the distribution in its directory, where there is more than
    one (a half-finished upgrade); ``module_version``, then, the ``__version__`` its package's files say.
    Probed only (not in a target spec).
    """

    dist: str
    version: str | None
    import_ok: bool | None = None
    import_error: str | None = None
    import_crashed: bool = False
    module_path: str | None = None
    extension_path: str | None = None
    archs: tuple[str, ...] | None = None
    metadata_dirs: tuple[str, ...] = ()
    module_version: str | None = None

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
class Dependent:
    """An installed distribution that declares a requirement on a FlashAttention distribution: one of its
    Requires-Dist lines as written (PEP 508, markers included), e.g. transformer-engine 1.4.0 with
    ``flash-attn<=2.4.2,>=2.0.6``. Installing a version outside it would break that distribution. With
    ``checked="run-time"`` the range is one the library checks when it loads (it declares nothing)."""

    dist: str
    version: str | None
    requires: str
    checked: str = (
        "metadata"  # "run-time": the library checks it when it loads (knowledge/run_time_limits.py)
    )

    @property
    def label(self) -> str:
        return self.dist if self.version is None else f"{self.dist} {self.version}"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"dist": self.dist, "version": self.version, "requires": self.requires}
        if self.checked != "metadata":
            d["checked"] = self.checked
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
    dependents: tuple[Dependent, ...] = ()  # what installed distributions require of FlashAttention
    env_manager: str | None = None  # "pip" | "uv" | "conda"
    python_executable: str | None = None
    prefix: str | None = None  # the target interpreter's sys.prefix (probed only; not in a target spec)
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
        """torch major.minor, which FA2 wheels must match (but where measured: data/torch_builds.json
        ``abi_across_minors``)."""
        return major_minor(self.torch)

    @property
    def torch_xpu(self) -> bool:
        """An Intel XPU build of torch (``2.5.1+xpu``): torch.version.cuda is None there, as on a CPU build."""
        v = self.torch_version
        return v is not None and v.local == "xpu"

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
    def musl(self) -> bool:
        """A Linux without glibc (Alpine): a musllinux platform tag, or ``"glibc": null`` (the probe there)."""
        if self.os != "linux" or self.platform is None:
            return False
        return self.platform.startswith("musllinux_") or (self.known("glibc") and self.glibc is None)

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
            elif key == "dependents":
                out[key] = [d.to_json() for d in val]
            elif key == "torch_arch_list":
                out[key] = None if val is None else list(val)
            elif key in ("nvcc_path", "env_manager", "python_executable", "python_abi") and val is None:
                continue
            else:
                out[key] = val
        return out

    def replace(self, **changes: Any) -> Environment:
        return dataclasses.replace(self, **changes)


def describe(
    env: Environment, keys: Iterable[str] = ("python", "platform", "torch", "driver", "nvcc")
) -> str:
    parts = []
    for k in keys:
        parts.append(f"{k}={'?' if not env.known(k) else getattr(env, k)}")
    return " ".join(parts)
