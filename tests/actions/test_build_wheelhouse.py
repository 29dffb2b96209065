"""The wheelhouse: the environment fingerprint, the layout other machines read, and THE match rule
(flashdoctor.actions.wheelhouse.serves) that `build` (reuse) and `install` (prefer a local build) share —
as a table (docs/wheelhouse.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from flashdoctor.actions.cache import atomic_write_bytes, sha256_file
from flashdoctor.actions.wheelhouse import (
    BuiltWheel,
    Fingerprint,
    FingerprintError,
    Request,
    Wheelhouse,
    best,
    find,
    fingerprint,
    scan,
    serves,
    store,
)
from flashdoctor.knowledge.profiles import Profile
from flashdoctor.model.environment import GPU
from tests.support.install_helpers import H100_BUILD
from tests.support.targets import target_env

MIN = Profile("fa2", (90,), (128,), ("bf16",))
WHEEL = "flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl"

H100: dict[str, Any] = H100_BUILD  # the fingerprint `flashdoctor build` writes for the minimal H100 build
A100 = GPU(index=0, name="NVIDIA A100", capability="8.0")
RTX4090 = GPU(index=0, name="NVIDIA GeForce RTX 4090", capability="8.9")
UNKNOWN_GPU = GPU(index=0, name="NVIDIA ???", capability=None)


def fp(**change: Any) -> Fingerprint:
    return Fingerprint.from_json({**H100, **change})


def req(env: dict[str, Any] | None = None, gpus: tuple[GPU, ...] | None = None, **kw: Any) -> Request:
    e = target_env("h100", **(env or {}))
    if gpus is not None:
        e = e.replace(gpus=gpus)
    return Request.for_environment(e, kw.pop("variant", "fa2"), **kw)


# (case, built fingerprint change, request, None = serves / a words of the reason it does not)
RULE: list[tuple[str, dict[str, Any], Request, str | None]] = [
    ("the machine it was built on", {}, req(), None),
    ("1 another variant", {}, req(variant="fa3"), "built for fa2, not fa3"),
    ("1 the version asked", {}, req(versions=SpecifierSet("==2.8.3.post2")), None),
    ("1 another version asked", {}, req(versions=SpecifierSet("==2.8.2")), "not ==2.8.2"),
    ("2 a torch patch release", {}, req({"torch": "2.11.1+cu130"}), None),
    ("2 another torch minor", {}, req({"torch": "2.10.0+cu130"}), "exact torch minor"),
    ("2 no torch", {}, req({"torch": None, "torch_cuda": None}), "has no torch"),
    ("3 another CUDA major", {}, req({"torch": "2.11.0+cu128", "torch_cuda": "12.8"}), "CUDA 12"),
    ("3 a CUDA minor", {}, req({"torch": "2.11.0+cu131", "torch_cuda": "13.1"}), None),
    ("3 a CPU torch", {}, req({"torch": "2.11.0+cpu", "torch_cuda": None}), "CUDA none"),
    ("3 a CPU build on a CPU torch", {"cuda": None, "archs": []}, req({"torch_cuda": None}, gpus=()), None),
    ("4 the other ABI", {}, req({"cxx11abi": False}), "CXX11 ABI True, this torch uses False"),
    ("4 the target's ABI unknown", {}, req({"cxx11abi": None}), "ABI is unknown"),
    ("4 the build's ABI unknown", {"cxx11abi": None}, req(), "was not recorded"),
    ("4 both unknown", {"cxx11abi": None}, req({"cxx11abi": None}), "unknown matches nothing"),
    ("5 another Python", {}, req({"python": "3.11", "python_abi": "cp311"}), "this Python is cp311"),
    ("5 another platform", {}, req({"platform": "linux_aarch64"}), "this is linux_aarch64"),
    ("6 an older glibc", {}, req({"glibc": "2.35"}), "glibc 2.39, this system has 2.35"),
    ("6 a newer glibc", {}, req({"glibc": "2.41"}), None),
    ("6 a build without glibc", {"glibc": None}, req({"glibc": "2.17"}), None),
    ("7 an A100", {}, req(gpus=(A100,)), "no code for GPU 0 NVIDIA A100 (sm_80)"),
    (
        "7 sm_80 SASS on an RTX 4090",
        {"archs": [80], "profile": "fd.sm80.hd128.bf16"},
        req(gpus=(RTX4090,)),
        None,
    ),
    ("7 sm_80 SASS on an H100", {"archs": [80], "profile": "fd.sm80.hd128.bf16"}, req(), "(built for sm_80)"),
    ("7 a GPU of unknown capability", {}, req(gpus=(UNKNOWN_GPU,)), "compute capability unknown"),
    ("7 --arch instead of the GPUs", {}, req(gpus=(A100,), archs=(90,)), None),
    ("7 the head dim asked", {}, req(head_dims=(128,), dtypes=("bf16",)), None),
    ("7 a head dim served by the 128 kernel", {}, req(head_dims=(100,)), None),
    ("7 a head dim not compiled", {}, req(head_dims=(64,)), "lacks head dim 64"),
    ("7 a dtype not compiled", {}, req(dtypes=("fp16",)), "lacks fp16"),
    ("7 a full profile covers any", {"profile": "fd.sm90"}, req(head_dims=(64, 256), dtypes=("fp16",)), None),
    ("7 an unreadable profile, nothing named", {"profile": "fd.cpu.hd128.bf16"}, req(), None),
    (
        "7 an unreadable profile, a head dim named",
        {"profile": "fd.cpu"},
        req(head_dims=(128,)),
        "cannot be read",
    ),
]


@pytest.mark.parametrize(("case", "change", "request_", "reason"), RULE, ids=[r[0] for r in RULE])
def test_the_match_rule(case: str, change: dict[str, Any], request_: Request, reason: str | None) -> None:
    why = serves(fp(**change), request_)
    if reason is None:
        assert why == [], why
    else:
        assert why and any(reason in w for w in why), why


FA3 = {**H100, "variant": "fa3", "version": "3.0.0b1", "profile": "fd.sm90.hd128.bf16.nosplit.nofp8"}


@pytest.mark.parametrize(
    ("disabled", "reason"),
    [
        (None, None),  # install names no feature
        (("split", "fp8"), None),  # a build request that does without them
        (("split", "fp8", "local"), None),
        (("split",), "--no-fp8 was not asked"),
        ((), "--no-split was not asked"),
    ],
)
def test_fa3_features_are_part_of_the_profile(disabled: tuple[str, ...] | None, reason: str | None) -> None:
    r = Request(**{**vars(req(variant="fa3")), "disabled": disabled})
    why = serves(Fingerprint.from_json(FA3), r)
    assert (why == []) if reason is None else any(reason in w for w in why), why


def test_build_and_install_share_the_rule() -> None:
    """One rule: for a built fingerprint, `build` (reuse) and `install --from-source --head-dims ...`
    (prefer a local build) give the same verdict for the same request. The old readers disagreed on an
    unknown ABI and on archs that run a GPU without being in the request."""
    env = target_env("h100")
    for profile in (
        MIN,
        Profile("fa2", (90,), (64, 128), ("fp16", "bf16")),
        Profile("fa2", (90,), (256,), None),
    ):
        wanted = fingerprint(env, "fa2", "2.8.3.post2", profile)
        as_build = Request.for_build(wanted)
        as_install = Request.for_environment(
            env,
            "fa2",
            versions=SpecifierSet("==2.8.3.post2"),
            head_dims=profile.head_dims,
            dtypes=profile.dtypes or ("fp16", "bf16"),
        )
        for change in (
            {},
            {"cxx11abi": None},
            {"profile": "fd.sm90"},
            {"archs": [80, 90], "profile": "fd.sm80.sm90.hd128.bf16"},
        ):
            built = fp(**change)
            assert (serves(built, as_build) == []) == (serves(built, as_install) == []), (profile, change)


def test_build_asks_for_every_kernel_unless_narrowed() -> None:
    """`build` without --head-dims asks for the full profile: a minimal build does not serve it, and
    install (which names nothing) takes that minimal build."""
    env = target_env("h100")
    full = fingerprint(env, "fa2", "2.8.3.post2", Profile("fa2", (90,), None, None))
    why = serves(fp(), Request.for_build(full))
    assert why and "lacks head dim 32" in why[-1] and "fp16" in why[-1]
    assert serves(fp(profile="fd.sm90"), Request.for_build(fingerprint(env, "fa2", "2.8.3.post2", MIN))) == []
    assert serves(fp(), req()) == []


# -- fingerprint and layout ------------------------------------------------------------------------
def test_fingerprint_fields_and_stable_id() -> None:
    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    assert f.key() == {**{k: v for k, v in H100.items() if k != "glibc"}}
    assert f.glibc == "2.39" and Fingerprint.from_json(f.to_json()) == f
    assert len(f.id) == 16 and f.id == fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN).id
    # A patch release of torch keeps the id; a minor, the CUDA major, the ABI or the profile change it.
    assert fingerprint(target_env("h100", torch="2.11.1+cu130"), "fa2", "2.8.3.post2", MIN).id == f.id
    for change in (
        {"torch": "2.10.0+cu130"},
        {"torch": "2.11.0+cu128", "torch_cuda": "12.8"},
        {"cxx11abi": False},
        {"python": "3.11"},
    ):
        assert fingerprint(target_env("h100", **change), "fa2", "2.8.3.post2", MIN).id != f.id, change
    other = Profile("fa2", (90,), (64,), ("bf16",))
    assert fingerprint(target_env("h100"), "fa2", "2.8.3.post2", other).id != f.id


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
    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    built = store(tmp_path / "wh", _wheel(tmp_path), f, {"seconds": 417})
    assert built.path == tmp_path / "wh" / f.id / WHEEL
    manifest = json.loads((tmp_path / "wh" / f.id / "build.json").read_text())
    assert manifest["schema"] == "flashdoctor/built-wheel/1"
    assert manifest["wheel"] == WHEEL and manifest["fingerprint"]["id"] == f.id and manifest["seconds"] == 417
    assert len(manifest["sha256"]) == 64
    hit = find([tmp_path / "elsewhere", tmp_path / "wh"], f)
    assert hit is not None and hit.path == built.path
    assert sorted(p.name for p in (tmp_path / "wh" / f.id).iterdir()) == [
        "build.json",
        WHEEL,
    ]  # no temporaries
    ref = hit.ref()
    assert (
        ref.source == "wheelhouse"
        and ref.version == "2.8.3.post2+fd.sm90.hd128.bf16"
        and ref.sha256 == manifest["sha256"]
    )


def test_a_bigger_build_covers_a_smaller_request(tmp_path: Path) -> None:
    env = target_env("h100")
    big = Profile("fa2", (80, 90), (64, 128), ("fp16", "bf16"))
    store(
        tmp_path,
        _wheel(
            tmp_path, "flash_attn-2.8.3.post2+fd.sm80.sm90.hd64.hd128.fp16.bf16-cp312-cp312-linux_x86_64.whl"
        ),
        fingerprint(env, "fa2", "2.8.3.post2", big),
        {},
    )
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", MIN)) is not None
    wider = Profile("fa2", (90,), (128, 256), ("bf16",))
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", wider)) is None
    other_torch = target_env("h100", torch="2.10.0+cu130")
    assert find([tmp_path], fingerprint(other_torch, "fa2", "2.8.3.post2", MIN)) is None
    older_glibc = target_env("h100", glibc="2.35")
    assert find([tmp_path], fingerprint(older_glibc, "fa2", "2.8.3.post2", MIN)) is None


def _narrow_and_wide(tmp_path: Path) -> tuple[BuiltWheel, BuiltWheel]:
    """Two builds for the H100 in ``tmp_path``: the minimal profile and a wider one of the same version."""
    env = target_env("h100")
    narrow = store(tmp_path, _wheel(tmp_path), fingerprint(env, "fa2", "2.8.3.post2", MIN), {})
    wide = store(
        tmp_path,
        _wheel(tmp_path, "flash_attn-2.8.3.post2+fd.sm90.hd64.hd128.fp16.bf16-cp312-cp312-linux_x86_64.whl"),
        fingerprint(env, "fa2", "2.8.3.post2", Profile("fa2", (90,), (64, 128), ("fp16", "bf16"))),
        {},
    )
    return narrow, wide


def test_ranking_same_id_then_newest_then_widest(tmp_path: Path) -> None:
    env = target_env("h100")
    narrow, wide = _narrow_and_wide(tmp_path)
    older = store(
        tmp_path,
        _wheel(tmp_path, "flash_attn-2.8.2+fd.sm90-cp312-cp312-linux_x86_64.whl"),
        fingerprint(env, "fa2", "2.8.2", Profile("fa2", (90,), None, None)),
        {},
    )
    assert best([tmp_path], req())[0] == wide  # install: newest version, then the widest profile
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", MIN)) == narrow  # build: its own id first
    assert best([tmp_path], req(versions=SpecifierSet("<2.8.3")))[0] == older


def test_partial_foreign_or_hostile_entries_are_skipped(tmp_path: Path) -> None:
    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    (tmp_path / f.id).mkdir()
    (tmp_path / f.id / WHEEL).write_bytes(b"x")  # a copy in progress: no build.json yet
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "build.json").write_text("{not json")
    (tmp_path / "huge").mkdir()
    (tmp_path / "huge" / "build.json").write_text(" " * (2 << 20) + "{}")  # bounded read: refused
    (tmp_path / "escape").mkdir()
    (tmp_path / "escape" / "build.json").write_text(
        json.dumps({"schema": "flashdoctor/built-wheel/1", "wheel": "../" + WHEEL, "fingerprint": H100})
    )
    (tmp_path / WHEEL).write_bytes(b"x")
    (tmp_path / "other-dist").mkdir()
    (tmp_path / "other-dist" / "torch-2.11.0-cp312-cp312-linux_x86_64.whl").write_bytes(b"x")
    (tmp_path / "other-dist" / "build.json").write_text(
        json.dumps(
            {
                "schema": "flashdoctor/built-wheel/1",
                "wheel": "torch-2.11.0-cp312-cp312-linux_x86_64.whl",
                "fingerprint": H100,
            }
        )
    )
    assert list(scan(tmp_path)) == []
    assert find([tmp_path], f) is None


def test_a_manifest_in_any_directory_is_read_by_its_fingerprint(tmp_path: Path) -> None:
    """The directory name is informative: hand-copied entries (another name) are still found."""
    d = tmp_path / "copied-by-hand"
    w = _wheel(d.parent, WHEEL)
    d.mkdir()
    w.rename(d / WHEEL)
    (d / "build.json").write_text(
        json.dumps(
            {
                "schema": "flashdoctor/built-wheel/1",
                "wheel": WHEEL,
                "sha256": sha256_file(d / WHEEL),
                "fingerprint": H100,
            }
        )
    )
    (found,) = scan(tmp_path)
    assert found.fingerprint == fp() and best([Wheelhouse(tmp_path)], req())[0] == found


# -- files created exclusively, links never followed (issue "Hostile inputs", row 7) ----------------------
def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim.txt"
    v.write_text("precious\n")
    return v


class PlantedNames:
    """Plants links at exactly the temporary names the code uses now, whatever its naming scheme: tempfile's
    random names are made deterministic (each mkstemp starts from the same sequence), a first run in a
    scratch directory records every name that ``os.replace`` moves into place, and :meth:`plant` puts a
    link to the victim at each of them (relative to the same root) before the real run. Code that opened
    such a name without O_EXCL/O_NOFOLLOW would write through the link; mkstemp steps to the next name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import tempfile

        self.moved: list[str] = []
        monkeypatch.setattr(
            tempfile, "_get_candidate_names", lambda: iter([f"fdtest{i}" for i in range(100)])
        )
        real_replace = os.replace

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            self.moved.append(os.fspath(src))
            real_replace(src, dst, **kw)

        monkeypatch.setattr(os, "replace", replace)

    def discover(self, scratch: Path, run: Any) -> list[str]:
        """The temporary names (relative to ``scratch``) that ``run(scratch)`` moved into place."""
        self.moved.clear()
        run(scratch)
        names = [os.path.relpath(m, scratch) for m in self.moved]
        assert names and not any(n.startswith("..") for n in names), self.moved  # the test can fail
        self.moved.clear()
        return names

    @staticmethod
    def plant(root: Path, names: list[str], victim: Path) -> None:
        for n in names:
            (root / n).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(victim, root / n)


def test_wheelhouse_add_never_follows_a_planted_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old code wrote through `.<wheel>.tmp-<pid>`: a link planted there had its target
    overwritten, and the wheelhouse entry became that link. The links go where the code writes now."""
    victim = _victim(tmp_path)
    src = _wheel(tmp_path)
    names = PlantedNames(monkeypatch)

    def add(house: Path) -> None:
        house.mkdir()
        assert Wheelhouse(house).add(src, WHEEL) == house / WHEEL

    planted = names.discover(tmp_path / "scratch", add)
    house = tmp_path / "wh"
    names.plant(house, planted, victim)
    assert Wheelhouse(house).add(src, WHEEL) == house / WHEEL
    assert victim.read_text() == "precious\n"
    assert not (house / WHEEL).is_symlink() and (house / WHEEL).read_bytes() == src.read_bytes()


def test_store_and_manifest_writes_never_follow_planted_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = _victim(tmp_path)
    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    names = PlantedNames(monkeypatch)
    wheel = _wheel(tmp_path)
    planted = names.discover(tmp_path / "scratch", lambda root: store(root, wheel, f, {}))
    names.plant(tmp_path / "wh", planted, victim)
    built = store(tmp_path / "wh", wheel, f, {})
    assert victim.read_text() == "precious\n"
    d = tmp_path / "wh" / f.id
    assert not built.path.is_symlink() and not (d / "build.json").is_symlink()
    planted = names.discover(tmp_path / "scratch2", lambda root: atomic_write_bytes(root / "rec.json", b"{}"))
    names.plant(tmp_path / "rec", planted, victim)
    atomic_write_bytes(tmp_path / "rec" / "rec.json", b"{}")
    assert victim.read_text() == "precious\n" and (tmp_path / "rec" / "rec.json").read_bytes() == b"{}"


def test_store_never_writes_through_a_linked_entry_nor_leaves_a_wheel_without_its_manifest(
    tmp_path: Path,
) -> None:
    """A shared wheelhouse where `<id>` is a link to someone's directory: the old code wrote the wheel and
    a build.json into that directory. Where build.json is a directory, the wheel stayed behind without a
    manifest (an entry no reader serves, taking a wheel's space). Both are OSErrors for the caller now."""
    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    wheel = _wheel(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / f.id).symlink_to(victim)
    with pytest.raises(OSError):
        store(tmp_path / "wh", wheel, f, {})
    assert list(victim.iterdir()) == []
    (tmp_path / "wh" / f.id).unlink()
    (tmp_path / "wh" / f.id / "build.json").mkdir(parents=True)
    with pytest.raises(OSError):
        store(tmp_path / "wh", wheel, f, {})
    assert [p.name for p in (tmp_path / "wh" / f.id).iterdir()] == ["build.json"]


@pytest.mark.system
def test_a_rebuild_on_a_full_disk_leaves_no_manifest_that_lies_about_its_wheel(tmp_path: Path) -> None:
    """`build --rebuild` stores a new wheel under the old one's name. The old code replaced the wheel and
    then wrote the manifest: on a disk that filled up in between (RLIMIT_FSIZE here, as in
    test_install_bad_day) the old build.json stayed, naming the new wheel with the old wheel's sha256 and
    profile. Now the old manifest goes first and the new wheel goes again if its manifest cannot be written:
    the entry is gone, never wrong."""
    import resource
    import subprocess
    import sys

    from tests.support.venvs import child_env

    f = fingerprint(target_env("h100"), "fa2", "2.8.3.post2", MIN)
    old = store(tmp_path / "wh", _wheel(tmp_path), f, {})
    new = tmp_path / "new" / WHEEL
    new.parent.mkdir()
    new.write_bytes(b"PK\x05\x06" + b"\1" * 18)  # another wheel of the same name (the rebuild)
    script = (
        "import sys, json; from pathlib import Path\n"
        "from flashdoctor.actions.wheelhouse import Fingerprint, store\n"
        "store(Path(sys.argv[1]), Path(sys.argv[2]), Fingerprint.from_json(json.loads(sys.argv[3])), {})\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # the wheel fits, its manifest does not

    r = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "wh"), str(new), json.dumps(f.to_json())],
        capture_output=True,
        text=True,
        env=child_env(),
        preexec_fn=limit,
    )
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    entry = old.path.parent
    assert not (entry / "build.json").exists() and not (entry / WHEEL).exists(), list(entry.iterdir())
    assert list(scan(tmp_path / "wh")) == []


def test_a_build_whose_wheel_is_not_the_one_its_manifest_records_does_not_serve(tmp_path: Path) -> None:
    """A wheel cut short (a copy into a shared wheelhouse stopped half-way) or a build.json whose sha256 is
    not its wheel's: the old code served it, so `build` said "already built" (exit 0) for ever and
    `install` chose it and then failed the digest check of its copy. Now it is listed with why, and the
    next build that serves (or a new build, which replaces the entry) is taken instead."""
    env = target_env("h100")
    narrow, wide = _narrow_and_wide(tmp_path)
    assert best([tmp_path], req())[0] == wide
    wide.path.write_bytes(wide.path.read_bytes()[:10])  # cut short
    chosen, rejected = best([tmp_path], req())
    assert chosen == narrow
    assert [(bw, why) for bw, why in rejected] == [
        (
            wide,
            [
                f"its wheel {wide.path.name} is not the one build.json records (sha256 {wide.sha256[:16]}…): cut short or changed since"
            ],
        )
    ]
    m = narrow.path.parent / "build.json"
    m.write_text(m.read_text().replace(narrow.sha256, "ab" * 32))  # the manifest lies
    assert best([tmp_path], req())[0] is None
    assert find([tmp_path], fingerprint(env, "fa2", "2.8.3.post2", MIN)) is None  # build builds again
