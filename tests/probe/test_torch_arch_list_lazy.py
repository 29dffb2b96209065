"""torch's CUDA arch list is read from libtorch_cuda.so's fat binary (hundreds of milliseconds for the
real 1 GB file) only when the output shows it: --json, --save-target, -v, --deep (issue 17, "Fast first
answer"). A torch with a small but real fat binary in its libtorch_cuda.so stands in for a CUDA build."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.probe import probe_environment
from tests.support.paths import ROOT

pytestmark = pytest.mark.system


def _fatbin(arch: int) -> bytes:
    """One fat-binary container holding one SASS entry for ``arch`` (the layout probe/binary.py reads)."""
    entry = struct.pack("<HHIQ", 2, 0x0101, 64, 0) + b"\0" * 12 + struct.pack("<I", arch) + b"\0" * 8
    entry += struct.pack("<Q", 0) + b"\0" * 16  # flags at +40, padded to the 64-byte header
    return b"\x50\xed\x55\xba\x01\x00\x10\x00" + struct.pack("<Q", len(entry)) + entry


@pytest.fixture
def cuda_torch(tmp_path: Path) -> Path:
    """A site directory whose torch says it is 2.8.0+cu128 and carries lib/libtorch_cuda.so."""
    site = tmp_path / "site"
    lib = site / "torch" / "lib"
    lib.mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("raise ImportError('never imported by the probe')\n")
    (site / "torch" / "version.py").write_text("__version__ = '2.8.0+cu128'\ncuda = '12.8'\nhip = None\n")
    (lib / "libtorch_cuda.so").write_bytes(b"\0" * 4096 + _fatbin(90) + b"\0" * 4096)
    return site


def _environ(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return env


def test_the_probe_reads_the_arch_list_only_when_asked(cuda_torch: Path) -> None:
    environ = _environ(cuda_torch)
    lazy = probe_environment(sys.executable, environ, import_tests=False, torch_archs=False)
    assert lazy.torch == "2.8.0+cu128" and lazy.torch_cuda == "12.8"
    assert lazy.torch_arch_list is None and not lazy.known("torch_arch_list")
    assert "torch_arch_list" not in lazy.to_target()  # a saved target would not claim "none"
    full = probe_environment(sys.executable, environ, import_tests=False, torch_archs=True)
    assert full.torch_arch_list == ("sm_90",) and full.known("torch_arch_list")


def _check(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--no-import-test", *args],
        capture_output=True,
        text=True,
        env=_environ(site),
        timeout=120,
    )


def test_check_says_it_did_not_read_it_and_the_outputs_that_show_it_read_it(
    cuda_torch: Path, tmp_path: Path
) -> None:
    human = _check(cuda_torch)
    assert "torch arch list: not read (use -v)" in human.stdout, human.stdout
    verbose = _check(cuda_torch, "-v")
    assert "torch arch list: sm_90" in verbose.stdout and "not read" not in verbose.stdout
    doc = json.loads(_check(cuda_torch, "--json").stdout)
    assert doc["environment"]["torch_arch_list"] == ["sm_90"]
    saved = tmp_path / "me.json"
    _check(cuda_torch, "--save-target", str(saved))
    assert json.loads(saved.read_text())["torch_arch_list"] == ["sm_90"]
