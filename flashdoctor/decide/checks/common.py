"""What every check shares: the finding constructor (codes are public: data/codes.json), GPU grouping,
and the resource figures the checks and the verdicts both use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flashdoctor.knowledge import codes as code_registry
from flashdoctor.model.environment import GPU, Environment
from flashdoctor.model.findings import Finding, Status

# code -> one line for the README table. Codes ending in "-ok"/"-found" are the passing form of a check.
CODES: Mapping[str, str] = code_registry.codes("finding")  # public interface: data/codes.json

# Build jobs of FA2's kernels need this much memory each. FA2's own setup.py assumes ~9 GB per job when
# MAX_JOBS is unset (facts.md: min(cpus/2, free GB/9)).
BUILD_GB_PER_JOB = 9.0
BUILD_DISK_GB = 10.0  # sdist + CUTLASS headers + objects for a targeted build
INSTALL_DISK_GB = 1.5  # a wheel download plus its unpacked copy
OFFICIAL_WHEEL_GLIBC = "2.35"  # official FA2 wheels from 2.8.0.post1 were built on Ubuntu 22.04
SDPA = "PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention)"


def finding(code: str, status: Status, message: str, **kw: object) -> Finding:
    assert code in CODES, f"undocumented finding code {code}"
    return Finding(code=code, status=status, message=message, **kw)  # type: ignore[arg-type]


def gpu_groups(gpus: Iterable[GPU]) -> list[tuple[GPU, str, int]]:
    """Identical GPUs grouped (an 8-GPU node gives one finding, not eight): (first GPU, label, count)."""
    groups: dict[tuple[str | None, str | None], list[GPU]] = {}
    for g in gpus:
        groups.setdefault((g.name, g.capability), []).append(g)
    out = []
    for members in groups.values():
        g = members[0]
        if len(members) == 1:
            out.append((g, g.label, 1))
        else:
            idx = ",".join("?" if m.index is None else str(m.index) for m in members)
            out.append((g, f"GPUs {idx}: {len(members)} × {g.name or 'unknown'} (sm_{g.sm})", len(members)))
    return out


def has_gpu(env: Environment) -> bool | None:
    if not env.known("gpus"):
        return None
    return bool(env.gpus)


def build_jobs(memory_gb: float | None, cpus: int | None) -> int | None:
    """Parallel nvcc jobs a machine affords (FA2's own rule when MAX_JOBS is unset)."""
    if memory_gb is None or cpus is None:
        return None
    return max(0, min(max(1, cpus // 2), int(memory_gb // BUILD_GB_PER_JOB)))
