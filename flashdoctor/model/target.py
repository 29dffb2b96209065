"""The target spec: a JSON file that describes a machine you are not on (README "Target spec"), read
into an Environment. Untrusted input, validated by its JSON Schema (schemas/target.schema.json, the one
statement of the rules); the first error becomes a message that names the key at fault.

What a user need not spell out is derived: ``python_abi`` from ``python``, ``torch_cuda`` (and for a
ROCm build ``torch_hip``) from torch's local label, ``driver_cuda`` from the driver table, and ``cxx11abi`` from the torch version where
PyTorch's own builds tell (a note says so)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from flashdoctor.knowledge.data import parse_json, written
from flashdoctor.knowledge.drivers import driver_max_cuda
from flashdoctor.knowledge.schemas import error_expect, error_key, first_error, load_schema
from flashdoctor.knowledge.torch_builds import cxx11abi_from_version, pypi_default_cuda
from flashdoctor.knowledge.variants import DIST_VARIANT
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import GPU, TARGET_KEYS, Dependent, Environment, FlashInstall, Nvcc

SCHEMA = "target.schema.json"
MAX_BYTES = 1 << 20  # a target spec is a few KB; more is not a target spec
# Keys whose numbers are read as strings ("python": 3.12 is a common slip; keep it readable).
_NUMBER_AS_TEXT = (
    "python",
    "glibc",
    "torch",
    "torch_cuda",
    "torch_hip",
    "driver",
    "driver_cuda",
    "nvcc",
    "gcc",
)
ABI_NOTE = "cxx11abi inferred"  # the start of the note a spec without 'cxx11abi' gets (abi_inferred)
CUDA_NOTE = "torch_cuda inferred"  # the same for 'torch_cuda' (a plain torch version: PyPI's build)


class TargetSpecError(ValueError):
    """A target spec that cannot be read. The message names the key at fault."""


def _normalised(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with numbers read as version strings where a version is expected (the schema's convenience)."""
    out = dict(spec)
    for key in _NUMBER_AS_TEXT:
        val = out.get(key)
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            out[key] = written(val)  # as written: 3.10 is "3.10", not the float's "3.1"
    gpus = out.get("gpus")
    if isinstance(gpus, list):
        fixed = []
        for g in gpus:
            cap = g.get("capability") if isinstance(g, dict) else None
            if isinstance(cap, (int, float)) and not isinstance(cap, bool):
                # 9 is "9.0"; a float as written (9.05 stays "9.05", which the schema refuses, not 9.0)
                g = {**g, "capability": f"{cap}.0" if isinstance(cap, int) else written(cap)}
            fixed.append(g)
        out["gpus"] = fixed
    return out


def _message(error: Any, doc: Mapping[str, Any]) -> str:
    path = list(error.absolute_path)
    key = error_key(error)
    if error.validator == "additionalProperties" and not path:
        names = set(load_schema(SCHEMA)["properties"])
        unexpected = sorted(k for k in doc if k not in names)[:10]
        return f"target spec: unknown key(s) {', '.join(map(repr, unexpected))}; known keys: {', '.join(TARGET_KEYS)}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)[:10]
        return f"target spec: {key!r} has unknown key(s) {', '.join(map(repr, extra))}; known: {', '.join(allowed)}"
    if "propertyNames" in error.schema_path:
        dists = sorted({str(canonicalize_name(n)) for n in error.schema["enum"]})
        return f"target spec: {key!r} has unknown distribution {error.instance!r} (known: {', '.join(dists)})"
    expect = error_expect(error)
    if not key:
        return f"target spec: the document must be {expect or 'a JSON object'}"
    if expect is not None:
        return f"target spec: {key!r} must be {expect}"
    return f"target spec: {key!r}: {error.message[:200]}"


def validate_target(spec: Any) -> dict[str, Any]:
    """The spec, normalised and validated. Raises TargetSpecError naming the first key at fault."""
    if not isinstance(spec, Mapping):
        raise TargetSpecError("target spec: the document must be a JSON object")
    doc = _normalised(spec)
    try:
        error = first_error(SCHEMA, doc)
    except RecursionError:
        raise TargetSpecError("target spec: nested too deeply to be a target spec") from None
    if error is not None:
        raise TargetSpecError(_message(error, doc))
    _same_python(doc.get("python"), doc.get("python_abi"))
    return doc


def _same_python(python: str | None, abi: str | None) -> None:
    """A CPython ABI tag (cp312, cp313t) is of one Python: of another than 'python' it would make every
    wheel a misfit without a word. The schema states each key's form and cannot relate two values."""
    tag = re.fullmatch(r"cp(\d+)[a-z]*", abi or "")
    if python is None or tag is None or tag[1] == python.replace(".", ""):
        return
    raise TargetSpecError(
        f"target spec: 'python_abi' {abi!r} is not an ABI of Python {python}: give the ABI of that Python "
        "(cp312, or cp313t for a free-threaded 3.13) or leave 'python_abi' out to derive it"
    )


def _gpu(i: int, raw: Mapping[str, Any]) -> GPU:
    mem = raw.get("memory_gb")
    return GPU(
        index=raw.get("index", i),
        name=raw.get("name"),
        capability=raw.get("capability"),
        memory_gb=None if mem is None else float(mem),
        uuid=raw.get("uuid"),
    )


def _installed(raw: Mapping[str, Any]) -> tuple[FlashInstall, ...]:
    out = []
    for dist, val in raw.items():
        canon = str(canonicalize_name(dist))
        if val is None:
            continue  # explicitly not installed
        if isinstance(val, str):
            out.append(FlashInstall(dist=canon, version=val))
            continue
        archs = val.get("archs")
        out.append(
            FlashInstall(
                dist=canon,
                version=val.get("version"),
                import_ok=val.get("import_ok"),
                import_error=val.get("import_error"),
                import_crashed=bool(val.get("import_crashed", False)),
                module_path=val.get("module_path"),
                extension_path=val.get("extension_path"),
                archs=None if archs is None else tuple(archs),
            )
        )
    return tuple(out)


def _dependents(raw: list[Mapping[str, Any]]) -> tuple[Dependent, ...]:
    """'dependents': each 'requires' must be a PEP 508 requirement on a FlashAttention distribution."""
    out = []
    for i, d in enumerate(raw):
        where = f"target spec: 'dependents[{i}].requires'"
        try:
            req = Requirement(d["requires"])
        except InvalidRequirement as exc:
            raise TargetSpecError(
                f"{where} is not a PEP 508 requirement: {str(exc).splitlines()[0][:200]}"
            ) from None
        if canonicalize_name(req.name) not in DIST_VARIANT:
            known = ", ".join(sorted(DIST_VARIANT))
            raise TargetSpecError(f"{where} names {req.name!r}, not a FlashAttention distribution ({known})")
        out.append(
            Dependent(
                str(canonicalize_name(d["dist"])),
                d.get("version"),
                d["requires"],
                d.get("checked", "metadata"),
            )
        )
    return tuple(out)


def _arch(platform: str | None) -> str | None:
    if platform is None:
        return None
    for arch in ("x86_64", "aarch64", "amd64", "arm64"):
        if platform.endswith(arch):
            return arch
    return None


def environment_from_target(spec: Mapping[str, Any]) -> Environment:
    """Build an Environment from a target spec. Missing keys become unknown.

    Raises TargetSpecError with a message naming the offending key.
    """
    doc = validate_target(spec)
    values: dict[str, Any] = {}
    unknown = {k for k in TARGET_KEYS if k not in doc}
    notes: list[str] = []
    for key in TARGET_KEYS:
        if key not in doc:
            continue
        val = doc[key]
        if key == "gpus":
            val = tuple(_gpu(i, g) for i, g in enumerate(val or ()))
        elif key == "nvccs":
            val = tuple(Nvcc(path=n["path"], version=n.get("version")) for n in val or ())
        elif key == "installed":
            val = _installed(val or {})
        elif key == "dependents":
            val = _dependents(val or [])
        elif key == "torch_arch_list":
            val = None if val is None else tuple(val)
        elif key in ("memory_gb", "disk_free_gb"):
            val = None if val is None else float(val)
        values[key] = val
    # Derived facts a user need not spell out.
    if values.get("python") and "python_abi" not in doc:
        values["python_abi"] = "cp" + values["python"].replace(".", "")
        unknown.discard("python_abi")
    rocm = re.search(r"\+rocm(\d+(?:\.\d+)*)$", values.get("torch") or "")
    if rocm and "torch_hip" not in doc:
        # A ROCm build ("2.5.1+rocm6.2"): torch.version.hip is set, torch.version.cuda is None.
        values["torch_hip"] = rocm.group(1)
        unknown.discard("torch_hip")
    if values.get("torch") and "torch_cuda" not in doc:
        local = parse_version(values["torch"])
        if local is not None and local.local:
            m = re.fullmatch(r"cu(\d+)(\d)", local.local)
            if m:
                values["torch_cuda"] = f"{m.group(1)}.{m.group(2)}"
                unknown.discard("torch_cuda")
            elif local.local in ("cpu", "xpu") or rocm:  # an XPU build has no CUDA either
                values["torch_cuda"] = None
                unknown.discard("torch_cuda")
        elif local is not None and (cuda := pypi_default_cuda(values["torch"], values.get("platform"))):
            values["torch_cuda"] = cuda
            unknown.discard("torch_cuda")
            notes.append(
                f"{CUDA_NOTE} from the torch version: torch {values['torch']} with no +cu label is PyPI's "
                f'build, which for {values.get("platform")} is the CUDA {cuda} build (set "torch_cuda" '
                "to override)"
            )
    if (
        values.get("torch")
        and "cxx11abi" not in doc
        and not (values.get("platform") or "").startswith(("win", "macosx"))
    ):
        guess = cxx11abi_from_version(
            values["torch"], values.get("torch_cuda"), _arch(values.get("platform"))
        )
        if guess.abi is not None:
            values["cxx11abi"] = guess.abi
            unknown.discard("cxx11abi")
            notes.append(f'{ABI_NOTE} from the torch version: {guess.why} (set "cxx11abi" to override)')
        else:
            notes.append(f"cxx11abi unknown: not in the target spec, and {guess.why}")
    if "torch" in doc and doc["torch"] is None:
        # No torch: nothing about torch is unknown any more.
        for k in ("torch_cuda", "torch_hip", "cxx11abi", "torch_arch_list"):
            unknown.discard(k)
    if "driver" in doc and doc["driver"] is None and "gpus" not in doc:
        values["gpus"] = ()
        unknown.discard("gpus")
    if values.get("driver") and "driver_cuda" not in doc:
        dc = driver_max_cuda(values["driver"])
        if dc is not None:
            values["driver_cuda"] = dc
            unknown.discard("driver_cuda")
    # Keys that only describe the probing machine stay quietly unknown.
    return Environment(**values, unknown=frozenset(unknown), notes=tuple(notes))


def cuda_inferred(env: Environment) -> bool:
    """Whether ``env.torch_cuda`` was inferred from a plain torch version (a target spec without it)."""
    return any(n.startswith(CUDA_NOTE) for n in env.notes)


def abi_inferred(env: Environment) -> bool:
    """Whether ``env.cxx11abi`` was inferred from the torch version (a target spec without it)."""
    return any(n.startswith(ABI_NOTE) for n in env.notes)


def target_from_bytes(data: bytes, where: str) -> Environment:
    """A target spec file's bytes as an Environment, read as every JSON file a user hands flashdoctor is
    (knowledge.data.parse_json: a UTF-8 BOM allowed, no key twice, bounded depth). ``where`` names it in
    the messages. Raises TargetSpecError. The file itself is read in one place, actions.inputs.load_target
    (bounded, never waiting on a FIFO), for ``--target`` and a cluster rank's target alike."""
    return environment_from_target(parse_json(data, where, TargetSpecError))
