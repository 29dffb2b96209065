"""A tiny flash-attention checkout whose hopper/setup.py has main's source-list structure (hopper_setups.MAIN)
and really runs: instead of compiling, it prints one ninja-style line per source its list holds and builds a
pure-Python flash_attn_3 wheel with setuptools. flashdoctor reads the same file for its plan, so a test can
compare the planned units with the "ninja" steps of a real pip run."""

from __future__ import annotations

from pathlib import Path

from tests.support.hopper_setups import MAIN

_RUNNABLE = """
def CUDAExtension(**kw):  # no CUDA here: keep the arguments
    return kw


CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")  # a CPU torch has none


def get_cuda_bare_metal_version(cuda_dir):
    return "", Version(os.environ.get("FAKE_NVCC", "13.0"))

"""

_TAIL = """
import sys
from setuptools import setup

if "bdist_wheel" in sys.argv and ext_modules:
    units = ext_modules[0]["sources"]
    for i, unit in enumerate(units, 1):
        print(f"  [{i}/{len(units)}] /usr/local/cuda/bin/nvcc -c /src/hopper/{unit} -o unit{i}.o", flush=True)
local = os.environ.get("FLASH_ATTN_LOCAL_VERSION")
setup(name="flash_attn_3", version="3.0.0b1" + ("+" + local if local else ""), py_modules=["flash_attn_interface"])
"""


def fake_setup_py() -> str:
    head, rest = MAIN.split("\nNVIDIA_TOOLCHAIN_VERSION", 1)
    body = head.replace("    raise NotImplementedError  # reads `nvcc -V` in the real file\n", "    pass\n")
    return body + _RUNNABLE + "NVIDIA_TOOLCHAIN_VERSION" + rest + _TAIL


def make_fake_checkout(dest: Path) -> Path:
    root = dest / "flash-attention"
    (root / "hopper" / "instantiations").mkdir(parents=True)
    (root / "csrc" / "cutlass" / "include" / "cutlass").mkdir(parents=True)
    (root / "csrc" / "cutlass" / "include" / "cutlass" / "cutlass.h").write_text("// header\n")
    (root / "hopper" / "setup.py").write_text(fake_setup_py())
    (root / "hopper" / "__init__.py").write_text('__version__ = "3.0.0b1"\n')
    (root / "hopper" / "flash_attn_interface.py").write_text(
        "def flash_attn_func(*a, **k):\n    raise RuntimeError\n"
    )
    return root
