"""The environment fingerprint and the wheelhouse layout other machines read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flashdoctor.actions.built_wheels import FingerprintError, find, fingerprint, scan, store
from flashdoctor.knowledge.profiles import Profile
from tests.conftest import target_env

MIN = Profile("fa2", (90,), (128,), ("bf16",))
WHEEL = "flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl"


def test_fingerprint_fields_and_stable_id() -> None:
    fp = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    assert fp.key() == {
        "variant": "fa2",
        "version": "2.8.3.post2",
        "torch": "2.11",
        "cuda": "13",
        "cxx11abi": True,
        "python_abi": "cp312",
        "platform": "linux_x86_64",
        "archs": [90],
        "profile": "fd.sm90.hd128.bf16",
    }
    assert fp.glibc == "2.39"
    assert len(fp.id) == 16 and fp.id == fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN).id
    # A patch release of torch keeps the id; a minor, the CUDA major, the ABI or the profile change it.
    assert fingerprint(target_env("h100", torch="2.11.1+cu130"), "fa2", "2.8.3.post2", MIN).id == fp.id
    for change in (
        {"torch": "2.10.0+cu130"},
        {"torch": "2.11.0+cu128", "torch_cuda": "12.8"},
        {"cxx11abi": False},
        {"python": "3.11"},
    ):
        assert fingerprint(target_env("h100", **change), "fa2", "2.8.3.post2", MIN).id != fp.id, change
    assert (
        fingerprint(target_env("h100"), "fa2", "2.8.3.post2", Profile("fa2", (90,), (64,), ("bf16",))).id
        != fp.id
    )


def test_fingerprint_needs_torch_with_cuda() -> None:
    with pytest.raises(FingerprintError, match="torch CUDA"):
        fingerprint(target_env("cpu-box"), "fa2", "2.8.3.post2", MIN)
    with pytest.raises(FingerprintError, match="torch"):
        fingerprint(target_env("no-torch"), "fa2", "2.8.3.post2", MIN)


def _wheel(tmp: Path, name: str = WHEEL) -> Path:
    p = tmp / "dist" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return p


def test_store_then_find_exact_and_layout(tmp_path: Path) -> None:
    fp = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    built = store(tmp_path / "wh", _wheel(tmp_path), fp, {"seconds": 417})
    assert built.path == tmp_path / "wh" / fp.id / WHEEL
    manifest = json.loads((tmp_path / "wh" / fp.id / "build.json").read_text())
    assert manifest["schema"] == "flashdoctor/built-wheel/1"
    assert (
        manifest["wheel"] == WHEEL and manifest["fingerprint"]["id"] == fp.id and manifest["seconds"] == 417
    )
    assert len(manifest["sha256"]) == 64
    hit = find([tmp_path / "elsewhere", tmp_path / "wh"], fp)
    assert hit is not None and hit.path == built.path


def test_a_bigger_build_covers_a_smaller_request(tmp_path: Path) -> None:
    env = target_env("h100")
    big = Profile("fa2", (80, 90), (64, 128), ("fp16", "bf16"))
    fp_big = fingerprint(env, "fa2", "2.8.3.post2", big)
    store(
        tmp_path,
        _wheel(
            tmp_path, "flash_attn-2.8.3.post2+fd.sm80.sm90.hd64.hd128.fp16.bf16-cp312-cp312-linux_x86_64.whl"
        ),
        fp_big,
        {},
    )
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", MIN)) is not None
    wider = Profile("fa2", (90,), (128, 256), ("bf16",))
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", wider)) is None
    other_torch = target_env("h100", torch="2.10.0+cu130")
    assert find([tmp_path], fingerprint(other_torch, "fa2", "2.8.3.post2", MIN)) is None
    older_glibc = target_env("h100", glibc="2.35")
    assert find([tmp_path], fingerprint(older_glibc, "fa2", "2.8.3.post2", MIN)) is None


def test_partial_or_foreign_entries_are_skipped(tmp_path: Path) -> None:
    fp = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    (tmp_path / fp.id).mkdir()
    (tmp_path / fp.id / WHEEL).write_bytes(b"x")  # a copy in progress: no build.json yet
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "build.json").write_text("{not json")
    assert list(scan(tmp_path)) == []
    assert find([tmp_path], fp) is None
