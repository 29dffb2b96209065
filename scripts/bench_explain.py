#!/usr/bin/env python3
"""Benchmark `flashdoctor explain` on a large build log (the issue's goal: 10 MB in under a second).

The log is synthetic but shaped like a real failed `pip install flash-attn` (setup.py's wheel guess
404s, then a long ninja/nvcc build full of warnings, then an OOM kill): the cause sits near the top, its
consequence at the bottom. Prints the time of the engine (best of --repeat), its throughput, and the
side-by-side ratio against the naive baseline (every signature pattern over every line), which is
measured on a slice because it is far slower.

    PYTHONPATH=. python scripts/bench_explain.py [--mb 10] [--baseline-mb 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flashdoctor.decide.explain.engine import explain_bytes, match_naive

HEAD = """Collecting flash-attn
  Downloading flash_attn-2.8.3.tar.gz (8.4 MB)
  Preparing metadata (setup.py) ... done
Building wheels for collected packages: flash-attn
  Building wheel for flash-attn (setup.py) ... error
  error: subprocess-exited-with-error
  × python setup.py bdist_wheel did not run successfully.
  │ exit code: 1
  ╰─> [100000 lines of output]
      torch.__version__  = 2.6.0+cu124
      running bdist_wheel
      Guessing wheel URL:  https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl
      Traceback (most recent call last):
        File "/tmp/pip-install-abc/flash-attn_0123/setup.py", line 486, in run
          urllib.request.urlretrieve(wheel_url, wheel_filename)
      urllib.error.HTTPError: HTTP Error 404: Not Found
      Precompiled wheel not found. Building from source...
      running build_ext
      Emitting ninja build file /tmp/pip-install-abc/flash-attn_0123/build/temp.linux-x86_64-cpython-311/build.ninja...
      Compiling objects...
      Using envvar MAX_JOBS (4) as the number of workers...
"""
UNIT = (
    "      [{i}/{n}] /usr/local/cuda/bin/nvcc --generate-dependencies-with-compile --dependency-output "
    "/tmp/pip-install-abc/flash-attn_0123/build/temp.linux-x86_64-cpython-311/csrc/flash_attn/src/"
    "flash_bwd_hdim{d}_bf16_sm80.o.d -I/tmp/pip-install-abc/flash-attn_0123/csrc/flash_attn "
    "-I/tmp/pip-install-abc/flash-attn_0123/csrc/cutlass/include -I/usr/lib/python3/site-packages/torch/include "
    "-c -c /tmp/pip-install-abc/flash-attn_0123/csrc/flash_attn/src/flash_bwd_hdim{d}_bf16_sm80.cu -o "
    "/tmp/pip-install-abc/flash-attn_0123/build/temp.linux-x86_64-cpython-311/csrc/flash_attn/src/"
    "flash_bwd_hdim{d}_bf16_sm80.o -D__CUDA_NO_HALF_OPERATORS__ -O3 -std=c++17 --expt-relaxed-constexpr "
    "--use_fast_math -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 --threads 4\n"
)
WARNING = (
    "      /tmp/pip-install-abc/flash-attn_0123/csrc/cutlass/include/cute/atom/mma_traits_sm90_gmma.hpp({ln}): "
    'warning #177-D: variable "tmp{i}" was declared but never referenced\n'
    "                auto tmp{i} = make_tensor(ptr, layout);\n"
    "                     ^\n"
    '      Remark: The warnings can be suppressed with "-diag-suppress <warning-number>"\n'
)
TAIL = """      Killed
      [84/84] c++ -MMD -MF flash_api.o.d -O3 -std=c++17
      ninja: build stopped: subcommand failed.
      Traceback (most recent call last):
        File "/usr/lib/python3/site-packages/torch/utils/cpp_extension.py", line 2104, in _run_ninja_build
          subprocess.run(
      subprocess.CalledProcessError: Command '['ninja', '-v']' returned non-zero exit status 1.
      RuntimeError: Error compiling objects for extension
      [end of output]
  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for flash-attn
Failed to build flash-attn
"""


def make_log(size: int) -> bytes:
    parts = [HEAD]
    total = len(HEAD)
    i = 0
    while total < size - len(TAIL):
        i += 1
        chunk = (
            UNIT.format(i=i, n=10**6, d=(32, 64, 128, 256)[i % 4])
            if i % 20 == 0
            else WARNING.format(i=i, ln=100 + i % 900)
        )
        parts.append(chunk)
        total += len(chunk)
    parts.append(TAIL)
    return "".join(parts).encode()


def best_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=10.0, help="log size for the engine (default 10)")
    ap.add_argument(
        "--baseline-mb", type=float, default=1.0, help="slice measured with the naive baseline (default 1)"
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    log = make_log(int(args.mb * 1_000_000))
    expl = explain_bytes(log)
    codes = [d.code for d in expl.diagnoses]
    assert codes[:2] == ["wheel-download-failed", "build-oom"], codes
    fast = best_of(lambda: explain_bytes(log), args.repeat)

    piece = make_log(int(args.baseline_mb * 1_000_000)).decode()
    naive = best_of(lambda: match_naive(piece), 1)
    fast_piece = best_of(lambda: explain_bytes(piece.encode()), args.repeat)

    mb = len(log) / 1e6
    print(f"log: {mb:.1f} MB, {expl.lines:,} lines -> {', '.join(codes)}")
    print(
        f"flashdoctor explain engine: {fast:.3f} s for {mb:.1f} MB ({mb / fast:.1f} MB/s) - goal < 1 s for 10 MB"
    )
    print(
        f"side by side on {len(piece) / 1e6:.1f} MB: engine {fast_piece:.3f} s, naive baseline (every pattern on every "
        f"line) {naive:.3f} s -> {naive / fast_piece:.0f}x faster"
    )
    return 0 if (fast / mb) * 10 < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
