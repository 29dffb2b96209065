"""The selector on the real environments of tests/data/selection_eval, scored in-process as
scripts/eval_selection.py does: no pick a thread saw fail (unsafe) beyond the known one, and no fewer
right answers than when the floor was set.

cases.json (38) was scored while the selector changed; fresh.json (23) was frozen before it was first
scored: 16/23 right then (2 unsafe, 1 unsupported), 17/23 after the pre-release rule covered stable-ABI
wheels (docs/install.md). fresh2.json (13) likewise: 10/13 at its first scoring, no unsafe pick;
fresh3.json (12) 5/12 (12/12 lenient); fresh5.json (2) 1/2; fresh6.json (8) 2/8 (8/8 lenient); fresh7.json
(3) 2/3 (3/3 lenient); fresh8.json (3) 3/3; fresh9.json (3) 2/3 (3/3 lenient); fresh10.json (4) 0/4 (4/4
lenient); fresh11.json (6) 2/6 (5/6 lenient); fresh12.json (5) 2/5 (5/5 lenient); fresh13.json (4) 1/4 (4/4 lenient); fresh14.json (6) 4/6 (6/6 lenient); fresh15.json (7) 2/7 (6/7 lenient); fresh16.json (8) 3/8 (8/8 lenient). fresh8 and fresh9 each lost one case that repeated an earlier set's environment (the same file at
the same commit)."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from tests.support.paths import DATA, ROOT, load_script
from tests.support.sources import source_key

EVAL = DATA / "selection_eval"
# file -> (cases, right floor, the unsafe picks that remain, each explained)
FLOORS = {
    # 30 until the Hugging Face sources: for a Windows torch 2.12 + cu132 target (community allowed) the
    # pick was Wildminder's 2.8.4 cu130 wheel built against torch 2.12.0, newer than the confirmed
    # mjun0812 2.8.3 cu132 one (the same cell; counted "other-wheel", right in the lenient score). 30 again
    # since a build of unreleased code (2.8.4: flash-attention's newest release is 2.8.3.post1) ranks after
    # the builds of a release.
    "cases.json": (38, 30, set()),
    # The thread pinned flash-attn 2.8.3, which has no CUDA 12 wheel for torch 2.10, and built; the
    # target does not carry the pin, and for PyPI's torch 2.10.0 (CUDA 12.8, inferred) the plan picks
    # 2.8.1's cu12 torch-2.10 wheel (before that inference: 2.8.3's CUDA 13 wheel, unchecked CUDA).
    # 18 since flash-attn 2.8 ranks after 2.7.4.post1 on torch < 2.6 (its Triton ops need torch 2.6). 19 since
    # a wheel built against a later torch patch fits (the patches export the same symbols: Python 3.8 on
    # torch 2.0.0 takes 2.6.3's cp38 wheel built against 2.0.1, as the thread did).
    "fresh.json": (23, 19, {"linux-torch2.10.0-vllm0.17-source-build"}),
    # Frozen before it was scored: 10/13 (the 3 misses pick a newer release or another copy of the cell).
    # 11 since the torch 2.6 rule for flash-attn 2.8 (above).
    "fresh2.json": (13, 11, set()),
    # Frozen before it was scored: 5/12, no unsafe pick; 4 misses were wheels the index lacked (Astral's
    # index, sdbds' Windows builds, 2.3.x cu117, v2.8.3.post1's aarch64 CUDA 13 asset), 3 a newer release
    # of the confirmed wheel's cell. 6/12 once the index held that asset (its digest, in a lock file).
    # 8 since the torch 2.6 rule for flash-attn 2.8 (above).
    "fresh3.json": (12, 8, set()),
    # From Q&A pages and blogs rather than GitHub threads (the pages corpus had little): 2/2 at first scoring.
    "fresh4.json": (2, 2, set()),
    # Frozen before it was scored: 1/2. The miss is contested: the project said "no current flash-attn
    # wheels exist" for torch 2.10 + CUDA 13 + cp313 on aarch64 (a DGX Spark) and built; the index holds
    # v2.8.1's official cu13torch2.10 cp313 aarch64 asset, pinned with its sha256 in NVIDIA-NeMo/RL's uv.lock.
    "fresh5.json": (2, 1, {"stamp-dgx-spark-py313-torch2.10-cu130-aarch64-source-build"}),
    # From lock files, requirements and install scripts that pin a wheel with its torch (frozen before it was
    # scored): 2/8, 8/8 lenient, no unsafe pick; 5 of the 6 misses pick the confirmed cell's newest release.
    "fresh6.json": (8, 2, set()),
    # Frozen before it was scored: 2/3, no unsafe pick; the miss built for NGC 24.02's torch 2.3.0a0+ebedce2,
    # for which flash-attn 2.5.6's torch-2.3 wheels were compiled (against the nightly that build is).
    # 3 since data/torch_builds.json says which nightly NGC 24.02, 24.05 (and 23.12) are.
    "fresh7.json": (3, 3, set()),
    # From install scripts and lock files that pin an official wheel next to their torch (frozen before it was
    # scored): 3/3; 2/2 once the case that repeated fresh6's setup.sh left.
    "fresh8.json": (2, 2, set()),
    # From build scripts, a README and a merged PR that pin a wheel next to their torch (frozen before it was
    # scored): 2/3, 3/3 lenient, no unsafe pick; the miss picks v2.8.3.post1's official cu13 torch-2.9 asset
    # where the project pinned mjun0812's community build of the same cell. 1/2 once the case that repeated
    # fresh8's SimPO README left.
    "fresh9.json": (2, 1, set()),
    # From install scripts and Dockerfiles that pin a wheel next to their torch (frozen before it was scored):
    # 0/4, 4/4 lenient, no unsafe pick: a newer community Windows build of the cell (bdashore3's 2.7.1.post1
    # ranks 4th), a newer official release of the cell (2.3.4's cu117 wheel ranks 26th), a self-built
    # Windows wheel the index cannot hold, and NGC 24.07's torch 2.4.0a0 (its own cell: a build, where the
    # Dockerfile's import check passed with the release-built 2.7.4.post1 wheel).
    "fresh10.json": (4, 0, set()),
    # From install scripts, setup docs, a Modal config and a Dockerfile that pin a wheel next to their torch
    # (frozen before it was scored): 2/6, 5/6 lenient. The lenient miss was a bug: FA2 was "unsupported" on a
    # Jetson Thor (sm_110, "needs an Ampere or newer GPU"); the project built 2.8.3 for it, which torch's
    # cpp_extension compiles when FA2's setup.py is given no arch it knows (data/build.json archs_via_torch).
    # 3/6 since; two misses pick mjun0812's manylinux-tagged wheel of the same release and cell as the pinned
    # linux_x86_64 one, one kingbri1's 2.8.3 where the project pinned its 2.7.4.post1.
    "fresh11.json": (6, 3, set()),
    # From a Dockerfile, install scripts, an environment.yml and a Windows setup doc with its uv.lock (frozen
    # before it was scored): 2/5, 5/5 lenient, no unsafe pick: mjun0812's manylinux-tagged copy of the pinned
    # cell, kingbri1's 2.8.3 where the project pinned lldacing's 2.7.4 (same cell), and 2.7.4.post1 on torch 2.5
    # where setup.py fetched 2.8.3 (whose Triton ops need torch 2.6; flash_attn_func itself runs).
    "fresh12.json": (5, 2, set()),
    # From Hugging Face Spaces' requirements (one author) and a Colab notebook saved with its outputs (frozen
    # before it was scored): 1/4, 4/4 lenient, no unsafe pick; the misses pick another release of the pinned
    # cell (2.7.4.post1 over 2.7.3 on torch 2.6 and over 2.8.3 on torch 2.4; 2.8.3.post1's official wheel
    # where a Space pinned a community copy of 2.8.3).
    "fresh13.json": (4, 1, set()),
    # From repository files pinned to a commit (a training record with its run logs, Dockerfiles, a Modal image,
    # a pip freeze, a migration guide; frozen before it was scored): 4/6, 6/6 lenient, no unsafe pick. Misses:
    # ModelTC's own FA3 3.0.0b1 cp39 wheel is in no source the index reads (mjun0812's FA3 build of that cell is
    # picked), and 2.7.4.post1 on torch 2.5 where the environment held 2.8.3.post1 (whose Triton ops need torch
    # 2.6; flash_attn_func itself runs).
    "fresh14.json": (6, 4, set()),
    # Installed packages that declare a requirement on flash-attn (stop 36; frozen before it was scored, the
    # selector already keeping to such requirements): 2/7, 6/7 lenient, no unsafe pick. Misses: 2.6.3 over the
    # 2.3.3 a thread pinned (its dependent, axolotl's requirement, sits behind an extra and allows both); the
    # PyTorch index's FA3 wheel where a merged PR took windreamer's (same torch, no dependent rules either out);
    # the official 2.8.3 torch-2.10 wheel where a PR took mjun0812's copy; a build where a torch-2.10 wheel was
    # seen running on torch 2.11 (the torch-minor rule); and nothing to do where 2.7.4.post1 was installed and
    # Transformer Engine 1.12's limit (<= 2.6.3) is checked only at run time, not declared in its metadata.
    "fresh15.json": (7, 2, set()),
    # Lock files, requirements and a setup doc pinned to a commit (stop 37; collected by a helper that read nothing
    # of flashdoctor, frozen before it was scored): 3/8, 8/8 lenient, 4/8 with the release pinned, no unsafe pick,
    # every confirmed file in the index. Misses: mjun0812's manylinux_2_34-tagged copy of the pinned aarch64 wheel
    # (twice), the official 2.8.3 cu13 torch-2.10 file where the lock took mjun0812's, adithyaxx's 2.8.3 where SkyRL
    # took Astral's copy of the cell, and mjun0812's 2.8.3 where a Windows lock took sdbds' 2.8.4 build of unreleased
    # code (which ranks after the builds of a release).
    "fresh16.json": (8, 3, set()),
}


@pytest.fixture(scope="module")
def evaluator() -> ModuleType:
    return load_script("eval_selection", register=True)


@pytest.mark.slow  # 4 s: a plan for each of 61 environments
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_selector_keeps_its_score_on_real_environments(evaluator: ModuleType, name: str) -> None:
    cases = json.loads((EVAL / name).read_text(encoding="utf-8"))["cases"]
    size, floor, known_unsafe = FLOORS[name]
    assert len(cases) == size
    runner = evaluator.InProcess(str(ROOT / "wheels_index.json"))
    runner.details = False  # the score only
    names = runner.filenames()
    verdicts = {c["id"]: evaluator.judge(c, runner.run(c), names) for c in cases}
    right = sum(v.right for v in verdicts.values())
    unsafe = {cid for cid, v in verdicts.items() if not v.right and v.kind == "unsafe"}
    assert unsafe <= known_unsafe, unsafe
    assert right >= floor, {cid: v.kind for cid, v in verdicts.items() if not v.right}


def test_no_environment_source_is_in_two_sets() -> None:
    # A set frozen before scoring measures something only with environments no earlier set holds: fresh8 and
    # fresh9 each repeated one (the same file at the same commit, its source written another way), removed
    # 2026-12-06. One thread may hold several users' environments within one set.
    seen: dict[str, str] = {}
    clashes = []
    for path in sorted(EVAL.glob("*.json")):
        keys = {source_key(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cases"]}
        clashes += [f"{k}: {seen[k]} and {path.name}" for k in keys if k in seen]
        seen.update({k: path.name for k in keys if k not in seen})
    assert not clashes, clashes


# With the release the project pinned given as --version (eval_selection.py --pinned, a second measure: the
# release is read off the answer), what is left is the choice of copy within a release: 117 of 137 at stop 37
# (115 before PyPI's own CUDA for a plain torch 2.0-2.5 was in data/torch_builds.json), 121 of 145 with
# fresh16 (4 of its 8). The misses: another
# copy of the same build (manylinux- vs linux-tagged, one community source over another, the official file
# over a community copy), contested picks, wheels in no source the index reads (docs/install.md).
PINNED_FLOOR = 121


@pytest.mark.slow  # 6 s: a plan for each of 145 environments
def test_with_the_pinned_release_the_selector_finds_the_confirmed_copy(evaluator: ModuleType) -> None:
    runner = evaluator.InProcess(str(ROOT / "wheels_index.json"))
    runner.details = False  # the score only
    runner.pinned = True
    names = runner.filenames()
    right, unsafe = 0, set()
    known = set().union(*(k for _, _, k in FLOORS.values()))
    for name in sorted(FLOORS):
        for case in json.loads((EVAL / name).read_text(encoding="utf-8"))["cases"]:
            v = evaluator.judge(case, runner.run(case), names)
            right += v.right
            unsafe |= {case["id"]} if v.kind == "unsafe" else set()
    assert unsafe <= known, unsafe
    assert right >= PINNED_FLOOR


@pytest.mark.parametrize(
    ("expected", "spec"),
    [
        ({"action": "wheel", "filename_any": ["flash_attn-2.6.3+cu118torch2.0cxx11abiFALSE-cp39-cp39-linux_x86_64.whl"]}, "==2.6.3"),
        ({"action": "wheel", "filename_any": ["flash_attn_3-3.0.0b1-cp39-cp39-linux_x86_64.whl"]}, "==3.0.0b1"),
        ({"action": "wheel", "filename_any": ["flash_attn-2.7.4.post1-cp310-cp310-win_amd64.whl"]}, "==2.7.4.post1"),
        ({"action": "build"}, None),
        ({"wheel_not": ["flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp313-cp313-linux_x86_64.whl"]}, None),
    ],
)  # fmt: skip
def test_the_pinned_release_is_the_confirmed_wheels_public_version(
    evaluator: ModuleType, expected: dict[str, object], spec: str | None
) -> None:
    assert evaluator.pinned_spec({"expected": expected}) == spec
