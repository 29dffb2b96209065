"""Read what a setup.py computes, without running it: a small evaluator over its syntax tree.

It knows a handful of pure things (string and list arithmetic, f-strings, comprehensions over
``itertools.product``, ``os.getenv`` / ``os.environ.get`` answered from a given mapping, ``packaging``
versions, ``torch.__version__`` and the nvcc release given as facts) and nothing else: anything it does not
know is UNKNOWN, and so is whatever depends on it. An ``if`` whose test is UNKNOWN runs both branches and
keeps only what they agree on; a ``raise`` it reaches stops the reading. Nothing of the file is executed,
imported or written: the result is a value, or the honest answer that the file cannot be read.

Used for hopper/setup.py (flashdoctor.decide.source_build.hopper): the sources its CUDAExtension compiles.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

MAX_STEPS = 200_000  # expression nodes evaluated; a setup.py needs a few thousand
MAX_ITEMS = 100_000  # elements of one list (hopper/setup.py's full source list has ~300)


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class Stop(Exception):
    """The file raises here (for the facts given): nothing after this point happens."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}")
        self.line = line


class Unreadable(Exception):
    """The file does more than this evaluator can follow (too much work, a construct it does not know)."""


@dataclass(frozen=True)
class _Module:
    name: str


@dataclass(frozen=True)
class _Func:
    name: str


SOURCES_KEY = "<sources>"  # the state key where CUDAExtension(sources=...) values are recorded
_KNOWN_MODULES = {
    "os",
    "os.path",
    "os.environ",
    "itertools",
    "packaging",
    "packaging.version",
    "torch",
    "sys",
}
_BUILTINS = {"len", "list", "tuple", "str", "int", "bool", "sorted"}


def _version(text: Any) -> Any:
    if not isinstance(text, str):
        return UNKNOWN
    try:
        return Version(text)
    except InvalidVersion:
        return UNKNOWN


def same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - values here are plain
        return False


def assigned_names(node: ast.AST) -> set[str]:
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))
    }


def _contains_call(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and call_name(n) == name for n in ast.walk(node))


def call_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


class Evaluator:
    """Evaluates a module's statements with ``environ`` (what os.getenv answers), ``torch`` (its
    ``__version__``) and ``nvcc`` (the release a call to ``nvcc_call`` reports) as the only facts."""

    def __init__(
        self,
        environ: Mapping[str, str],
        torch: str | None,
        nvcc: str | None,
        nvcc_call: str = "get_cuda_bare_metal_version",
        extension_call: str = "CUDAExtension",
    ) -> None:
        self.environ = dict(environ)
        self.torch = torch
        self.nvcc = nvcc
        self.nvcc_call = nvcc_call
        self.extension_call = extension_call
        self.steps = 0

    # -- statements ---------------------------------------------------------------------------------
    def run(self, stmts: Iterable[ast.stmt], state: dict[str, Any]) -> None:
        for s in stmts:
            self._stmt(s, state)

    def _branch(self, stmts: list[ast.stmt], state: dict[str, Any]) -> dict[str, Any] | None:
        copy = dict(state)
        try:
            self.run(stmts, copy)
        except Stop:
            return None
        return copy

    def _poison(self, node: ast.AST, state: dict[str, Any]) -> None:
        for name in assigned_names(node):
            state[name] = UNKNOWN
        if _contains_call(node, self.extension_call):
            state[SOURCES_KEY] = UNKNOWN

    def _stmt(self, s: ast.stmt, state: dict[str, Any]) -> None:
        if isinstance(s, ast.If):
            test = self.expr(s.test, state)
            if test is not UNKNOWN:
                self.run(s.body if test else s.orelse, state)
                return
            a, b = self._branch(s.body, state), self._branch(s.orelse, state)
            if a is None and b is None:
                raise Stop(s.lineno)
            merged = b if a is None else a if b is None else _merge(a, b)
            assert merged is not None
            state.clear()
            state.update(merged)
        elif isinstance(s, ast.Raise):
            raise Stop(s.lineno)
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            self._import(s, state)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            state[s.name] = UNKNOWN  # the file's own code: never called here
        elif isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)):
            self._record_extensions(s, state)
            if isinstance(s, ast.Assign):
                value = self._assigned_value(s.value, state)
                for t in s.targets:
                    self._bind(t, value, state)
            elif isinstance(s, ast.AnnAssign):
                if s.value is not None:
                    self._bind(s.target, self.expr(s.value, state), state)
            elif isinstance(s, ast.AugAssign):
                if isinstance(s.target, ast.Name):
                    left = state.get(s.target.id, UNKNOWN)
                    right = self.expr(s.value, state)
                    state[s.target.id] = self._binop(left, right) if isinstance(s.op, ast.Add) else UNKNOWN
            else:
                self._expr_stmt(s.value, state)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    self._poison(item.optional_vars, state)
            self.run(s.body, state)
        elif isinstance(
            s, (ast.Pass, ast.Assert, ast.Global, ast.Nonlocal, ast.Return, ast.Break, ast.Continue)
        ):
            return
        else:  # loops, try, del, match: whatever they assign is unknown afterwards
            self._poison(s, state)

    def _record_extensions(self, s: ast.stmt, state: dict[str, Any]) -> None:
        """Each CUDAExtension(sources=...) call records its ``sources`` as evaluated at that point."""
        for node in ast.walk(s):
            if isinstance(node, ast.Call) and call_name(node) == self.extension_call:
                kw = next((k for k in node.keywords if k.arg == "sources"), None)
                value = self.expr(kw.value, state) if kw is not None else UNKNOWN
                seen = state.get(SOURCES_KEY, ())
                state[SOURCES_KEY] = UNKNOWN if seen is UNKNOWN else (*seen, value)

    def _assigned_value(self, node: ast.expr, state: dict[str, Any]) -> Any:
        if isinstance(node, ast.Call) and call_name(node) == self.nvcc_call:
            # `_, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)`: the nvcc release, a fact.
            return (UNKNOWN, _version(self.nvcc) if self.nvcc else UNKNOWN)
        return self.expr(node, state)

    def _bind(self, target: ast.expr, value: Any, state: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            state[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value if isinstance(value, (tuple, list)) and len(value) == len(target.elts) else None
            for i, t in enumerate(target.elts):
                self._bind(t, UNKNOWN if items is None else items[i], state)
        # attributes and subscripts (os.environ[...] = ..., a monkey patch) bind no name

    def _expr_stmt(self, node: ast.expr, state: dict[str, Any]) -> None:
        """A call for its effect. ``x.append(v)`` / ``x.extend(v)`` on a known list are followed; any other
        method call on a name may change it, so the name becomes unknown; plain calls change no name."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return
        base = node.func.value
        if not isinstance(base, ast.Name) or base.id not in state:
            return
        current = state[base.id]
        method = node.func.attr
        if isinstance(current, list) and method in ("append", "extend") and len(node.args) == 1:
            arg = self.expr(node.args[0], state)
            if method == "append":
                state[base.id] = [*current, arg]
            elif isinstance(arg, (list, tuple)):
                state[base.id] = [*current, *arg]
            else:
                state[base.id] = UNKNOWN
        elif isinstance(current, (list, dict, set)) or current is UNKNOWN:
            state[base.id] = UNKNOWN

    def _import(self, s: ast.Import | ast.ImportFrom, state: dict[str, Any]) -> None:
        if isinstance(s, ast.Import):
            for a in s.names:
                if a.asname:
                    state[a.asname] = _Module(a.name) if a.name in _KNOWN_MODULES else UNKNOWN
                else:
                    top = a.name.split(".")[0]
                    state[top] = _Module(top) if top in _KNOWN_MODULES else UNKNOWN
            return
        mod = _Module(s.module or "") if s.level == 0 else None
        for a in s.names:
            state[a.asname or a.name] = UNKNOWN if mod is None else self._attr(mod, a.name)

    # -- expressions --------------------------------------------------------------------------------
    def expr(self, node: ast.expr, state: Mapping[str, Any]) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Unreadable(f"more than {MAX_STEPS} steps")
        method: Callable[[Any, Mapping[str, Any]], Any] | None = getattr(
            self, f"_e_{type(node).__name__}", None
        )
        return UNKNOWN if method is None else method(node, state)

    def _e_Constant(self, node: ast.Constant, state: Mapping[str, Any]) -> Any:
        return node.value

    def _e_Name(self, node: ast.Name, state: Mapping[str, Any]) -> Any:
        if node.id in state:
            return state[node.id]
        return _Func(f"builtins.{node.id}") if node.id in _BUILTINS else UNKNOWN

    def _e_List(self, node: ast.List | ast.Tuple, state: Mapping[str, Any]) -> Any:
        items: list[Any] = []
        for e in node.elts:
            if isinstance(e, ast.Starred):
                v = self.expr(e.value, state)
                if not isinstance(v, (list, tuple)):
                    return UNKNOWN
                items.extend(v)
            else:
                items.append(self.expr(e, state))
        return _bounded(items) if isinstance(node, ast.List) else tuple(_bounded(items))

    _e_Tuple = _e_List

    def _e_Dict(self, node: ast.Dict, state: Mapping[str, Any]) -> Any:
        out = {}
        for k, v in zip(node.keys, node.values):
            key = None if k is None else self.expr(k, state)
            if key is None or key is UNKNOWN:
                return UNKNOWN
            out[key] = self.expr(v, state)
        return out

    def _e_JoinedStr(self, node: ast.JoinedStr, state: Mapping[str, Any]) -> Any:
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
            elif isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None:
                val = self.expr(v.value, state)
                if val is UNKNOWN or not isinstance(val, (str, int)) or isinstance(val, bool):
                    return UNKNOWN
                parts.append(str(val))
            else:
                return UNKNOWN
        return "".join(parts)

    def _e_BinOp(self, node: ast.BinOp, state: Mapping[str, Any]) -> Any:
        if not isinstance(node.op, ast.Add):
            return UNKNOWN
        return self._binop(self.expr(node.left, state), self.expr(node.right, state))

    @staticmethod
    def _binop(left: Any, right: Any) -> Any:
        if isinstance(left, list) and isinstance(right, list):
            return _bounded([*left, *right])
        if isinstance(left, tuple) and isinstance(right, tuple):
            return tuple(_bounded([*left, *right]))
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if type(left) is int and type(right) is int:
            return left + right
        return UNKNOWN

    def _e_UnaryOp(self, node: ast.UnaryOp, state: Mapping[str, Any]) -> Any:
        v = self.expr(node.operand, state)
        if v is UNKNOWN:
            return UNKNOWN
        if isinstance(node.op, ast.Not):
            return not v
        if isinstance(node.op, ast.USub) and type(v) is int:
            return -v
        return UNKNOWN

    def _e_BoolOp(self, node: ast.BoolOp, state: Mapping[str, Any]) -> Any:
        is_and = isinstance(node.op, ast.And)
        unknown = False
        result: Any = None
        for e in node.values:
            result = self.expr(e, state)
            if result is UNKNOWN:
                unknown = True
            elif is_and and not result:
                return result  # False decides an `and` whatever the unknowns were
            elif not is_and and result:
                return result
        return UNKNOWN if unknown else result

    def _e_Compare(self, node: ast.Compare, state: Mapping[str, Any]) -> Any:
        left = self.expr(node.left, state)
        for op, comp in zip(node.ops, node.comparators):
            right = self.expr(comp, state)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            ok = _compare(op, left, right)
            if ok is UNKNOWN:
                return UNKNOWN
            if not ok:
                return False
            left = right
        return True

    def _e_IfExp(self, node: ast.IfExp, state: Mapping[str, Any]) -> Any:
        test = self.expr(node.test, state)
        if test is UNKNOWN:
            a, b = self.expr(node.body, state), self.expr(node.orelse, state)
            return a if same(a, b) else UNKNOWN
        return self.expr(node.body if test else node.orelse, state)

    def _e_Attribute(self, node: ast.Attribute, state: Mapping[str, Any]) -> Any:
        base = self.expr(node.value, state)
        if isinstance(base, _Module):
            return self._attr(base, node.attr)
        if isinstance(base, str) and node.attr in ("upper", "lower", "strip", "startswith", "endswith"):
            return _Func(f"str.{node.attr}:{base}")
        if isinstance(base, dict) and node.attr == "get":
            return ("dict.get", base)
        return UNKNOWN

    def _attr(self, mod: _Module, name: str) -> Any:
        full = f"{mod.name}.{name}"
        if full == "torch.__version__":
            return self.torch if self.torch else UNKNOWN
        if full in _KNOWN_MODULES:
            return _Module(full)
        if full in (
            "os.getenv", "os.environ.get", "itertools.product",
            "packaging.version.parse", "packaging.version.Version",
        ):  # fmt: skip
            return _Func(full)
        return UNKNOWN

    def _e_Subscript(self, node: ast.Subscript, state: Mapping[str, Any]) -> Any:
        base = self.expr(node.value, state)
        key = self.expr(node.slice, state)
        if key is UNKNOWN:
            return UNKNOWN
        if isinstance(base, _Module) and base.name == "os.environ":
            return self.environ.get(key, UNKNOWN) if isinstance(key, str) else UNKNOWN
        if isinstance(base, dict):
            return base.get(key, UNKNOWN)
        if isinstance(base, (list, tuple, str)) and type(key) is int and -len(base) <= key < len(base):
            return base[key]
        return UNKNOWN

    def _e_ListComp(self, node: ast.ListComp, state: Mapping[str, Any]) -> Any:
        out: list[Any] = []
        if not self._comp(node.generators, 0, dict(state), node.elt, out):
            return UNKNOWN
        return out

    def _comp(
        self, gens: list[ast.comprehension], i: int, scope: dict[str, Any], elt: ast.expr, out: list[Any]
    ) -> bool:
        if i == len(gens):
            out.append(self.expr(elt, scope))
            if len(out) > MAX_ITEMS:
                raise Unreadable(f"a list of more than {MAX_ITEMS} items")
            return True
        g = gens[i]
        items = self.expr(g.iter, scope)
        if not isinstance(items, (list, tuple)) or g.is_async:
            return False
        for item in items:
            inner = dict(scope)
            self._bind(g.target, item, inner)
            tests = [self.expr(t, inner) for t in g.ifs]
            if any(t is UNKNOWN for t in tests):
                return False
            if all(tests) and not self._comp(gens, i + 1, inner, elt, out):
                return False
        return True

    def _e_Call(self, node: ast.Call, state: Mapping[str, Any]) -> Any:
        func = self.expr(node.func, state)
        if any(isinstance(a, ast.Starred) for a in node.args):
            return UNKNOWN
        args = [self.expr(a, state) for a in node.args]
        kwargs = {k.arg: self.expr(k.value, state) for k in node.keywords if k.arg is not None}
        if len(kwargs) != len(node.keywords):
            return UNKNOWN
        if isinstance(func, tuple) and func[0] == "dict.get" and args and not kwargs:
            key = args[0]
            return func[1].get(key, args[1] if len(args) > 1 else None) if key is not UNKNOWN else UNKNOWN
        if not isinstance(func, _Func):
            return UNKNOWN
        return self._call(func.name, args, kwargs)

    def _call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name in ("os.getenv", "os.environ.get"):
            key = args[0] if args else kwargs.get("key")
            default = args[1] if len(args) > 1 else kwargs.get("default")
            if not isinstance(key, str):
                return UNKNOWN
            return self.environ.get(key, default)
        if any(a is UNKNOWN for a in [*args, *kwargs.values()]):
            return UNKNOWN
        if name == "itertools.product" and not kwargs:
            if not all(isinstance(a, (list, tuple)) for a in args):
                return UNKNOWN
            size = 1
            for a in args:
                size *= len(a)
            if size > MAX_ITEMS:
                raise Unreadable(f"a product of more than {MAX_ITEMS} items")
            return list(itertools.product(*args))
        if name in ("packaging.version.parse", "packaging.version.Version") and len(args) == 1:
            return _version(args[0])
        if name.startswith("str."):
            method, _, base = name[4:].partition(":")
            if method in ("upper", "lower", "strip") and not args and not kwargs:
                return getattr(base, method)()
            if method in ("startswith", "endswith") and len(args) == 1 and isinstance(args[0], (str, tuple)):
                return getattr(base, method)(args[0])
            return UNKNOWN
        return _builtin(name, args, kwargs)


def _builtin(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 1:
        return UNKNOWN
    (a,) = args
    if name == "builtins.len" and isinstance(a, (list, tuple, str, dict)):
        return len(a)
    if name in ("builtins.list", "builtins.tuple", "builtins.sorted") and isinstance(a, (list, tuple)):
        if name == "builtins.sorted":
            try:
                return sorted(a)
            except TypeError:
                return UNKNOWN
        return list(a) if name == "builtins.list" else tuple(a)
    if name == "builtins.str" and isinstance(a, (str, int)):
        return str(a)
    if name == "builtins.int" and isinstance(a, (str, int)) and not isinstance(a, bool):
        try:
            return int(a)
        except ValueError:
            return UNKNOWN
    if name == "builtins.bool" and isinstance(a, (str, int, list, tuple)):
        return bool(a)
    return UNKNOWN


def _compare(op: ast.cmpop, a: Any, b: Any) -> Any:
    try:
        if isinstance(op, ast.Eq):
            return a == b
        if isinstance(op, ast.NotEq):
            return a != b
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(b, (list, tuple, str, dict)):
                return UNKNOWN
            return (a in b) == isinstance(op, ast.In)
        if isinstance(op, (ast.Is, ast.IsNot)):
            return (a is b) == isinstance(op, ast.Is) if a is None or b is None else UNKNOWN
        if type(a) is not type(b):
            return UNKNOWN
        if isinstance(op, ast.Lt):
            return a < b
        if isinstance(op, ast.LtE):
            return a <= b
        if isinstance(op, ast.Gt):
            return a > b
        if isinstance(op, ast.GtE):
            return a >= b
    except TypeError:
        return UNKNOWN
    return UNKNOWN


def _bounded(items: list[Any]) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise Unreadable(f"a list of more than {MAX_ITEMS} items")
    return items


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The state after an `if` whose test is unknown: what both branches agree on."""
    out = {}
    for key in a.keys() | b.keys():
        va, vb = a.get(key, UNKNOWN), b.get(key, UNKNOWN)
        out[key] = va if same(va, vb) else UNKNOWN
    return out
