"""The real FA2 sdist for tests: fetched from PyPI at test time into a cache (never committed).

The sha256 is pinned so that a file carried in the repository's ignored .carry/ folder can stand in
for the download when offline; without either the tests that need it are skipped with a message.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flashdoctor.actions.cache import sha256_file
from flashdoctor.actions.source_build.source import SdistRef, download, find_sdist, unpack
from flashdoctor.errors import NetworkError
from tests.support.guards import network_allowed
from tests.support.paths import ROOT

VERSION = "2.8.3.post2"
FILENAME = f"flash_attn-{VERSION}.tar.gz"
SHA256 = "d0f9f0b08a986cdeadbffcf5ec8b3a8f514366c68ad1853d3ab061bc83cc340b"  # PyPI's digest
CARRY = ROOT / ".carry" / FILENAME


@pytest.fixture(scope="session")
def fa2_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("sdist-cache")
    carried = CARRY.is_file() and sha256_file(CARRY) == SHA256
    if carried:  # no need to ask PyPI
        ref = SdistRef(FILENAME, "offline://", SHA256, VERSION)
    else:
        try:
            with network_allowed():  # the one download from PyPI (tests using it are marked `network`)
                ref = find_sdist(VERSION)
        except NetworkError as exc:
            pytest.skip(f"offline and no carried {FILENAME}: {exc.message}")
        assert ref.sha256 == SHA256, "PyPI's digest of the sdist changed"
    if carried:  # seed the content-addressed cache; download() re-hashes it and reuses it
        from flashdoctor.actions.cache import WheelCache

        seeded = WheelCache(cache).path_for(SHA256, FILENAME)
        seeded.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CARRY, seeded)
    with network_allowed():
        return download(ref, cache)


@pytest.fixture(scope="session")
def fa2_pristine(fa2_sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist unpacked once per session; never edited."""
    return unpack(fa2_sdist, tmp_path_factory.mktemp("pristine"))


# What the edit and setup.py need of the tree (the whole sdist is 70 MB unpacked, mostly CUTLASS).
_PARTS = (
    "setup.py",
    "README.md",
    "flash_attn",
    "csrc/flash_attn",
    "csrc/cutlass/include/cutlass/cutlass.h",
    "hopper/setup.py",
)


@pytest.fixture()
def fa2_tree(fa2_pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the parts of the real sdist that the tests edit or run."""
    dest = tmp_path / "src" / fa2_pristine.name
    for part in _PARTS:
        src, dst = fa2_pristine / part, dest / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
    return dest
