"""A tiny sdist shaped like FA2 whose setup.py prints ninja-style lines and builds a real wheel with
setuptools (no compiler): drives the real pip, the real runner and the wheelhouse end to end. FAKE_FAIL
makes its "compiler" fail; FAKE_HANG=FILE makes it write its pid to FILE and never end."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

SETUP_PY = """\
import os, sys
from setuptools import setup

version = open("flash_attn/__init__.py").read().split('"')[1]
local = os.environ.get("FLASH_ATTN_LOCAL_VERSION")
if "bdist_wheel" in sys.argv:
    print("  [1/3] c++ -c csrc/flash_attn/flash_api.cpp -o flash_api.o", flush=True)
    print("  [2/3] /usr/local/cuda/bin/nvcc -c csrc/flash_attn/src/flash_fwd_hdim128_bf16_sm80.cu -o a.o", flush=True)
    if os.environ.get("FAKE_FAIL"):
        print("csrc/flash_attn/src/flash_fwd_kernel.h(42): error: expected a \\";\\"", file=sys.stderr, flush=True)
        print("  ninja: build stopped: subcommand failed.", flush=True)
        sys.exit(1)
    if os.environ.get("FAKE_HANG"):  # a compiler that never ends: its pid in the file FAKE_HANG names
        with open(os.environ["FAKE_HANG"], "w") as fh:
            fh.write(str(os.getpid()))
        os.execvp("sleep", ["sleep", "300"])
    print("  [3/3] c++ -shared flash_api.o a.o -o flash_attn_2_cuda.so", flush=True)
setup(name="flash_attn", version=version + ("+" + local if local else ""), packages=["flash_attn"])
"""


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    """A .tar.gz of regular files (name -> bytes), in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_fake_sdist(dest: Path, version: str = "0.0.1") -> Path:
    top = f"flash_attn-{version}"
    files = {
        f"{top}/setup.py": SETUP_PY.encode(),
        f"{top}/flash_attn/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{top}/csrc/cutlass/include/cutlass/cutlass.h": b"#pragma once\n",
    }
    path = dest / f"{top}.tar.gz"
    path.write_bytes(tar_gz_bytes(files))
    return path
