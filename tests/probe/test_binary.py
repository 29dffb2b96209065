"""Reading CUDA architectures and the C++ ABI from real binaries built here with nvcc / g++."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flashdoctor.probe.binary import cuda_archs, cxx11_abi

pytestmark = pytest.mark.system

KERNEL = r"""
__global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }
extern "C" void launch(float* x) { k<<<1, 32>>>(x); }
"""


def _nvcc() -> str:
    for cand in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).exists():
            return cand
    pytest.skip("nvcc not available: cannot build a fat binary to read")


def _build(tmp_path: Path, name: str, gencodes: list[str]) -> Path:
    src = tmp_path / "k.cu"
    src.write_text(KERNEL)
    out = tmp_path / f"{name}.so"
    cmd = [_nvcc(), "-shared", "-Xcompiler", "-fPIC", "-o", str(out), str(src)]
    for g in gencodes:
        cmd += ["-gencode", g]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return out


def test_sass_ptx_and_arch_specific(tmp_path: Path) -> None:
    so = _build(
        tmp_path,
        "a",
        ["arch=compute_80,code=sm_80", "arch=compute_90a,code=sm_90a", "arch=compute_90,code=compute_90"],
    )
    assert cuda_archs(str(so)) == ("sm_80", "sm_90a", "compute_90")


def test_family_and_blackwell(tmp_path: Path) -> None:
    so = _build(tmp_path, "b", ["arch=compute_100f,code=sm_100f", "arch=compute_120,code=sm_120"])
    assert cuda_archs(str(so)) == ("sm_100f", "sm_120")


def test_no_fatbin_and_unreadable(tmp_path: Path) -> None:
    plain = tmp_path / "plain.so"
    src = tmp_path / "p.c"
    src.write_text("int f(void){return 1;}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(plain), str(src)], check=True, timeout=60)
    assert cuda_archs(str(plain)) == ()
    assert cuda_archs(str(tmp_path / "missing.so")) is None
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    assert cuda_archs(str(empty)) == ()


@pytest.mark.parametrize("abi", [0, 1])
def test_cxx11_abi_of_a_c10_like_library(tmp_path: Path, abi: int) -> None:
    src = tmp_path / "c10.cpp"
    src.write_text(
        "#include <string>\nnamespace c10 { namespace detail {\n"
        "void torchCheckFail(const char*, const char*, unsigned, const std::string& s) { (void)s; }\n}}\n"
    )
    lib = tmp_path / f"libc10_{abi}.so"
    subprocess.run(
        ["g++", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-shared", "-fPIC", "-o", str(lib), str(src)],
        check=True,
        timeout=120,
    )
    assert cxx11_abi(str(lib)) is bool(abi)


def test_cxx11_abi_of_real_torch() -> None:
    torch = pytest.importorskip("torch")
    lib = Path(torch.__file__).parent / "lib" / "libc10.so"
    if not lib.exists():
        pytest.skip("no libc10.so in this torch")
    assert cxx11_abi(str(lib)) is bool(torch._C._GLIBCXX_USE_CXX11_ABI)
