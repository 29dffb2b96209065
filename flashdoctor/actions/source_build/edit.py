"""Edit the unpacked sources of a known FA2 version so that a minimal build compiles and links.

FA2 has no switch for head dims or dtypes (facts.md), so a minimal build needs two edits:

1. setup.py: the CUDAExtension ``sources=[...]`` list keeps only the kernel units of the profile.
2. csrc/flash_attn/src/static_switch.h: HEADDIM_SWITCH and FP16_SWITCH (used by flash_api.cpp to
   pick a kernel) only dispatch to compiled kernels; any other case throws a std::runtime_error
   (Python RuntimeError) that names the profile, instead of an undefined symbol at link or import.
   A compiled head dim keeps upstream's range exactly (128 serves 97..128): running a smaller head
   dim on a larger kernel than upstream would choose is not done, because the backward pass sizes
   its dq accumulator by upstream's rounding.

Two hygiene edits make the build work offline with the tools preflight checked:

3. setup.py ``setup_requires=[...]`` is emptied: setuptools would try to download any of packaging,
   psutil, ninja (Python distributions) it does not find, which fails offline; flashdoctor sets
   MAX_JOBS itself, so psutil is never imported, and preflight checks ninja.
4. ``from wheel.bdist_wheel import bdist_wheel`` falls back to setuptools' own bdist_wheel
   (setuptools >= 70.1) when the ``wheel`` distribution is absent.

Only versions in data/build.json are edited: static_switch.h must have a known sha256 and setup.py's
kernel list must be exactly the version's full list. Anything else is refused, never guessed.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from flashdoctor import __version__
from flashdoctor.decide.source_build.plan import Fa2Layout, parse_unit
from flashdoctor.decide.source_build.setup_eval import call_name
from flashdoctor.errors import FlashdoctorError
from flashdoctor.knowledge.profiles import Profile

SETUP = "setup.py"
STATIC_SWITCH = "csrc/flash_attn/src/static_switch.h"
FLASH_API = "csrc/flash_attn/flash_api.cpp"
MARK = "flashdoctor"


class SourceEditError(FlashdoctorError):
    """The sources are not what flashdoctor knows for this version: nothing was changed."""


@dataclass(frozen=True)
class EditResult:
    units_before: tuple[str, ...]
    units_after: tuple[str, ...]
    edited_files: tuple[str, ...]
    notes: tuple[str, ...]


# -- setup.py -----------------------------------------------------------------------------------------
def _offsets(src: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(src):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _span(starts: list[int], node: ast.AST) -> tuple[int, int]:
    # ast positions: 1-based lines, UTF-8 byte columns.
    start = starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
    end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
    return start, end


def find_fa2_sources(tree: ast.AST) -> ast.List | None:
    """The literal ``sources=[...]`` of ``CUDAExtension(name="flash_attn_2_cuda", ...)`` (CUDA branch)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "CUDAExtension":
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            name = kw.get("name")
            if isinstance(name, ast.Constant) and name.value == "flash_attn_2_cuda":
                src = kw.get("sources")
                if isinstance(src, ast.List) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in src.elts
                ):
                    return src
    return None


def setup_units(setup_text: str) -> tuple[str, ...]:
    """The kernel units listed in an FA2 setup.py (raises SourceEditError if the list is not found)."""
    try:
        tree = ast.parse(setup_text)
    except SyntaxError as exc:
        raise SourceEditError(f"setup.py does not parse: {exc}") from None
    lst = find_fa2_sources(tree)
    if lst is None:
        raise SourceEditError(
            "setup.py has no literal CUDAExtension(name='flash_attn_2_cuda', sources=[...]) list"
        )
    return tuple(e.value for e in lst.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))


def edit_setup_py(
    text: str, keep: tuple[str, ...], layout: Fa2Layout, profile: Profile
) -> tuple[str, tuple[str, ...]]:
    """Return the edited setup.py and the kernel units it had before. Pure (text in, text out)."""
    src = text.encode("utf-8")
    tree = ast.parse(src)
    lst = find_fa2_sources(tree)
    if lst is None:
        raise SourceEditError(
            "setup.py has no literal CUDAExtension(name='flash_attn_2_cuda', sources=[...]) list"
        )
    entries = [e.value for e in lst.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    units = tuple(e for e in entries if parse_unit(e) is not None)
    others = [e for e in entries if parse_unit(e) is None]
    if set(units) != set(layout.units()) or len(units) != len(layout.units()):
        raise SourceEditError(
            f"setup.py lists {len(units)} kernel units, not the {len(layout.units())} flashdoctor knows for "
            f"flash-attn {layout.version}: refusing to edit sources it does not recognise"
        )
    if others != ["csrc/flash_attn/flash_api.cpp"]:
        raise SourceEditError(f"setup.py's source list has unexpected entries besides the kernels: {others}")
    kept = [e for e in entries if parse_unit(e) is None or e in keep]
    starts = _offsets(src)
    edits: list[tuple[int, int, bytes]] = []
    indent = " " * (lst.elts[0].col_offset if lst.elts else 16)
    new_list = "[\n" + "".join(f"{indent}{e!r},\n".replace("'", '"') for e in kept) + indent[:-4] + "]"
    edits.append((*_span(starts, lst), new_list.encode()))
    # setup_requires=[...] -> [] (see module docstring, edit 3).
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "setup":
            for k in node.keywords:
                if k.arg == "setup_requires":
                    edits.append((*_span(starts, k.value), b"[]"))
    # wheel's bdist_wheel -> setuptools' when wheel is absent (edit 4).
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "wheel.bdist_wheel"
            and node.col_offset == 0
            and [a.name for a in node.names] == ["bdist_wheel"]
        ):
            alias = node.names[0].asname or "bdist_wheel"
            repl = (
                f"try:  # {MARK}: setuptools >= 70.1 has its own bdist_wheel; wheel may be absent\n"
                f"    from setuptools.command.bdist_wheel import bdist_wheel as {alias}\n"
                f"except ImportError:\n"
                f"    from wheel.bdist_wheel import bdist_wheel as {alias}"
            )
            edits.append((*_span(starts, node), repl.encode()))
    for start, end, rep in sorted(edits, reverse=True):
        src = src[:start] + rep + src[end:]
    header = (
        f"# Edited by {MARK} {__version__} for the build profile {profile.label()}: "
        f"{len(kept) - len(others)} of {len(units)} kernel units kept, setup_requires emptied, "
        "bdist_wheel import made to work without the wheel package.\n"
    ).encode()
    out = (header + src).decode("utf-8")
    ast.parse(out)  # never write a setup.py that does not parse
    return out, units


# -- static_switch.h -------------------------------------------------------------------------------
def _macro_span(text: str, name: str) -> tuple[int, int]:
    start = text.find(f"#define {name}(")
    if start < 0:
        raise SourceEditError(f"static_switch.h has no #define {name}(")
    pos = start
    while True:
        nl = text.find("\n", pos)
        if nl < 0:
            return start, len(text)
        line = text[pos:nl]
        if not line.rstrip().endswith("\\"):
            return start, nl
        pos = nl + 1


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _macro(lines: list[str]) -> str:
    # Backslashes aligned like upstream's, except after the long message lines.
    width = min(max(len(x) for x in lines), 44) + 1
    return "\n".join(x.ljust(width) + " \\" for x in lines[:-1]) + "\n" + lines[-1]


def headdim_switch(compiled: tuple[int, ...], all_dims: tuple[int, ...], label: str) -> str:
    """HEADDIM_SWITCH dispatching only to ``compiled`` kernels, each over upstream's own range."""
    lines = ["#define HEADDIM_SWITCH(HEADDIM, ...)", "  [&] {"]
    dims = sorted(all_dims)
    for d in sorted(compiled):
        lower = dims[dims.index(d) - 1] if dims.index(d) > 0 else 0
        lines += [
            f"    if (HEADDIM > {lower} && HEADDIM <= {d}) {{",
            f"      constexpr static int kHeadDim = {d};",
            "      return __VA_ARGS__();",
            "    }",
        ]
    msg_a = _c_string(
        f"FlashAttention was built by {MARK} ({label}) with head dims {', '.join(map(str, sorted(compiled)))} only: head dim "
    )
    msg_b = _c_string(
        " has no compiled kernel. Rebuild with its head dim, e.g. flashdoctor build --fa2 --head-dims <dims>"
    )
    lines += [
        f"    throw std::runtime_error(std::string({msg_a}) + std::to_string(HEADDIM) + {msg_b});",
        "  }()",
    ]
    return _macro(lines)


def fp16_switch(dtypes: tuple[str, ...], label: str) -> str:
    """FP16_SWITCH(COND, ...) where COND means fp16, narrowed to the compiled dtype(s)."""
    assert set(dtypes) <= {"fp16", "bf16"} and dtypes
    if set(dtypes) == {"fp16", "bf16"}:
        raise ValueError("nothing to narrow")
    only = dtypes[0]
    other = "fp16" if only == "bf16" else "bf16"
    cond = "(COND)" if only == "bf16" else "!(COND)"
    elem = "cutlass::bfloat16_t" if only == "bf16" else "cutlass::half_t"
    msg = _c_string(
        f"FlashAttention was built by {MARK} ({label}) for dtype {only} only: {other} inputs have no compiled kernel. "
        f"Rebuild with flashdoctor build --fa2 --dtypes fp16,bf16, or pass {only} tensors"
    )
    lines = [
        "#define FP16_SWITCH(COND, ...)",
        "  [&] {",
        f"    if {cond} {{",
        f"      throw std::runtime_error({msg});",
        "    }",
        f"    using elem_type = {elem};",
        "    return __VA_ARGS__();",
        "  }()",
    ]
    return _macro(lines)


def edit_static_switch(text: str, layout: Fa2Layout, profile: Profile) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest not in layout.static_switch_sha256:
        raise SourceEditError(
            f"static_switch.h of flash-attn {layout.version} is not the file flashdoctor knows "
            f"(sha256 {digest[:16]}…): refusing to edit it"
        )
    out = text
    label = profile.label()
    if profile.head_dims is not None:
        a, b = _macro_span(out, "HEADDIM_SWITCH")
        out = out[:a] + headdim_switch(profile.head_dims, layout.head_dims, label) + out[b:]
    if profile.dtypes is not None:
        a, b = _macro_span(out, "FP16_SWITCH")
        out = out[:a] + fp16_switch(profile.dtypes, label) + out[b:]
    pragma = "#pragma once\n"
    if pragma not in out:
        raise SourceEditError("static_switch.h has no '#pragma once'")
    note = f"// Edited by {MARK} {__version__}: dispatch narrowed to the build profile {label}.\n"
    return out.replace(pragma, pragma + "\n" + note + "#include <stdexcept>\n#include <string>\n", 1)


# -- the whole edit ----------------------------------------------------------------------------------
def edit_fa2_tree(root: Path, layout: Fa2Layout, profile: Profile) -> EditResult:
    """Edit an unpacked FA2 source tree in place for ``profile``. All checks run before any write."""
    setup_path = root / SETUP
    switch_path = root / STATIC_SWITCH
    for p in (setup_path, switch_path, root / FLASH_API):
        if not p.is_file():
            raise SourceEditError(f"{p.relative_to(root)} is missing: not an FA2 source tree")
    keep = layout.units(profile.head_dims, profile.dtypes)
    setup_text = setup_path.read_text(encoding="utf-8")
    if MARK in setup_text.splitlines()[0]:
        raise SourceEditError(
            f"{setup_path} was already edited by {MARK}: start from a fresh copy of the sources"
        )
    new_setup, before = edit_setup_py(setup_text, keep, layout, profile)
    switch_text = switch_path.read_text(encoding="utf-8")
    new_switch = switch_text
    edited = [SETUP]
    if profile.narrowed:
        new_switch = edit_static_switch(switch_text, layout, profile)
        edited.append(STATIC_SWITCH)
    setup_path.write_text(new_setup, encoding="utf-8")
    if new_switch is not switch_text:
        switch_path.write_text(new_switch, encoding="utf-8")
    notes = (f"kept {len(keep)} of {len(before)} kernel units",)
    return EditResult(before, keep, tuple(edited), notes)
