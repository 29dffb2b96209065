"""The probe layer: the only code that looks at the real machine. It returns an Environment.

Probes run concurrently. The target interpreter is asked about itself by a small script run as a
subprocess (it never imports torch: torch's version, CUDA and ABI are read from its files). Only an
installed FlashAttention is imported, each variant in its own subprocess, so that a segfault in an
extension becomes a finding instead of a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from flashdoctor.knowledge import run_time_limits
from flashdoctor.knowledge.backends import variant_import, variant_imports
from flashdoctor.knowledge.variants import DIST_VARIANT
from flashdoctor.model.environment import Dependent, Environment, FlashInstall
from flashdoctor.probe.binary import cuda_archs, cxx11_abi
from flashdoctor.probe.interpreter import (
    Launched,
    TargetScriptError,
    run_script,
    run_target,
    script_file,
    stopped_on_interrupt,
)
from flashdoctor.probe.system import (
    Probed,
    probe_gcc,
    probe_ninja,
    probe_nvidia,
    probe_resources,
    probe_toolkit,
)

IMPORT_TIMEOUT = 180.0
INTERP_TIMEOUT = 60.0

# What a user's code does to use a variant (the import test): import the first of its modules that
# exists (knowledge.backends: the registry's list) and take its flash_attn_func.
IMPORT_CODE = r"""
import importlib, sys
function, modules = sys.argv[1], sys.argv[2:]
for i, name in enumerate(modules):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        gone = exc.name is not None and (name == exc.name or name.startswith(exc.name + "."))
        if gone and i + 1 < len(modules):
            continue
        raise
    getattr(module, function)
    break
"""

#: The one error of a script run in the target interpreter (``check`` turns it into a usage error).
InterpreterError = TargetScriptError


@dataclass(frozen=True)
class ImportResult:
    ok: bool
    error: str | None
    crashed: bool


def interp_config() -> str:
    """The environment probe's argument (JSON): the variant table it looks for and the libraries whose
    installed release it reports (knowledge.run_time_limits.watched)."""
    return json.dumps({"variants": variant_imports(), "watch": run_time_limits.watched()})


def launch_interp(python: str, environ: Mapping[str, str]) -> Launched:
    """Start the environment probe (_interp.py) in the target interpreter now; ``interp_probe`` takes
    its answer. Started first, it runs while flashdoctor imports the rest of itself."""
    stack = contextlib.ExitStack()
    path = stack.enter_context(script_file("flashdoctor.probe", "_interp.py"))
    return Launched(
        python, [str(path), interp_config()], environ, INTERP_TIMEOUT, "the environment probe", stack
    )


def interp_probe(python: str, environ: Mapping[str, str], launched: Launched | None = None) -> dict[str, Any]:
    """What the target interpreter says about itself (_interp.py), from ``launched`` when it was
    started before (launch_interp). Raises TargetScriptError, also for a Python 2 (unsupported)."""
    data = (launched or launch_interp(python, environ)).finish().result()
    version = str(data.get("python") or "")
    if version.partition(".")[0] in ("1", "2"):
        raise TargetScriptError(
            python,
            "the environment probe",
            "unsupported",
            f"Python {version} at {python}: flashdoctor probes Python 3 interpreters only",
        )
    return data


def import_test(python: str, dist: str, environ: Mapping[str, str]) -> ImportResult:
    """Import an installed variant in a fresh interpreter. A signal (segfault, abort) is a crash."""
    spec = variant_import(DIST_VARIANT[canonicalize_name(dist)])
    run = run_target(
        python, ["-c", IMPORT_CODE, spec.function, *spec.modules], environ, IMPORT_TIMEOUT, "the import test"
    )
    failure = run.failure()
    if failure is None:
        return ImportResult(True, None, False)
    err = run.stderr.strip()
    if failure.kind != "exit":
        err = (err + f"\n[{failure.short}]").strip()
    return ImportResult(False, err[-4000:], failure.kind == "signal")


def _from_interp(data: dict[str, Any]) -> Probed:
    r = Probed(notes=list(data.get("notes", [])))
    for k in ("python", "python_abi", "platform", "glibc", "env_manager", "python_executable", "prefix"):
        r.values[k] = data.get(k)
    t = data.get("torch") or {}
    if not t.get("installed"):
        r.values.update(torch=None, torch_cuda=None, torch_hip=None, cxx11abi=None, torch_arch_list=None)
        return r
    r.values["torch"] = t.get("version")
    if not t.get("version"):
        r.unknown.add("torch")
    r.values["torch_cuda"] = t.get("cuda")
    r.values["torch_hip"] = t.get("hip")
    return r


def probe_environment(
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
    import_tests: bool = True,
    deep: bool = False,
    torch_archs: bool = True,
    launched: Launched | None = None,
) -> Environment:
    """Probe this machine and the target interpreter (default: the running one).

    ``torch_archs``: read torch's CUDA arch list from libtorch_cuda.so's fat binary (a walk of a ~1 GB
    file: hundreds of milliseconds cold). No decision needs it; without it ``torch_arch_list`` is
    unknown (not read), and a renderer says so. --deep reads it by importing torch anyway.
    ``launched``: the environment probe, started earlier for this ``python`` (launch_interp)."""
    environ = dict(os.environ if environ is None else environ)
    python = python or sys.executable
    # stopped_on_interrupt leaves first: a Ctrl-C or SIGTERM stops the target scripts the workers wait on,
    # then the pool is joined (at once, not when each script times out)
    with ThreadPoolExecutor(max_workers=8) as pool, stopped_on_interrupt():
        f_interp = pool.submit(interp_probe, python, environ, launched)
        f_nvidia = pool.submit(probe_nvidia, environ)
        f_tool = pool.submit(probe_toolkit, environ)
        f_gcc = pool.submit(probe_gcc, environ)
        f_ninja = pool.submit(probe_ninja, environ, python)
        f_res = pool.submit(probe_resources, environ)
        data = f_interp.result()  # InterpreterError propagates: a usage error
        parts = [_from_interp(data)]
        t = data.get("torch") or {}
        # Torch facts read from its binaries, concurrently with the import tests below.
        f_abi = pool.submit(cxx11_abi, t["libc10"]) if t.get("libc10") else None
        f_tarch = (
            pool.submit(cuda_archs, t["libtorch_cuda"]) if torch_archs and t.get("libtorch_cuda") else None
        )
        flash = data.get("flash") or []
        f_imports = {
            fl["dist"]: pool.submit(import_test, python, fl["dist"], environ) for fl in flash if import_tests
        }
        f_archs = {fl["dist"]: [pool.submit(cuda_archs, p) for p in fl.get("extensions", [])] for fl in flash}
        deep_data = pool.submit(_deep_torch, python, environ) if deep and t.get("installed") else None
        for f in (f_nvidia, f_tool, f_gcc, f_ninja, f_res):
            parts.append(f.result())
        installed = []
        for fl in flash:
            res = f_imports[fl["dist"]].result() if fl["dist"] in f_imports else None
            archs: set[str] = set()
            any_read = False
            for fut in f_archs[fl["dist"]]:
                a = fut.result()
                if a is not None:
                    any_read = True
                    archs.update(a)
            installed.append(
                FlashInstall(
                    dist=canonicalize_name(fl["dist"]),
                    version=fl.get("version"),
                    import_ok=None if res is None else res.ok,
                    import_error=None if res is None else res.error,
                    import_crashed=False if res is None else res.crashed,
                    module_path=fl.get("module_path"),
                    extension_path=(fl.get("extensions") or [None])[0],
                    archs=tuple(sorted(archs)) if any_read else None,
                    metadata_dirs=tuple(str(d) for d in fl.get("metadata_dirs") or ()),
                    module_version=fl.get("module_version"),
                )
            )
        dependents = tuple(
            Dependent(str(d["dist"]), d.get("version"), str(d["requires"]))
            for d in data.get("dependents") or ()
            if isinstance(d, dict) and d.get("dist") and d.get("requires")
        ) + tuple(
            Dependent(dist, w["version"], limit.requires, "run-time")
            for dist, w in sorted((data.get("watched") or {}).items())
            if isinstance(w, dict) and isinstance(w.get("version"), str)
            for limit in run_time_limits.limits_for(dist, w["version"], w.get("present") or ())
        )
        extra = Probed(values={"installed": tuple(installed), "dependents": dependents})
        if f_abi is not None:
            extra.values["cxx11abi"] = f_abi.result()
        if f_tarch is not None:
            ta = f_tarch.result()
            extra.values["torch_arch_list"] = ta if ta else None
        if deep_data is not None:
            d = deep_data.result()
            extra.notes.extend(d.notes)
            extra.values.update(d.values)
        parts.append(extra)
    values: dict[str, Any] = {}
    notes: list[str] = []
    unknown: set[str] = set()
    for p in parts:
        values.update(p.values)
        notes.extend(p.notes)
        unknown |= p.unknown
    if values.get("torch") and values.get("cxx11abi") is None:
        unknown.add("cxx11abi")
    if t.get("libtorch_cuda") and not torch_archs and values.get("torch_arch_list") is None:
        unknown.add("torch_arch_list")  # not read (see torch_archs), unless --deep read it
    values["notes"] = tuple(notes)
    return Environment(**values, unknown=frozenset(unknown))


DEEP_SCRIPT = r"""
import json, torch
out = {"cxx11abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}
try:
    out["arch_list"] = torch.cuda.get_arch_list() if torch.cuda.is_available() else None
except Exception as exc:
    out["error"] = repr(exc)
print(json.dumps(out))
"""


def _deep_torch(python: str, environ: Mapping[str, str]) -> Probed:
    """--deep: import torch (seconds) to confirm what was read from its files."""
    r = Probed()
    try:
        d = run_script(python, DEEP_SCRIPT, [], environ, IMPORT_TIMEOUT, "the torch import")
    except TargetScriptError as exc:
        r.notes.append(f"--deep: importing torch failed: {exc.short}")
        return r
    r.values["cxx11abi"] = d.get("cxx11abi")
    if d.get("arch_list"):
        r.values["torch_arch_list"] = tuple(d["arch_list"])
    if d.get("error"):
        r.notes.append(f"--deep: {d['error']}")
    return r
