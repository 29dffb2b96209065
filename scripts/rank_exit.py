#!/usr/bin/env python3
"""Run a command as one rank and record its exit code in DIR/rank-<RANK>.rc.

    torchrun --nproc-per-node 4 scripts/rank_exit.py DIR python -m flashdoctor check --distributed

torchrun reports only the first failing worker and stops the others; this wrapper outlives that stop
(it ignores the launcher's SIGTERM, the command does not) so that every rank's own exit code is kept.
Used by the cluster tests and scripts/gpu_cluster.sh. Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: rank_exit.py DIR COMMAND [ARG...]", file=sys.stderr)
        return 2
    out_dir, cmd = argv[0], argv[1:]
    rank = os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "unknown"
    # A no-op handler (not SIG_IGN, which the child would inherit): the child still gets the
    # launcher's SIGTERM and decides its own exit code; this process stays to write it down.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    proc = subprocess.Popen(cmd)
    while True:
        try:
            rc = proc.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries wait() itself
            continue
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"rank-{rank}.rc"), "w", encoding="utf-8") as fh:
        fh.write(f"{rc}\n")
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
