#!/usr/bin/env python3
"""Compile units of an FA2 source build: upstream's default vs arch-only vs flashdoctor's minimal
profile, side by side, with the ratio (goal: the minimal build compiles >= 20x fewer units).

A compile unit is one kernel .cu file compiled for one architecture (setup.py passes one -gencode
per arch to every unit). The counts come from flashdoctor's plan; with the real sdist (--sdist FILE,
or .carry/flash_attn-2.8.3.post2.tar.gz when present) they are also read back from setup.py after
flashdoctor edited a copy, so the table shows what the build would really compile.

    python scripts/bench_build.py [--sdist FILE] [--arch 90] [--head-dims 128] [--dtypes bf16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashdoctor.actions.source_build.edit import edit_fa2_tree, setup_units  # noqa: E402
from flashdoctor.actions.source_build.source import unpack  # noqa: E402
from flashdoctor.decide.source_build.plan import BuildRequest, fa2_layout, make_plan  # noqa: E402
from flashdoctor.knowledge.profiles import parse_archs, parse_dtypes, parse_head_dims  # noqa: E402
from flashdoctor.model.target import environment_from_target  # noqa: E402

GPU_MACHINE = {
    "python": "3.12",
    "platform": "linux_x86_64",
    "torch": "2.11.0+cu130",
    "nvcc": "13.0",
    "cpus": 16,
    "memory_gb": 120,
}


def counted_from_sdist(
    sdist: Path,
    version: str,
    archs: tuple[int, ...],
    hds: tuple[int, ...] | None,
    dts: tuple[str, ...] | None,
) -> int:
    from flashdoctor.knowledge.profiles import Profile

    layout = fa2_layout(version)
    assert layout is not None
    with tempfile.TemporaryDirectory() as tmp:
        tree = unpack(sdist, Path(tmp))
        edit_fa2_tree(tree, layout, Profile("fa2", archs, hds, dts))
        kernels = [u for u in setup_units((tree / "setup.py").read_text()) if u.endswith(".cu")]
    return len(kernels) * len(archs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default="2.8.3.post2")
    ap.add_argument("--sdist", type=Path, default=None)
    ap.add_argument("--arch", default="90")
    ap.add_argument("--head-dims", default="128")
    ap.add_argument("--dtypes", default="bf16")
    a = ap.parse_args()
    env = environment_from_target(GPU_MACHINE)
    archs = parse_archs(a.arch)
    hds, dts = parse_head_dims(a.head_dims), parse_dtypes(a.dtypes)
    default = make_plan(env, BuildRequest(archs=(80, 90, 100, 120)), a.version)
    arch_only = make_plan(env, BuildRequest(archs=archs), a.version)
    minimal = make_plan(env, BuildRequest(archs=archs, head_dims=hds, dtypes=dts), a.version)
    rows = [
        ("default (upstream: all kernels, sm80/90/100/120)", default),
        (f"arch-only (--arch {a.arch})", arch_only),
        (f"minimal (--arch {a.arch} --head-dims {a.head_dims} --dtypes {a.dtypes})", minimal),
    ]
    sdist = a.sdist or ROOT / ".carry" / f"flash_attn-{a.version}.tar.gz"
    real = sdist.is_file()
    print(f"flash-attn {a.version}: compile units (kernel .cu files x architectures)")
    print(
        f"{'build':58} {'kernels':>7} {'archs':>5} {'units':>6} {'vs default':>10}"
        + ("  from setup.py" if real else "")
    )
    for name, plan in rows:
        n_arch = len(plan.profile.archs)
        line = f"{name:58} {plan.unit_count // n_arch:7d} {n_arch:5d} {plan.unit_count:6d} {default.unit_count / plan.unit_count:9.1f}x"
        if real:
            line += f"  {counted_from_sdist(sdist, a.version, plan.profile.archs, plan.profile.head_dims, plan.profile.dtypes):6d}"
        print(line)
    ratio = default.unit_count / minimal.unit_count
    print(
        f"minimal vs default: {ratio:.0f}x fewer compile units (goal >= 20x: {'met' if ratio >= 20 else 'NOT met'})"
    )
    if not real:
        print(f"(no sdist at {sdist}: counts from flashdoctor's table only; pass --sdist to read setup.py)")
    return 0 if ratio >= 20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
