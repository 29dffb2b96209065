"""The 48 real failures (tests/data/failure_cases.json, from public issue threads).

The expected code of each case was decided by reading its confirmed root cause, not by running the
engine. Every case must rank its code first, except where the excerpt genuinely cannot tell the causes
apart; each such exception says why, and then the code must still be among the first `top`.
Some excerpts carry no evidence of the cause at all, only the environment the poster gave: those
cases also run with that environment as the log's own machine (as `flashdoctor explain --target X
--here` would: a target alone tailors only logs that show they come from it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from flashdoctor.decide.explain import explain_text
from flashdoctor.model.target import environment_from_target
from tests.support.paths import DATA

CASES = {c["id"]: c for c in json.loads((DATA / "failure_cases.json").read_text())}


@dataclass(frozen=True)
class Expect:
    code: str
    top: int = 1
    why: str = ""  # required when top > 1 or a machine is needed
    machine: dict[str, Any] = field(
        default_factory=dict
    )  # target-spec keys taken from the case's environment


STUCK = (
    "The excerpt only says the build sits at 'Building wheel for flash-attn' for hours; the same words "
    "come from a serial build without ninja, a stalled GitHub download in setup.py and a plain long source "
    "build. With nothing else in the log the engine lists the three, build-slow first."
)

EXPECTED: dict[str, Expect] = {
    # root: the installed flash-attn lacked flash_attn_2_cuda (SKIP_CUDA_BUILD / no wheel on arm64)
    "arm64-pypi-sdist-no-cuda-ext": Expect("extension-not-built"),
    # root: setup.py imports torch inside pip's isolated build environment
    "build-isolation-no-torch": Expect("build-isolation"),
    "build-isolation-requirements-txt": Expect("build-isolation"),
    # root: ninja missing/broken -> serial distutils build taking hours
    "slow-build-ninja-docker": Expect("ninja-missing", top=3, why=STUCK),
    # root: an old pin without a wheel -> a long source build that only looks hung
    "slow-build-stuck-fa256": Expect("build-slow"),
    # root: parallel nvcc jobs exhausted RAM (Killed / crash / MAX_JOBS=48)
    "oom-ninja-killed-ngc2306": Expect("build-oom"),
    "oom-crash-39gb": Expect("build-oom"),
    "oom-sm120-maxjobs48": Expect("build-oom"),
    # root: the FA3 hopper build fails to compile on the CUDA 13 image (upstream build fix); the log shows
    # a failed compile unit and nothing more specific
    "fa3-cuda13-ngc2509": Expect("build-failed"),
    # root: the extension links the CUDA 12 runtime, the image has CUDA 13 only
    "cuda13-libcudart12-dlc": Expect("cuda-runtime-mismatch"),
    # root: no wheel matched, the source build found no toolkit (CUDA_HOME unset)
    "cuda-home-uv-no-wheel": Expect("cuda-home-missing"),
    # root: CUDA_HOME set to a PATH-style value with a leading ':'
    "cuda-home-leading-colon": Expect("cuda-home-missing"),
    # root: nvcc 12.1 vs torch cu117 (torch refuses to build across majors)
    "cuda-mismatch-nvcc121-torch-cu117": Expect("nvcc-torch-mismatch"),
    # root: new-ABI extension on old-ABI torch (the __cxx11 symbol)
    "abi-fa280post2-on-torch260": Expect("cxx11-abi-mismatch"),
    "abi-true-wheel-on-abi-false-torch24": Expect("cxx11-abi-mismatch"),
    # root: fp32 tensors reach FlashAttention
    "dtype-fp32-default-qwen": Expect("dtype-unsupported"),
    "dtype-norm-upcast-fp32": Expect("dtype-unsupported"),
    # root: gcc 13 (NGC 24.12) is not accepted by nvcc 12.3
    "fa3-gcc13-nvcc123-ngc2412": Expect(
        "host-compiler-unsupported",
        why="The excerpt is one line ('v2.7.3 build failed in NGC pytorch:24.12-py3'); the cause is in the "
        "environment the case gives (gcc 13 from that image, nvcc 12.3), so the case runs with that machine.",
        machine={"gcc": "13.2.0", "nvcc": "12.3", "ninja": True},
    ),
    # root: nvcc 12.6 segfaults on FA3 kernels
    "fa3-nvcc126-segfault": Expect("compiler-crash"),
    # root: 2.8.x wheels need a newer glibc than Ubuntu 20.04's
    "glibc232-fa28-ubuntu2004": Expect("glibc-too-old"),
    # root: head dims outside what the build supports
    "headdim-fa3-only-64-128-256": Expect("head-dim-unsupported"),
    "headdim-512-ck-mi300x": Expect("head-dim-unsupported"),
    "headdim-bwd-gt64-non-a100": Expect("head-dim-unsupported"),
    # root: g++ 4.8.5 below CUDA 11.7's minimum
    "gxx-too-old-485": Expect("host-compiler-unsupported"),
    # root: flash_attn imported from the source checkout without the compiled extension
    "no-module-flash_attn_2_cuda-source-tree": Expect("extension-not-built"),
    # root: 'wheel' missing with --no-build-isolation
    "missing-wheel-module": Expect("missing-build-deps"),
    # root: extension built for CUDA 11, its runtime is not on the loader path
    "libcudart11-conda-ld-path": Expect("cuda-runtime-mismatch"),
    # root: no cp312 wheel -> source build without ninja (slow distutils backend)
    "ninja-missing-py312-no-wheel": Expect(
        "ninja-missing",
        top=2,
        why="The thread's root cause is two causes in order: no cp312 wheel for 2.5.8 (setup.py's guess fails), "
        "so a source build, which ran without ninja. The wheel miss ranks first, ninja second.",
    ),
    # root: setup.py blocked downloading the wheel from GitHub (no proxy)
    "wheel-download-hang-no-proxy": Expect("network-unreachable", top=3, why=STUCK),
    # root: attn_implementation=flash_attention_2 but flash_attn not installed
    "transformers-fa2-not-installed": Expect("flash-attn-missing"),
    # root: the nvcc on PATH is older than 11.6 (not torch's CUDA)
    "nvcc101-too-old-torch231": Expect("nvcc-too-old"),
    "nvcc-check-not-torch-glm4": Expect("nvcc-too-old"),
    # root: vllm-flash-attn publishes no cp312 wheels
    "py312-no-vllm-flash-attn-wheel": Expect("no-matching-wheel"),
    # root: setup.py's ROCm arch allow-list rejects gfx908 (issue 7 files this under gpu-unsupported)
    "rocm-gfx908-arch-rejected": Expect("gpu-unsupported"),
    # root: flash-attn 1.x has no ROCm backend and looks for nvcc
    "rocm-fa1-requires-nvcc": Expect("rocm-unsupported"),
    # root: binary built for another torch (c10 symbols)
    "undef-setdevice-fa257-torch230": Expect("torch-abi-mismatch"),
    # root: binary does not match torch (version and/or ABI); the commenter's SetDeviceEa is a version mismatch
    "undef-errorc2-torch26-fa263-and-setdeviceEa": Expect("torch-abi-mismatch"),
    "undef-setdevice-ngc-prerelease-torch": Expect("torch-abi-mismatch"),
    # root: pre-Ampere GPU / binary without code for the GPU
    "gpu-turing-quadro-rtx5000": Expect("gpu-unsupported"),
    "gpu-v100-minference": Expect("gpu-unsupported"),
    "gpu-fa3-on-sm120-no-kernel": Expect("gpu-unsupported"),
    "gpu-5090-fa283-no-kernel": Expect("gpu-unsupported"),
    # root: the wheel guess failed (404 / timeout / the move of the downloaded wheel); the build is a consequence
    "ninja-v-failure-hides-real-error": Expect("wheel-download-failed"),
    "wheel-download-timeout": Expect("wheel-download-failed"),
    "wheel-copy-tmp-permission": Expect("wheel-download-failed"),
    # root: no Windows wheels -> a 1-1.5 h source build
    "slow-build-windows-wan21": Expect("build-slow"),
    # root: a Windows wheel for torch 2.1 used with torch 2.2
    "windows-dll-load-wheel-torch-mismatch": Expect(
        "torch-abi-mismatch",
        top=2,
        why="The excerpt is the bare 'DLL load failed' line, without the reason Windows gives: bare, the "
        "missing-DLL reading (the CUDA runtime, cuda-runtime-mismatch) ranks first and the torch reading second.",
    ),
    # root: no Windows wheel -> source build without a CUDA toolkit (no nvcc)
    "windows-nvcc-not-found-py312": Expect("nvcc-missing"),
}


def test_every_case_has_an_expectation() -> None:
    assert set(EXPECTED) == set(CASES)
    for cid, e in EXPECTED.items():
        if e.top > 1 or e.machine:
            assert e.why, f"{cid}: an exception needs its reason"


@pytest.mark.parametrize("cid", sorted(CASES))
def test_case_ranks_its_root_cause(cid: str) -> None:
    case, e = CASES[cid], EXPECTED[cid]
    env = environment_from_target(e.machine) if e.machine else None
    codes = [d.code for d in explain_text(case["error_excerpt"], env, here=True)]
    assert e.code in codes[: e.top], f"{cid}: expected {e.code} in the first {e.top}, got {codes}"


@pytest.mark.parametrize("cid", sorted(c for c, e in EXPECTED.items() if e.machine))
def test_cases_needing_a_machine_still_name_the_failure_without_one(cid: str) -> None:
    # Without the machine the log alone still says what happened (a failed build), never nothing.
    codes = [d.code for d in explain_text(CASES[cid]["error_excerpt"])]
    assert codes and codes[0] == "build-failed"


def test_consequences_follow_their_cause() -> None:
    # The wheel guess 404s, then the build fails: the build failure is reported as its consequence.
    diags = explain_text(CASES["ninja-v-failure-hides-real-error"]["error_excerpt"])
    assert [d.code for d in diags] == ["wheel-download-failed", "build-failed"]
    assert diags[1].consequence_of == "wheel-download-failed"
    # A timeout on the wheel download: the network reading is a consequence of the download failure.
    diags = explain_text(CASES["wheel-download-timeout"]["error_excerpt"])
    by = {d.code: d for d in diags}
    assert diags[0].code == "wheel-download-failed"
    assert by["network-unreachable"].consequence_of == "wheel-download-failed"
    assert by["network-unreachable"].confidence < diags[0].confidence


def test_version_mismatch_outranks_abi_reading_when_both_symbols_appear() -> None:
    diags = explain_text(CASES["undef-errorc2-torch26-fa263-and-setdeviceEa"]["error_excerpt"])
    codes = [d.code for d in diags]
    assert codes[:2] == ["torch-abi-mismatch", "cxx11-abi-mismatch"]
    assert diags[1].consequence_of == "torch-abi-mismatch"
