"""flashdoctor/actions/wheelfile.py: reading a wheel nobody has vouched for yet (it is read before pip is)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from flashdoctor.actions.net.errors import NotAWheelError
from flashdoctor.actions.wheelfile import MAX_METADATA, inspect_wheel
from tests.support.install_helpers import make_wheel


def test_a_metadata_bomb_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    """A 64 MiB METADATA deflates to about 64 KiB: read whole (zf.read), it cost hundreds of MB of memory
    before anything was checked; a wheel in a shared wheelhouse or from a mirror may be any zip."""
    version = "2.8.3+cu12torch2.13cxx11abiTRUE"
    meta = f"Metadata-Version: 2.1\nName: flash-attn\nVersion: {version}\n\n" + "A" * (64 << 20)
    wheel = make_wheel(tmp_path, version=version, extra_dist_info={"METADATA": meta})
    assert wheel.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(NotAWheelError, match="METADATA is larger than"):
            inspect_wheel(wheel)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * MAX_METADATA < 64 << 20, peak  # what the bound costs, not what the member holds


def test_metadata_up_to_the_bound_is_read(tmp_path: Path) -> None:
    version = "2.8.3"
    meta = (
        f"Metadata-Version: 2.1\nName: flash-attn\nVersion: {version}\nRequires-Dist: torch\n\n" + "x" * 1000
    )
    info = inspect_wheel(make_wheel(tmp_path, version=version, extra_dist_info={"METADATA": meta}))
    assert info.name == "flash-attn" and info.requires == ("torch",)
