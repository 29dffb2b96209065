"""Synthetic hopper/setup.py texts, written for these tests: they mimic the structure that matters to
flashdoctor (the download condition, the switches, the source list) of upstream revisions, and nothing
else. They are read by flashdoctor.decide.source_build.hopper, never run.

- MAIN: like main of 2026-08 (downloads only for 12.3 <= nvcc < 13.0 but not 12.8, the cccl include for
  nvcc >= 13, per-head-dim forward units, HDIMDIFF64/192 switches, flash_api_stable.cpp for torch >= 2.9).
- OLDER: like the 2.8.3 sdist's (downloads for every nvcc but 12.8, head dims "all"/"diff" forward units,
  no HDIMDIFF switches, flash_api.cpp).
- NO_HDIMDIFF: per-head-dim forward units but no "diff" units nor their switches (a revision in between).
- GLOB: the source list comes from the file system: flashdoctor cannot read it.
- DOWNLOAD_IN_FUNCTION: the download happens inside a helper function: its condition is not read.

Real file (skip if absent): REAL_TARBALL, the checkout carried in the repository's ignored .carry/ folder
(or $FLASHDOCTOR_FA3_SOURCE: a checkout directory or that tarball).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from tests.support.paths import ROOT

_HEADER = """\
import os
import itertools
from packaging.version import parse, Version
import torch
from torch.utils.cpp_extension import CUDAExtension, CUDA_HOME


def flag(name):
    return os.getenv(name, "FALSE") == "TRUE"


def get_cuda_bare_metal_version(cuda_dir):
    raise NotImplementedError  # reads `nvcc -V` in the real file


def download_and_copy(name, version):
    if os.getenv("FLASH_ATTENTION_OFFLINE_BUILD"):
        return


NVIDIA_TOOLCHAIN_VERSION = {"nvcc": "12.6.85", "ptxas": "12.8.93"}
SKIP_CUDA_BUILD = os.getenv("FLASH_ATTENTION_SKIP_CUDA_BUILD", "FALSE") == "TRUE"
NO_BWD = os.getenv("FLASH_ATTENTION_DISABLE_BACKWARD", "FALSE") == "TRUE"
NO_SPLIT = os.getenv("FLASH_ATTENTION_DISABLE_SPLIT", "FALSE") == "TRUE"
NO_PAGED = os.getenv("FLASH_ATTENTION_DISABLE_PAGEDKV", "FALSE") == "TRUE"
NO_APPEND = os.getenv("FLASH_ATTENTION_DISABLE_APPENDKV", "FALSE") == "TRUE"
NO_LOCAL = os.getenv("FLASH_ATTENTION_DISABLE_LOCAL", "FALSE") == "TRUE"
NO_SOFTCAP = os.getenv("FLASH_ATTENTION_DISABLE_SOFTCAP", "FALSE") == "TRUE"
NO_PACK = os.getenv("FLASH_ATTENTION_DISABLE_PACKGQA", "FALSE") == "TRUE"
NO_FP16 = os.getenv("FLASH_ATTENTION_DISABLE_FP16", "FALSE") == "TRUE"
NO_FP8 = os.getenv("FLASH_ATTENTION_DISABLE_FP8", "FALSE") == "TRUE"
NO_VARLEN = os.getenv("FLASH_ATTENTION_DISABLE_VARLEN", "FALSE") == "TRUE"
NO_CLUSTER = os.getenv("FLASH_ATTENTION_DISABLE_CLUSTER", "FALSE") == "TRUE"
NO_SM80 = os.getenv("FLASH_ATTENTION_DISABLE_SM80", "FALSE") == "TRUE"
NO_HD = {hd: os.getenv(f"FLASH_ATTENTION_DISABLE_HDIM{hd}", "FALSE") == "TRUE" for hd in (64, 96, 128, 192, 256)}
NO_HD64 = os.getenv("FLASH_ATTENTION_DISABLE_HDIM64", "FALSE") == "TRUE"
NO_HD96 = os.getenv("FLASH_ATTENTION_DISABLE_HDIM96", "FALSE") == "TRUE"
NO_HD128 = os.getenv("FLASH_ATTENTION_DISABLE_HDIM128", "FALSE") == "TRUE"
NO_HD192 = os.getenv("FLASH_ATTENTION_DISABLE_HDIM192", "FALSE") == "TRUE"
NO_HD256 = os.getenv("FLASH_ATTENTION_DISABLE_HDIM256", "FALSE") == "TRUE"
ext_modules = []
"""

_COMMON_LISTS = """\
    HALF = ["bf16"] + ([] if NO_FP16 else ["fp16"])
    FWD90_DT = HALF + ([] if NO_FP8 else ["e4m3"])
    HDIMS = [hd for hd, off in ((64, NO_HD64), (96, NO_HD96), (128, NO_HD128), (192, NO_HD192), (256, NO_HD256)) if not off]
    SPLIT = [""] + ([] if NO_SPLIT else ["_split"])
    PAGED = [""] + ([] if NO_PAGED else ["_paged"])
    SOFTCAP = [""] + ([] if NO_SOFTCAP else ["_softcap"])
    SOFTCAP_ALL = [""] if NO_SOFTCAP else ["_softcapall"]
    PACK = [""] + ([] if NO_PACK else ["_packgqa"])
    fwd80 = [f"instantiations/flash_fwd_hdim{h}_{d}{p}{s}{c}_sm80.cu"
             for h, d, s, p, c in itertools.product(HDIMS, HALF, SPLIT, PAGED, SOFTCAP_ALL)]
    bwd80 = [f"instantiations/flash_bwd_hdim{h}_{d}{c}_sm80.cu" for h, d, c in itertools.product(HDIMS, HALF, SOFTCAP)]
    bwd90 = [f"instantiations/flash_bwd_hdim{h}_{d}{c}_sm90.cu" for h, d, c in itertools.product(HDIMS, HALF, SOFTCAP_ALL)]
    if NO_BWD:
        bwd80 = []
        bwd90 = []
"""

_TAIL = """\
    sources = [api] + (fwd80 if not NO_SM80 else []) + fwd90 + (bwd80 if not NO_SM80 else []) + bwd90
    if not NO_SPLIT:
        sources += ["flash_fwd_combine.cu"]
    sources.append("flash_prepare_scheduler.cu")
    ext_modules.append(CUDAExtension(name="flash_attn_3._C", sources=sources, include_dirs=[CUDA_HOME]))
"""

MAIN = (
    _HEADER
    + """\
NO_DIFF64 = os.getenv("FLASH_ATTENTION_DISABLE_HDIMDIFF64", "FALSE") == "TRUE"
NO_DIFF192 = os.getenv("FLASH_ATTENTION_DISABLE_HDIMDIFF192", "FALSE") == "TRUE"

if not SKIP_CUDA_BUILD:
    _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
    if bare_metal_version < Version("12.3"):
        raise RuntimeError("FA3 needs CUDA 12.3")
    elif bare_metal_version >= Version("13.0"):
        os.environ["CPLUS_INCLUDE_PATH"] = os.path.join(CUDA_HOME, "include", "cccl")
    if bare_metal_version >= Version("12.3") and bare_metal_version < Version("13.0") and bare_metal_version != Version("12.8"):
        download_and_copy("nvcc", NVIDIA_TOOLCHAIN_VERSION["nvcc"])
        download_and_copy("ptxas", NVIDIA_TOOLCHAIN_VERSION["ptxas"])
"""
    + _COMMON_LISTS
    + """\
    fwd90 = [f"instantiations/flash_fwd_hdim{h}_{d}{p}{s}{c}{g}_sm90.cu"
             for h, d, s, p, c, g in itertools.product(HDIMS, FWD90_DT, SPLIT, PAGED, SOFTCAP, PACK)
             if not (g and (p or s))]
    if not NO_DIFF64:
        fwd90 += [f"instantiations/flash_fwd_hdim{h}_{d}{p}{s}{c}{g}_sm90.cu"
                  for h, d, s, p, c, g in itertools.product(["64_256", "64_512"], HALF, SPLIT, PAGED, SOFTCAP, PACK)
                  if not (g and (p or s))]
    if not NO_DIFF192:
        fwd90 += [f"instantiations/flash_fwd_hdim{h}_{d}{p}{s}{c}{g}_sm90.cu"
                  for h, d, s, p, c, g in itertools.product(["192_128"], FWD90_DT, SPLIT, PAGED, SOFTCAP, PACK)
                  if not (g and (p or s))]
    api = "flash_api_stable.cpp" if parse(torch.__version__) >= parse("2.9.0.dev20250830") else "flash_api.cpp"
"""
    + _TAIL
)

OLDER = (
    _HEADER
    + """\
if not SKIP_CUDA_BUILD:
    _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
    if bare_metal_version < Version("12.3"):
        raise RuntimeError("FA3 needs CUDA 12.3")
    if bare_metal_version != Version("12.8"):
        download_and_copy("nvcc", NVIDIA_TOOLCHAIN_VERSION["nvcc"])
"""
    + _COMMON_LISTS
    + """\
    fwd90 = [f"instantiations/flash_fwd_hdim{h}_{d}{p}{s}{c}{g}_sm90.cu"
             for h, d, s, p, c, g in itertools.product(["all", "diff"], FWD90_DT, SPLIT, PAGED, SOFTCAP, PACK)
             if not (g and (p or s))]
    api = "flash_api.cpp"
"""
    + _TAIL
)

NO_HDIMDIFF = MAIN.replace(
    'NO_DIFF64 = os.getenv("FLASH_ATTENTION_DISABLE_HDIMDIFF64", "FALSE") == "TRUE"\n'
    'NO_DIFF192 = os.getenv("FLASH_ATTENTION_DISABLE_HDIMDIFF192", "FALSE") == "TRUE"\n',
    "NO_DIFF64 = True\nNO_DIFF192 = True\n",
)

GLOB = MAIN.replace(
    "    sources = [api] + (fwd80",
    "    import glob\n    sources = sorted(glob.glob('instantiations/*.cu'))\n    unused = [api] + (fwd80",
)

DOWNLOAD_IN_FUNCTION = MAIN.replace(
    "if not SKIP_CUDA_BUILD:\n    _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)\n",
    "def fetch_toolchain():\n"
    '    download_and_copy("nvcc", NVIDIA_TOOLCHAIN_VERSION["nvcc"])\n\n\n'
    "if not SKIP_CUDA_BUILD:\n    fetch_toolchain()\n"
    "    _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)\n",
)

REAL_TARBALL = ROOT / ".carry" / "flash-attention-hopper-0251105.tar.gz"


def real_setup_text() -> str | None:
    """hopper/setup.py of the carried checkout (upstream main, 2026-08-15), or None when absent."""
    given = os.environ.get("FLASHDOCTOR_FA3_SOURCE")
    for cand in [Path(given)] if given else [REAL_TARBALL]:
        if cand.is_dir():
            setup = cand / "hopper" / "setup.py"
            return setup.read_text(encoding="utf-8") if setup.is_file() else None
        if cand.is_file():
            with tarfile.open(cand) as tar:
                for m in tar.getmembers():
                    if m.name.endswith("hopper/setup.py") and m.isfile():
                        fh = tar.extractfile(m)
                        return None if fh is None else fh.read().decode("utf-8")
    return None
