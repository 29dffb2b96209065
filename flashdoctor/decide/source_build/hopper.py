"""What a flash-attention checkout's hopper/setup.py does, read from its text (never executed).

Every revision of hopper/setup.py has changed what an offline FA3 build depends on, so flashdoctor reads
the checkout's own file instead of assuming one revision:

- when it swaps the system nvcc for a downloaded nvcc/ptxas: the condition on the nvcc release around its
  ``download_and_copy(...)`` calls, as a PEP 440 version range (2.8.3's sdist: every nvcc but 12.8; main of
  2026-08: only 12.3 <= nvcc < 13.0, not 12.8), so the preflight can test this machine's nvcc against it;
- whether it has the offline switch (``FLASH_ATTENTION_OFFLINE_BUILD``), the nvcc it refuses (a ``raise`` under
  ``nvcc < X``), the nvcc from which it adds ``$CUDA_HOME/include/cccl`` to the include path;
- every ``FLASH_ATTENTION_DISABLE_*`` switch it reads (HDIM*, HDIMDIFF64/192, SM80, the features);
- its source list: the ``sources=`` of its CUDAExtension, evaluated for the switches a plan sets, the torch
  version (flash_api_stable.cpp for torch >= 2.9 on main) and the nvcc release
  (flashdoctor.decide.source_build.setup_eval). That list is what ninja compiles, one step per source.

What cannot be read with confidence is reported as such (a ``*_problem`` text), never guessed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from flashdoctor.decide.source_build.setup_eval import (
    SOURCES_KEY,
    UNKNOWN,
    Evaluator,
    Stop,
    Unreadable,
    call_name,
)
from flashdoctor.knowledge import load_data

MAX_TEXT = 1 << 20  # a hopper/setup.py is ~40 kB
DOWNLOAD_CALL = "download_and_copy"
NVCC_CALL = "get_cuda_bare_metal_version"
EXTENSION_CALL = "CUDAExtension"
SWITCH_RE = re.compile(r"^FLASH_ATTENTION_DISABLE_[A-Z0-9_]+$")
UNKNOWN_UNIT = "?"

_OPS: dict[type[ast.cmpop], str] = {
    ast.GtE: ">=", ast.Gt: ">", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
}  # fmt: skip
_FLIP = {">=": "<=", ">": "<", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
_NEG = {">=": "<", ">": "<=", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}


@dataclass(frozen=True)
class SourceList:
    """The sources a hopper/setup.py compiles for one set of facts: one ninja step each."""

    units: tuple[str, ...]  # as setup.py names them; "?" where a name depends on a fact not known
    extensions: int  # CUDAExtension calls reached (1 in every revision known)

    @property
    def unknown_names(self) -> int:
        return sum(u == UNKNOWN_UNIT for u in self.units)


@dataclass(frozen=True)
class Fa3SetupFacts:
    """What hopper/setup.py of this checkout does, read from its text (never executed)."""

    offline_switch: bool
    switches: frozenset[str]
    # The nvcc releases for which it downloads its own toolchain, as a PEP 440 specifier set ("" = never).
    # None = it has download code whose condition flashdoctor cannot read (download_problem says why).
    download_when: str | None = None
    download_problem: str | None = None
    toolchain: tuple[str, ...] = ()  # what it downloads, e.g. ("nvcc 12.6.85", "ptxas 12.8.93")
    nvcc_min: str | None = None  # it raises below this release
    cccl_from: str | None = None  # from this release on it adds $CUDA_HOME/include/cccl
    source_problem: str | None = "no hopper/setup.py was read"  # None = the source list can be read
    tree: ast.Module | None = field(default=None, compare=False, repr=False)

    @property
    def toolchain_download(self) -> bool:
        """True when it may download a toolchain for some nvcc."""
        return self.download_when != ""

    def downloads_for(self, nvcc: str | None) -> bool | None:
        """Whether it downloads with this nvcc (its release, major.minor as setup.py reads it);
        None when that cannot be told (nvcc unknown, or the condition unreadable)."""
        if self.download_when == "":
            return False
        if self.download_when is None or not nvcc:
            return None
        release = _release(nvcc)
        if release is None:
            return None
        return SpecifierSet(self.download_when).contains(release, prereleases=True)

    def source_list(
        self, environ: Mapping[str, str], torch: str | None, nvcc: str | None
    ) -> SourceList | str:
        """The sources compiled with the variables ``environ`` (the plan's), ``torch`` and ``nvcc``; a
        text saying why they cannot be read otherwise."""
        if self.source_problem is not None or self.tree is None:
            return self.source_problem or "no hopper/setup.py was read"
        ev = Evaluator(environ, torch, _release(nvcc) if nvcc else None, NVCC_CALL, EXTENSION_CALL)
        state: dict[str, object] = {}
        try:
            ev.run(self.tree.body, state)
        except Stop as stop:
            return f"it stops at line {stop.line} with these facts (nvcc {nvcc or '?'}, torch {torch or '?'})"
        except Unreadable as exc:
            return f"it computes its sources in a way too large to follow ({exc})"
        except RecursionError:
            return "it nests expressions too deeply to follow"
        found = state.get(SOURCES_KEY)
        if found is UNKNOWN or not isinstance(found, tuple) or not found:
            return f"whether its {EXTENSION_CALL}(...) is reached depends on what flashdoctor cannot read"
        units: list[str] = []
        for value in found:
            if not isinstance(value, (list, tuple)):
                return f"the sources= of its {EXTENSION_CALL}(...) depend on what flashdoctor cannot read"
            units += [u if isinstance(u, str) else UNKNOWN_UNIT for u in value]
        return SourceList(tuple(units), len(found))


def _release(nvcc: str | None) -> str | None:
    """ "13.0.88" / "13.0" -> "13.0": the release nvcc -V prints, as setup.py compares it."""
    if not nvcc:
        return None
    try:
        v = Version(nvcc)
    except InvalidVersion:
        return None
    return f"{v.major}.{v.minor}"


def fa3_setup_facts(text: str) -> Fa3SetupFacts:
    """The facts of a hopper/setup.py, from its text (never executed)."""
    offline_env = str(load_data("build")["fa3"]["offline_env"])
    if len(text) > MAX_TEXT:
        why = f"hopper/setup.py is larger than {MAX_TEXT // 1024} kB: not read"
        return Fa3SetupFacts(False, frozenset(), None, why, source_problem=why)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError) as exc:
        why = f"hopper/setup.py does not parse here ({type(exc).__name__})"
        # What can still be told from the text: the switch names it mentions.
        return Fa3SetupFacts(
            offline_switch=offline_env in text,
            switches=frozenset(re.findall(r"FLASH_ATTENTION_DISABLE_[A-Z0-9_]+", text)),
            download_problem=why,
            source_problem=why,
        )
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    nv_names = _nvcc_names(tree)
    nvcc_min, min_line = _nvcc_min(tree, nv_names)
    when, problem = _download_condition(tree, nv_names, nvcc_min, min_line, text)
    return Fa3SetupFacts(
        offline_switch=offline_env in strings,
        switches=frozenset(s for s in strings if SWITCH_RE.match(s)),
        download_when=when,
        download_problem=problem,
        toolchain=_toolchain(tree),
        nvcc_min=nvcc_min,
        cccl_from=_cccl_from(tree, nv_names),
        source_problem=_source_problem(tree),
        tree=tree,
    )


# -- the nvcc release and conditions on it ------------------------------------------------------------
def _nvcc_names(tree: ast.Module) -> frozenset[str]:
    """The names bound to the nvcc release: ``_, bare_metal_version = get_cuda_bare_metal_version(...)``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if call_name(node.value) != NVCC_CALL:
                continue
            for t in node.targets:
                if isinstance(t, ast.Tuple) and t.elts and isinstance(t.elts[-1], ast.Name):
                    out.add(t.elts[-1].id)
    return frozenset(out or {"bare_metal_version"})


def _version_const(node: ast.expr) -> str | None:
    """``Version("12.8")`` / ``parse("12.8")`` / ``"12.8"`` -> "12.8"."""
    if isinstance(node, ast.Call) and call_name(node) in ("Version", "parse") and len(node.args) == 1:
        node = node.args[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            Version(node.value)
        except InvalidVersion:
            return None
        return node.value
    return None


def _mentions(node: ast.AST, names: frozenset[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _compare_terms(node: ast.Compare, names: frozenset[str]) -> list[str] | None:
    """``a OP b OP c`` with the nvcc release on one side of each pair -> ["OPversion", ...]; None otherwise."""
    out = []
    left = node.left
    for op, right in zip(node.ops, node.comparators):
        sym = _OPS.get(type(op))
        if sym is None:
            return None
        if isinstance(left, ast.Name) and left.id in names and (v := _version_const(right)):
            out.append(f"{sym}{v}")
        elif isinstance(right, ast.Name) and right.id in names and (v := _version_const(left)):
            out.append(f"{_FLIP[sym]}{v}")
        elif _mentions(left, names) or _mentions(right, names):
            return None
        left = right
    return out


def _terms(test: ast.expr, holds: bool, names: frozenset[str]) -> list[str] | None:
    """The conjunction of version terms that ``test`` being ``holds`` means for the nvcc release: [] when it
    says nothing about it (other conditions are taken as met), None when it says something not read."""
    if not _mentions(test, names):
        return []
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _terms(test.operand, not holds, names)
    if isinstance(test, ast.Compare):
        terms = _compare_terms(test, names)
        if terms is None:
            return None
        if holds:
            return terms
        if len(terms) == 1:
            return [_negate(terms[0])]
        return None  # not (a < x < b): a union
    # `a and b` holding, or `a or b` failing: every part holds (fails); another mix is a union.
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) == holds:
        out: list[str] = []
        for v in test.values:
            t = _terms(v, holds, names)
            if t is None:
                return None
            out += t
        return out
    return None


def _negate(term: str) -> str:
    op = term[:2] if term[:2] in _NEG else term[:1]
    return _NEG[op] + term[len(op) :]


def _download_condition(
    tree: ast.Module, names: frozenset[str], nvcc_min: str | None, min_line: int, text: str
) -> tuple[str | None, str | None]:
    """(specifier set, None), ("", None) when it never downloads, (None, why) when not read."""
    paths: list[tuple[list[tuple[ast.expr, bool]], bool, int]] = []

    def walk(stmts: list[ast.stmt], path: list[tuple[ast.expr, bool]], in_def: bool) -> None:
        for s in stmts:
            if isinstance(s, ast.If):
                walk(s.body, [*path, (s.test, True)], in_def)
                walk(s.orelse, [*path, (s.test, False)], in_def)
            elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(s.body, [], True)
            elif isinstance(s, (ast.For, ast.While, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith)):
                for part in ("body", "orelse", "finalbody"):
                    walk(getattr(s, part, []) or [], path, in_def)
                for h in getattr(s, "handlers", []):
                    walk(h.body, path, in_def)
            elif any(isinstance(n, ast.Call) and call_name(n) == DOWNLOAD_CALL for n in ast.walk(s)):
                paths.append((path, in_def, s.lineno))

    walk(tree.body, [], False)
    if not paths:
        if "developer.download.nvidia.com" in text:
            return None, "it downloads from NVIDIA without a download_and_copy(...) call flashdoctor knows"
        return "", None
    if any(in_def for _, in_def, _ in paths):
        return None, f"it calls {DOWNLOAD_CALL}(...) from a function: when that runs is not read"
    specs = set()
    for path, _, line in paths:
        terms: list[str] = []
        for test, holds in path:
            t = _terms(test, holds, names)
            if t is None:
                return (
                    None,
                    f"the condition around its {DOWNLOAD_CALL}(...) at line {line} is not one flashdoctor reads",
                )
            terms += t
        if nvcc_min and min_line < line:
            terms.insert(0, f">={nvcc_min}")  # it raised below nvcc_min before getting here
        spec = ",".join(dict.fromkeys(terms))
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            return None, f"the condition at line {line} is not a version range ({spec})"
        specs.add(spec)
    if len(specs) > 1:
        return None, f"it downloads under {len(specs)} different conditions: {'; '.join(sorted(specs))}"
    spec = specs.pop()
    return (spec or ">=0"), None  # no condition on nvcc: it downloads whatever the release


def _nvcc_min(tree: ast.Module, names: frozenset[str]) -> tuple[str | None, int]:
    """``if nvcc < Version("12.3"): raise ...`` -> ("12.3", line)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        terms = _compare_terms(node.test, names) or []
        below = len(terms) == 1 and terms[0].startswith("<") and not terms[0].startswith("<=")
        if below and any(isinstance(s, ast.Raise) for s in node.body):
            return terms[0][1:], node.lineno
    return None, 0


def _cccl_from(tree: ast.Module, names: frozenset[str]) -> str | None:
    """``if nvcc >= Version("13.0"): ... "cccl" ...`` -> "13.0"."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        terms = _compare_terms(node.test, names)
        if terms and len(terms) == 1 and terms[0].startswith(">="):
            body = ast.Module(body=node.body, type_ignores=[])
            if any(isinstance(n, ast.Constant) and n.value == "cccl" for n in ast.walk(body)):
                return terms[0][2:]
    return None


def _toolchain(tree: ast.Module) -> tuple[str, ...]:
    """``NVIDIA_TOOLCHAIN_VERSION = {"nvcc": "12.6.85", "ptxas": "12.8.93"}`` -> ("nvcc 12.6.85", ...)."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and "TOOLCHAIN" in t.id for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            out = []
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                    out.append(f"{k.value!s} {v.value!s}")
            return tuple(out)
    return ()


def _source_problem(tree: ast.Module) -> str | None:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and call_name(n) == EXTENSION_CALL]
    if not calls:
        return f"it has no {EXTENSION_CALL}(...) call"
    if any(not any(k.arg == "sources" for k in c.keywords) for c in calls):
        return f"its {EXTENSION_CALL}(...) has no sources= keyword"
    return None
