#!/usr/bin/env python3
"""Where `flashdoctor check`'s time goes on this machine: each part timed alone, medians of N runs in one
process, then a cProfile of one whole `check` (the 40 costliest calls by cumulative time).

Parts: the target interpreter's start (plain and `-I -S`), this interpreter's start, importing flashdoctor's CLI
(a fresh process), the environment probe (_interp.py in the target interpreter), each system probe (NVML,
toolkit, gcc, ninja, resources), torch's C++ ABI read from libc10, the whole probe, `check` as a subprocess, and
NVML's init and shutdown. Run it with the flashdoctor under test first on sys.path (an installed copy, or this
checkout via PYTHONPATH) and point --python at the interpreter that has torch.

    python scripts/profile_check.py [--repeats 7] [--python PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_ms(name: str, fn: Callable[[], object], n: int) -> None:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    print(
        f"{name:<30} median {statistics.median(ts) * 1000:8.1f} ms"
        f"  min {min(ts) * 1000:8.1f}  max {max(ts) * 1000:8.1f}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--python", default=sys.executable, help="the target interpreter (the one with torch)")
    a = ap.parse_args()
    py, n, env = a.python, a.repeats, dict(os.environ)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    from flashdoctor.probe import interp_probe, probe_environment
    from flashdoctor.probe.binary import cxx11_abi
    from flashdoctor.probe.system import probe_gcc, probe_ninja, probe_nvidia, probe_resources, probe_toolkit

    print(f"flashdoctor from {sys.modules['flashdoctor'].__file__}; target {py}")
    median_ms("target python -c pass", lambda: subprocess.run([py, "-c", "pass"], **quiet), n)
    median_ms(
        "target python -I -S -c pass", lambda: subprocess.run([py, "-I", "-S", "-c", "pass"], **quiet), n
    )
    median_ms("this python -c pass", lambda: subprocess.run([sys.executable, "-c", "pass"], **quiet), n)
    median_ms(
        "import flashdoctor.cli",
        lambda: subprocess.run([sys.executable, "-c", "import flashdoctor.cli"], **quiet),
        n,
    )
    median_ms("environment probe", lambda: interp_probe(py, env), n)
    median_ms("probe_nvidia", lambda: probe_nvidia(env), n)
    median_ms("probe_toolkit", lambda: probe_toolkit(env), n)
    median_ms("probe_gcc", lambda: probe_gcc(env), n)
    median_ms("probe_ninja", lambda: probe_ninja(env, py), n)
    median_ms("probe_resources", lambda: probe_resources(env), n)
    libc10 = (interp_probe(py, env).get("torch") or {}).get("libc10")
    if libc10:
        median_ms("cxx11_abi(libc10)", lambda: cxx11_abi(libc10), n)
    median_ms("probe_environment", lambda: probe_environment(py, env, torch_archs=False), n)
    median_ms(
        "check (subprocess)",
        lambda: subprocess.run([sys.executable, "-m", "flashdoctor", "check", "--python", py], **quiet),
        n,
    )
    try:
        import pynvml

        def nvml() -> None:
            pynvml.nvmlInit()
            pynvml.nvmlShutdown()

        median_ms("nvmlInit + nvmlShutdown", nvml, n)
    except Exception as exc:  # no driver here: say so and go on
        print(f"{'nvmlInit + nvmlShutdown':<30} not available: {type(exc).__name__}")

    from flashdoctor.cli import main as cli_main

    profile = cProfile.Profile()
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out  # check's own report is not what is measured
    profile.enable()
    try:
        cli_main(["check", "--python", py])
    except SystemExit:
        pass
    finally:
        profile.disable()
        sys.stdout = saved
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumtime").print_stats(40)
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
