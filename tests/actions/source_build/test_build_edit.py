"""The FA2 source edit against the real sdist: the build list, the dispatch (compiled and run with
g++), setup.py still parses and reports the profile label, unknown sources are refused untouched."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.source_build.edit import (
    SETUP,
    STATIC_SWITCH,
    SourceEditError,
    edit_fa2_tree,
    setup_units,
)
from flashdoctor.decide.source_build.plan import fa2_layout
from flashdoctor.knowledge.profiles import Profile
from tests.support.sdist import VERSION

LAYOUT = fa2_layout(VERSION)
MINIMAL = Profile("fa2", (90,), (128,), ("bf16",))


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_minimal_edit_keeps_six_units_and_narrows_dispatch(fa2_tree: Path) -> None:
    assert LAYOUT is not None
    before = setup_units((fa2_tree / SETUP).read_text())
    assert len(before) == 73 and before[0] == "csrc/flash_attn/flash_api.cpp"
    res = edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)
    assert len(res.units_before) == 72
    assert res.units_after == LAYOUT.units((128,), ("bf16",))
    text = (fa2_tree / SETUP).read_text()
    ast.parse(text)
    assert setup_units(text) == ("csrc/flash_attn/flash_api.cpp", *res.units_after)
    tree = ast.parse(text)
    setup_call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"
    )
    reqs = next(k.value for k in setup_call.keywords if k.arg == "setup_requires")
    assert isinstance(reqs, ast.List) and reqs.elts == []
    assert "from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel" in text
    switch = (fa2_tree / STATIC_SWITCH).read_text()
    assert "kHeadDim = 128" in switch and "kHeadDim = 64" not in switch and "kHeadDim = 256" not in switch
    assert "HEADDIM > 96 && HEADDIM <= 128" in switch
    assert "cutlass::half_t" not in switch.split("#define FP16_SWITCH", 1)[1].split("#define", 1)[0]
    assert "fd.sm90.hd128.bf16" in switch
    # Every unit kept is a file of the sdist; the dropped ones stay on disk, unbuilt.
    for unit in res.units_after:
        assert (fa2_tree / unit).is_file()


def test_full_profile_only_makes_setup_py_offline_safe(fa2_tree: Path) -> None:
    assert LAYOUT is not None
    switch_before = _digest(fa2_tree / STATIC_SWITCH)
    res = edit_fa2_tree(fa2_tree, LAYOUT, Profile("fa2", (80, 90)))
    assert len(res.units_after) == 72 and res.edited_files == (SETUP,)
    assert _digest(fa2_tree / STATIC_SWITCH) == switch_before


def test_unknown_sources_are_refused_and_left_untouched(fa2_tree: Path) -> None:
    assert LAYOUT is not None
    switch = fa2_tree / STATIC_SWITCH
    switch.write_text(switch.read_text() + "\n// local change\n")
    before = (_digest(fa2_tree / SETUP), _digest(switch))
    with pytest.raises(SourceEditError, match="not the file flashdoctor knows"):
        edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)
    assert (_digest(fa2_tree / SETUP), _digest(switch)) == before


def test_a_setup_py_with_another_kernel_list_is_refused(fa2_tree: Path) -> None:
    assert LAYOUT is not None
    setup = fa2_tree / SETUP
    text = setup.read_text()
    setup.write_text(
        text.replace('                "csrc/flash_attn/src/flash_fwd_hdim32_fp16_sm80.cu",\n', "", 1)
    )
    with pytest.raises(SourceEditError, match="71 kernel units, not the 72"):
        edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)


def test_editing_twice_is_refused(fa2_tree: Path) -> None:
    assert LAYOUT is not None
    edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)
    with pytest.raises(SourceEditError, match="already edited"):
        edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)


@pytest.mark.system
@pytest.mark.slow
def test_edited_setup_py_runs_and_reports_the_label(fa2_tree: Path) -> None:
    """The real setup.py (it imports torch) runs offline with the label flashdoctor sets; the
    wheel package is not needed (setuptools' bdist_wheel) and nothing is fetched."""
    assert LAYOUT is not None
    edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)
    env = {
        **os.environ,
        "FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE",
        "FLASH_ATTN_LOCAL_VERSION": MINIMAL.label(),
        "PIP_NO_INDEX": "1",
    }
    p = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=fa2_tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "2.8.3.post2+fd.sm90.hd128.bf16"


TU = r"""
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
namespace cutlass { struct half_t {}; struct bfloat16_t {}; }
#include "static_switch.h"
template <typename T> const char* name();
template <> const char* name<cutlass::half_t>() { return "fp16"; }
template <> const char* name<cutlass::bfloat16_t>() { return "bf16"; }
// Declared for all, defined only for the compiled kernels: a dispatch to any other is a link error,
// as with FA2's run_mha_fwd_<T, HeadDim, Is_causal> specialisations in the .cu units.
template <typename T, int D, bool C> void kernel();
%(defs)s
void dispatch(bool is_bf16, int d, bool causal) {
  FP16_SWITCH(!is_bf16, [&] {
    HEADDIM_SWITCH(d, [&] {
      BOOL_SWITCH(causal, Is_causal, [&] { kernel<elem_type, kHeadDim, Is_causal>(); });
    });
  });
}
int main(int argc, char** argv) {
  try {
    dispatch(std::string(argv[1]) == "bf16", std::atoi(argv[2]), argv[3][0] == '1');
  } catch (const std::runtime_error& e) {
    std::printf("error: %%s\n", e.what());
    return 3;
  }
  return 0;
}
"""


def _tu(tmp: Path, include: Path, kernels: list[tuple[str, int]]) -> tuple[int, str, Path]:
    defs = "\n".join(
        f"template <> void kernel<cutlass::{'bfloat16_t' if dt == 'bf16' else 'half_t'}, {d}, {c}>() "
        f'{{ std::printf("ran %s %d %d\\n", name<cutlass::{"bfloat16_t" if dt == "bf16" else "half_t"}>(), {d}, {int(c == "true")}); }}'
        for dt, d in kernels
        for c in ("false", "true")
    )
    src = tmp / "tu.cpp"
    src.write_text(TU % {"defs": defs})
    exe = tmp / "tu"
    p = subprocess.run(
        ["g++", "-std=c++17", "-O0", f"-I{include}", str(src), "-o", str(exe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, p.stderr, exe


def _run(exe: Path, *args: str) -> tuple[int, str]:
    p = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


@pytest.mark.system
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_narrowed_dispatch_compiles_links_and_raises_clearly(fa2_tree: Path, tmp_path: Path) -> None:
    assert LAYOUT is not None
    include = fa2_tree / "csrc/flash_attn/src"
    # Control: upstream's dispatch needs every kernel, so with only the minimal ones it cannot link.
    rc, err, _ = _tu(tmp_path, include, [("bf16", 128)])
    assert rc != 0 and "undefined reference" in err
    edit_fa2_tree(fa2_tree, LAYOUT, MINIMAL)
    rc, err, exe = _tu(tmp_path, include, [("bf16", 128)])
    assert rc == 0, err
    assert _run(exe, "bf16", "128", "0") == (0, "ran bf16 128 0")
    assert _run(exe, "bf16", "100", "1") == (0, "ran bf16 128 1")  # upstream's range for the 128 kernel
    rc, out = _run(exe, "bf16", "64", "0")
    assert rc == 3 and "head dims 128 only: head dim 64 has no compiled kernel" in out
    rc, out_fp16 = _run(exe, "fp16", "128", "0")
    assert rc == 3 and "for dtype bf16 only: fp16 inputs have no compiled kernel" in out_fp16
    # The smoke test reads these errors as "not compiled in this build" (a skip), not as a broken kernel.
    from flashdoctor.decide.smoke.judge import classify_error
    from flashdoctor.model.cases import Case

    for msg, case in (
        (out, Case("seed", 32, 196, 16, 64)),
        (out_fp16, Case("f", 1, 128, 16, 128, dtype="fp16")),
    ):
        verdict = classify_error("RuntimeError: " + msg.removeprefix("error: "), "fa2", case)
        assert verdict.category == "not_compiled", verdict


@pytest.mark.system
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_two_head_dims_both_dtypes(fa2_tree: Path, tmp_path: Path) -> None:
    assert LAYOUT is not None
    edit_fa2_tree(fa2_tree, LAYOUT, Profile("fa2", (80, 90), (64, 128), None))
    kernels = [(dt, d) for dt in ("fp16", "bf16") for d in (64, 128)]
    rc, err, exe = _tu(tmp_path, fa2_tree / "csrc/flash_attn/src", kernels)
    assert rc == 0, err
    assert _run(exe, "fp16", "40", "1") == (0, "ran fp16 64 1")
    assert _run(exe, "bf16", "128", "0") == (0, "ran bf16 128 0")
    for d in ("32", "96", "192"):
        rc, out = _run(exe, "bf16", d, "0")
        assert rc == 3 and f"head dim {d} has no compiled kernel" in out
