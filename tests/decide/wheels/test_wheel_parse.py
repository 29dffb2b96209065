"""The one filename parser, on a real filename of every naming scheme in the wild (the wheel dataset's
README, "Naming differences")."""

from __future__ import annotations

import pytest
from packaging.tags import Tag
from packaging.version import Version

from flashdoctor.decide.wheels.parse import (
    WheelNameError,
    manylinux_glibc,
    parse_cuda_token,
    parse_wheel_name,
    platform_arch,
)

# filename -> (scheme, dist, public version, cuda, torch, torch_full, abi_label, git, tags)
CASES = {
    # official <= 2.6.3: CUDA token = nvcc major+minor
    "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl": (
        "cuda-minor", "flash-attn", "2.6.3", (12, 3), (2, 4), None, False, None, {"cp312-cp312-linux_x86_64"},
    ),
    # official >= 2.7.0: CUDA major only
    "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl": (
        "cuda-major", "flash-attn", "2.8.3.post1", (12, None), (2, 8), None, True, None, {"cp312-cp312-linux_x86_64"},
    ),
    # official later addition (aarch64, cu13)
    "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_aarch64.whl": (
        "cuda-major", "flash-attn", "2.8.3", (13, None), (2, 10), None, True, None, {"cp312-cp312-linux_aarch64"},
    ),
    # Python 3.7 wheels of the 2.5 era carry the "m" ABI suffix
    "flash_attn-2.5.0+cu118torch1.12cxx11abiFALSE-cp37-cp37m-linux_x86_64.whl": (
        "cuda-minor", "flash-attn", "2.5.0", (11, 8), (1, 12), None, False, None, {"cp37-cp37m-linux_x86_64"},
    ),
    # mjun0812: full CUDA, no ABI field, free-threaded ABI
    "flash_attn-2.8.3+cu130torch2.11-cp313-cp313t-linux_x86_64.whl": (
        "no-abi", "flash-attn", "2.8.3", (13, 0), (2, 11), None, None, None, {"cp313-cp313t-linux_x86_64"},
    ),
    # mjun0812 auditwheel copy: a compressed tag set of two manylinux tags
    "flash_attn-2.8.3+cu126torch2.6-cp310-cp310-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl": (
        "no-abi", "flash-attn", "2.8.3", (12, 6), (2, 6), None, None, None,
        {"cp310-cp310-manylinux_2_24_x86_64", "cp310-cp310-manylinux_2_28_x86_64"},
    ),
    # mjun0812 FA3: torch-labelled abi3 build with the source commit
    "flash_attn_3-3.0.0+cu128torch2.10gite2743ab-cp39-abi3-linux_x86_64.whl": (
        "git", "flash-attn-3", "3.0.0", (12, 8), (2, 10), None, None, "e2743ab", {"cp39-abi3-linux_x86_64"},
    ),
    # kingbri1 / bdashore3: full torch version, hard-coded (meaningless) ABI label
    "flash_attn-2.8.3+cu128torch2.8.0cxx11abiFALSE-cp312-cp312-win_amd64.whl": (
        "full-torch", "flash-attn", "2.8.3", (12, 8), (2, 8), "2.8.0", False, None, {"cp312-cp312-win_amd64"},
    ),
    # sdbds: the same, with its build variant after the ABI label
    "flash_attn-2.8.2+cu128torch2.7.1cxx11abiFALSEfullbackward-cp311-cp311-win_amd64.whl": (
        "full-torch", "flash-attn", "2.8.2", (12, 8), (2, 7), "2.7.1", False, None, {"cp311-cp311-win_amd64"},
    ),
    # Astral's GPU index: the mjun0812 label written with dots
    "flash_attn-2.8.3+cu.13.0.torch.2.11-cp312-cp312-manylinux_2_24_x86_64.whl": (
        "no-abi", "flash-attn", "2.8.3", (13, 0), (2, 11), None, None, None, {"cp312-cp312-manylinux_2_24_x86_64"},
    ),
    # PyTorch index FA3: nothing in a local label (the CUDA is in the index path)
    "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl": (
        "plain", "flash-attn-3", "3.0.0", None, None, None, None, None, {"cp39-abi3-manylinux_2_28_x86_64"},
    ),
    # FA4: pure Python pre-release
    "flash_attn_4-4.0.0b36-py3-none-any.whl": (
        "plain", "flash-attn-4", "4.0.0b36", None, None, None, None, None, {"py3-none-any"},
    ),
    # a label flashdoctor does not read (a local build profile)
    "flash_attn-2.8.3+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl": (
        "other", "flash-attn", "2.8.3", None, None, None, None, None, {"cp312-cp312-linux_x86_64"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("filename", list(CASES))
def test_every_naming_scheme(filename: str) -> None:
    scheme, dist, public, cuda, torch, torch_full, abi, git, tags = CASES[filename]
    n = parse_wheel_name(filename)
    assert n.filename == filename
    assert (n.scheme, n.dist, str(n.public_version)) == (scheme, dist, public)
    assert (n.cuda, n.torch, n.torch_full, n.abi_label, n.git) == (cuda, torch, torch_full, abi, git)
    assert {str(t) for t in n.tags} == tags
    assert n.variant == {"flash-attn": "fa2", "flash-attn-3": "fa3", "flash-attn-4": "fa4"}[dist]


def test_derived_views() -> None:
    n = parse_wheel_name(
        "flash_attn-2.8.3+cu126torch2.6-cp310-cp310-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
    )
    assert n.min_glibc == (2, 24)  # pip installs it on any glibc one of the tags accepts
    assert n.pythons == frozenset({("cp310", "cp310")})
    assert n.platforms == frozenset({"manylinux_2_24_x86_64", "manylinux_2_28_x86_64"})
    assert (n.cuda_text, n.torch_text) == ("12.6", "2.6")
    assert (
        parse_wheel_name("flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl").cuda_text
        == "12"
    )
    assert (
        parse_wheel_name("flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl").min_glibc
        is None
    )
    fa3 = parse_wheel_name("flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    assert fa3.tags == frozenset({Tag("cp39", "abi3", "manylinux_2_28_x86_64")})
    assert fa3.version == Version("3.0.0")


def test_the_version_in_the_name_not_the_tag() -> None:
    # v2.8.3.post1 carries a cu13 asset named 2.8.3 (dataset README quirk 1): the name says 2.8.3.
    n = parse_wheel_name("flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    assert str(n.public_version) == "2.8.3"
    assert n.version.local == "cu13torch2.9cxx11abitrue"


@pytest.mark.parametrize(
    ("filename", "why"),
    [
        ("flash_attn-2.8.3.tar.gz", "not a valid wheel filename"),
        ("flash_attn-2.8.3-cp312.whl", "not a valid wheel filename"),
        ("torch-2.8.0+cu128-cp312-cp312-manylinux_2_28_x86_64.whl", "not a FlashAttention wheel"),
        ("flash_attn-not.a.version-cp312-cp312-linux_x86_64.whl", "not a valid wheel filename"),
    ],
)
def test_rejects_what_is_not_a_flashattention_wheel(filename: str, why: str) -> None:
    with pytest.raises(WheelNameError, match=why):
        parse_wheel_name(filename)


def test_small_helpers() -> None:
    assert parse_cuda_token("12") == (12, None)
    assert parse_cuda_token("118") == (11, 8)
    assert parse_cuda_token("132") == (13, 2)
    assert manylinux_glibc("manylinux_2_34_aarch64") == (2, 34)
    assert manylinux_glibc("manylinux2014_x86_64") == (2, 17)
    assert manylinux_glibc("linux_x86_64") is None
    assert platform_arch("manylinux_2_28_x86_64") == "x86_64"
    assert platform_arch("manylinux2014_aarch64") == "aarch64"
    assert platform_arch("win_amd64") == "amd64"
    assert platform_arch("linux_aarch64") == "aarch64"
    assert platform_arch("any") is None
