"""Probe of what a source build needs inside the target interpreter: torch importable (the build runs
with --no-build-isolation, so setup.py imports the installed torch), and the Python packages
setup.py imports (setuptools, packaging, pip, wheel) or setuptools' setup_requires would fetch.

Importing torch takes seconds: this runs only for ``flashdoctor build``, never for ``check``.
"""

from __future__ import annotations

from collections.abc import Mapping

from flashdoctor.model.tools import BuildTools
from flashdoctor.probe.interpreter import TargetScriptError, run_script

BUILD_MODULES = ("setuptools", "packaging", "pip", "wheel", "psutil", "ninja")

SCRIPT = r"""
import importlib, json, sys
out = {"modules": {}, "torch": {}}
for name in sys.argv[1:]:
    try:
        m = importlib.import_module(name)
        out["modules"][name] = str(getattr(m, "__version__", "") or "present")
    except Exception as exc:
        out["modules"][name] = None
try:
    import torch
    out["torch"] = {"ok": True, "version": torch.__version__, "cuda": torch.version.cuda,
                    "cxx11abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}
except Exception as exc:
    out["torch"] = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
print(json.dumps(out))
"""


def probe_build_tools(python: str, environ: Mapping[str, str], timeout: float = 180.0) -> BuildTools:
    try:
        d = run_script(python, SCRIPT, BUILD_MODULES, environ, timeout, "the build-tools probe")
    except TargetScriptError as exc:
        return BuildTools(torch_ok=False, torch_error=str(exc)[-500:])
    t = d.get("torch") or {}
    return BuildTools(
        modules=dict(d.get("modules") or {}),
        torch_ok=bool(t.get("ok")),
        torch_error=t.get("error"),
        torch_version=t.get("version"),
        torch_cuda=t.get("cuda"),
        cxx11abi=t.get("cxx11abi"),
    )
