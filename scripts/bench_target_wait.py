#!/usr/bin/env python3
"""Time how long flashdoctor waits for a script in the target interpreter: the environment probe that
`check` starts first (probe.launch_interp) and a child that sleeps a fixed time, each waited for by
probe.interpreter.wait (a pidfd on Linux: it wakes when the child exits) and by Popen.wait(timeout)
(what it used before, and still uses where there is no pidfd: it polls, with sleeps growing to 50 ms),
in turn, in one run; the medians are compared.

Usage: python scripts/bench_target_wait.py [--repeats 21] [--python PATH] [--sleep 0.1]
(--python: the interpreter the probe runs in, e.g. the one that has torch; default: this one.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flashdoctor.probe import interpreter, launch_interp


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--sleep", type=float, default=0.1, help="the sleeping child's time (s)")
    a = ap.parse_args()
    if not hasattr(os, "pidfd_open"):
        print("no os.pidfd_open here: both ways are Popen.wait(timeout)")
        return 1
    environ = dict(os.environ)
    pidfd_open = os.pidfd_open
    jobs: dict[str, Callable[[], object]] = {
        "environment probe": lambda: launch_interp(a.python, environ).finish(),
        f"child sleeping {a.sleep:g} s": lambda: interpreter.run_target(
            sys.executable, ["-c", f"import time; time.sleep({a.sleep})"], environ, 60, "a sleep"
        ),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.repeats):
        for name, job in jobs.items():
            for way in ("pidfd", "Popen.wait(timeout)"):
                if way == "pidfd":
                    os.pidfd_open = pidfd_open
                else:
                    del os.pidfd_open  # interpreter.wait falls back, as on a system without it
                try:
                    times.setdefault((name, way), []).append(timed(job))
                finally:
                    os.pidfd_open = pidfd_open
    for name in jobs:
        new = statistics.median(times[(name, "pidfd")])
        old = statistics.median(times[(name, "Popen.wait(timeout)")])
        print(
            f"{name:<24} pidfd median {new * 1000:7.1f} ms   Popen.wait(timeout) {old * 1000:7.1f} ms"
            f"   {new - old:+.3f} s ({a.repeats} runs each, in turn)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
