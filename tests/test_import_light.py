"""Importing flashdoctor (any module but flashdoctor.attention) must not import torch.

Runs in a fresh interpreter: the test process itself has torch loaded by other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

PROBE = """
import pkgutil, importlib, sys, json
import flashdoctor
# attention and the torch side of the runtime import torch by design (runtime.dispatch and
# runtime.state stay light); _interp is a script run inside the target interpreter.
torch_side = {"attention", "runtime.availability", "runtime.call", "runtime.compat", "runtime.kernels", "runtime.module"}
skip = {"flashdoctor." + n for n in torch_side} | {"flashdoctor.__main__", "flashdoctor.probe._interp"}
names = sorted(m.name for m in pkgutil.walk_packages(flashdoctor.__path__, "flashdoctor.") if m.name not in skip)
loaded = {}
for name in names:
    before = set(sys.modules)
    importlib.import_module(name)
    loaded[name] = [m for m in ("torch", "numpy", "flash_attn") if m in sys.modules and m not in before]
print("RESULT " + json.dumps(loaded))
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.system
def test_importing_every_flashdoctor_module_but_attention_leaves_torch_unloaded() -> None:
    import json

    proc = _run(PROBE)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
    assert "flashdoctor.runtime.dispatch" in loaded and "flashdoctor.runtime.state" in loaded
    assert "flashdoctor.cli" in loaded
    heavy = {name: mods for name, mods in loaded.items() if mods}
    assert heavy == {}, f"these imports pulled in torch/numpy/flash_attn: {heavy}"


@pytest.mark.system
def test_the_attention_module_is_where_torch_comes_in() -> None:
    # The control for the test above: the probe does see torch when it is imported.
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import flashdoctor.attention\n"
        "print('torch' in sys.modules)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
