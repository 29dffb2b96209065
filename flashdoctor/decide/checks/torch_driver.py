"""torch and the NVIDIA driver: is there a CUDA build of torch, and can the driver run its CUDA?

The fixes are commands that work as printed: a CPU build of torch is replaced by the CUDA build of the
SAME version (``--force-reinstall torch==X``; a bare ``pip install torch`` answers "Requirement already
satisfied"), from the PyTorch index whose CUDA the driver runs and that publishes that version
(data/torch_builds.json, data/cuda_drivers.json)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import finding, has_gpu
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding, Status
from flashdoctor.model.target import abi_inferred

PYTORCH_INDEX = "https://download.pytorch.org/whl"


def _tag(cuda: str) -> str:
    return "cu" + cuda.replace(".", "")


def _index_for_driver(driver_cuda: str | None) -> str:
    """The newest PyTorch CUDA index a driver can run (the oldest when none fits: minor-version
    compatibility runs it; the newest when the driver is unknown)."""
    tags = knowledge.load_data("cuda_drivers")["pytorch_indexes"]
    dc = major_minor(driver_cuda)
    best = tags[-1]
    if dc is not None:
        fitting = [t for t in tags if (m := major_minor(t["cuda"])) is not None and m <= dc]
        best = fitting[-1] if fitting else tags[0]
    return str(best["tag"])


def _release_cudas(torch_mm: tuple[int, int]) -> list[str] | None:
    """The CUDA versions PyTorch publishes this torch minor for (None: not tabulated)."""
    for rel in knowledge.load_data("torch_builds")["releases"]:
        if major_minor(rel["torch"]) == torch_mm:
            return list(rel["cuda"])
    return None


def pip_install(env: Environment | None = None) -> str:
    """``pip install`` as the target environment runs it: its own interpreter's pip where known, ``uv pip``
    in a uv-made environment (which may have no pip), else plain ``pip``."""
    exe = env.python_executable if env is not None else None
    if env is not None and env.env_manager == "uv":
        return "uv pip install" + (f" --python {shlex.quote(exe)}" if exe else "")
    return f"{shlex.quote(exe)} -m pip install" if exe else "pip install"


@dataclass(frozen=True)
class TorchForDriver:
    """A command that installs a CUDA build of torch a driver runs, and ``older``: the older torch minor
    it installs in place of the user's (None: the user's own version, or no torch installed)."""

    command: str
    older: str | None = None

    def older_note(self, torch: str | None) -> str:
        """ " (torch 2.7, older than your 2.9: …)" where the command steps back, else ""."""
        if self.older is None:
            return ""
        mm = major_minor(torch)
        yours = f"{mm[0]}.{mm[1]}" if mm else torch
        return f" (torch {self.older}, older than your {yours}: the driver upgrade keeps yours)"


def pytorch_cuda_index(
    driver_cuda: str | None, torch: str | None = None, env: Environment | None = None
) -> str:
    """The command of :func:`torch_for_driver`."""
    return torch_for_driver(driver_cuda, torch, env).command


def torch_for_driver(
    driver_cuda: str | None, torch: str | None = None, env: Environment | None = None
) -> TorchForDriver:
    """A command that installs a CUDA build of torch this driver runs.

    Without ``torch`` (none installed): ``pip install torch --index-url …/cuXYZ``. With the installed
    ``torch`` version: a reinstall of that same version from the index of the newest CUDA that version
    is published for and the driver runs; where none is, the newest older torch minor that has such a
    build, pinned and named (``older``: pip would take the newest on the driver's index without saying it
    is older); where none is tabulated, the newest torch on the index the driver runs. Pre-releases come
    from the nightly index."""
    pip = pip_install(env)
    if torch is None:
        return TorchForDriver(f"{pip} torch --index-url {PYTORCH_INDEX}/{_index_for_driver(driver_cuda)}")
    v = parse_version(torch)
    if v is None:
        return TorchForDriver(
            f"{pip} --force-reinstall torch --index-url {PYTORCH_INDEX}/{_index_for_driver(driver_cuda)}"
        )
    if v.is_prerelease:
        tag = _index_for_driver(driver_cuda)
        return TorchForDriver(
            f"{pip} --force-reinstall --pre torch --index-url {PYTORCH_INDEX}/nightly/{tag}"
        )
    public = v.public
    mm = major_minor(public)
    cudas = _release_cudas(mm) if mm is not None else None
    if mm is None or cudas is None:  # not tabulated: the driver's index, same version
        return TorchForDriver(
            f"{pip} --force-reinstall torch=={public} --index-url {PYTORCH_INDEX}/{_index_for_driver(driver_cuda)}"
        )
    dc = major_minor(driver_cuda)
    if dc is None:  # no driver to fit: the newest CUDA of this release that a known index serves
        known = {t["cuda"] for t in knowledge.load_data("cuda_drivers")["pytorch_indexes"]}
        fitting = [c for c in cudas if c in known] or cudas
    else:
        fitting = [c for c in cudas if (m := major_minor(c)) is not None and m <= dc]
    if fitting:
        best = max(fitting, key=lambda c: major_minor(c) or (0, 0))
        return TorchForDriver(
            f"{pip} --force-reinstall torch=={public} --index-url {PYTORCH_INDEX}/{_tag(best)}"
        )
    assert dc is not None  # without a driver every tabulated CUDA fits
    older = _older_torch(dc, mm)
    if older is not None:
        minor, cuda = older
        spec = shlex.quote(f"torch=={minor}.*")
        return TorchForDriver(
            f"{pip} --force-reinstall {spec} --index-url {PYTORCH_INDEX}/{_tag(cuda)}", minor
        )
    return TorchForDriver(
        f"{pip} --force-reinstall torch --index-url {PYTORCH_INDEX}/{_index_for_driver(driver_cuda)}"
    )


def _older_torch(dc: tuple[int, int], mm: tuple[int, int]) -> tuple[str, str] | None:
    """The newest torch minor older than ``mm`` with a CUDA build a driver of CUDA ``dc`` runs, and that
    build's newest such CUDA (None: none is tabulated)."""
    best: tuple[tuple[int, int], str, str] | None = None
    for rel in knowledge.load_data("torch_builds")["releases"]:
        rm = major_minor(rel["torch"])
        runs = [c for c in rel["cuda"] if (m := major_minor(c)) is not None and m <= dc]
        if rm is None or rm >= mm or not runs:
            continue
        if best is None or rm > best[0]:
            best = (rm, rel["torch"], max(runs, key=lambda c: major_minor(c) or (0, 0)))
    return (best[1], best[2]) if best is not None else None


def check_driver(env: Environment) -> list[Finding]:
    if not env.known("driver") or env.driver is None:
        return []  # no-gpu covers a missing driver
    if not env.known("torch_cuda") or env.torch_cuda is None:
        return [
            finding("driver-ok", Status.OK, f"NVIDIA driver {env.driver} (CUDA {env.driver_cuda or '?'})")
        ]
    tc = env.torch_cuda_mm
    dc = major_minor(env.driver_cuda)
    if tc is None or dc is None:
        return [finding("driver-ok", Status.SKIP, f"driver {env.driver}: its CUDA level is unknown")]
    need = knowledge.driver_min_for_cuda(env.torch_cuda)
    evidence = (
        f"driver {env.driver} supports CUDA ≤ {env.driver_cuda}; torch {env.torch} uses CUDA {env.torch_cuda}"
    )
    if dc[0] < tc[0]:
        for_driver = torch_for_driver(env.driver_cuda, env.torch, env)
        return [
            finding(
                "driver-too-old",
                Status.FAIL,
                f"Driver {env.driver} supports CUDA {env.driver_cuda}, torch needs CUDA {env.torch_cuda}",
                evidence=evidence,
                fix=f"Upgrade the NVIDIA driver to ≥ {need}, or install a torch built for CUDA {dc[0]}.x"
                + f"{for_driver.older_note(env.torch)}: {for_driver.command}",
            )
        ]
    if dc < tc:
        return [
            finding(
                "driver-too-old",
                Status.WARN,
                f"Driver {env.driver} (CUDA {env.driver_cuda}) runs torch's CUDA {env.torch_cuda} only through "
                "minor-version compatibility: PTX JIT fails",
                evidence=evidence,
                fix=f"Upgrade the NVIDIA driver to ≥ {need}.",
            )
        ]
    return [
        finding(
            "driver-ok",
            Status.OK,
            f"NVIDIA driver {env.driver} supports CUDA ≤ {env.driver_cuda}",
            evidence=evidence,
        )
    ]


def check_torch(env: Environment) -> list[Finding]:
    if not env.known("torch"):
        return [finding("torch-ok", Status.SKIP, "torch unknown (not in the target spec)")]
    gpu = has_gpu(env)
    serious = Status.WARN if gpu is False else Status.FAIL
    if env.torch is None:
        return [
            finding(
                "torch-missing",
                serious,
                "torch is not installed in the target interpreter (flashdoctor never installs it)",
                evidence=f"python {env.python_executable or env.python or '?'}",
                fix=pytorch_cuda_index(env.driver_cuda, None, env),
            )
        ]
    abi = {True: "CXX11 ABI", False: "pre-CXX11 ABI", None: "ABI unknown"}[env.cxx11abi]
    if env.cxx11abi is not None and abi_inferred(env):
        abi += " inferred from its version"
    if env.torch_hip:
        rocm = [knowledge.variant_info(v) for v in VARIANTS if knowledge.variant_info(v).rocm]
        return [
            finding(
                "torch-rocm",
                Status.WARN,
                f"torch {env.torch} is a ROCm build (HIP {env.torch_hip}): only "
                + (", ".join(f"{i.short}'s" for i in rocm) or "no")
                + " ROCm build applies",
                evidence=" ".join(i.rocm_note or "" for i in rocm) or None,
                fix=f"Build {'/'.join(i.short for i in rocm) or 'FA2'} for ROCm from source (see flash-attention's README, AMD ROCm section).",
            )
        ]
    if env.known("torch_cuda") and env.torch_cuda is None:
        return [
            finding(
                "torch-cpu-only",
                serious,
                f"torch {env.torch} is "
                + ("an Intel XPU build (no CUDA)" if env.torch_xpu else "a CPU-only build")
                + ": FlashAttention needs a CUDA build of torch",
                fix=_cuda_torch_fix(env),
            )
        ]
    return [finding("torch-ok", Status.OK, f"torch {env.torch} (CUDA {env.torch_cuda or '?'}, {abi})")]


def _cuda_torch_fix(env: Environment) -> str:
    """The fix of a CPU-only (or XPU) torch: its CUDA build for this driver, or, where that version has none
    the driver runs, the older torch that does, named."""
    for_driver = torch_for_driver(env.driver_cuda, env.torch, env)
    if for_driver.older is None:
        return for_driver.command
    return f"Install a CUDA build of torch{for_driver.older_note(env.torch)}: {for_driver.command}"
