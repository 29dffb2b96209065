"""What the runtime says is available: FLASH_AVAILABLE, available_backends(), import failures.

Only what cannot exist here is faked: a GPU (its presence, count and compute capability) and a
flash-attn build (a package on sys.path whose import fails the way a wheel for another torch does).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from flashdoctor import attention
from flashdoctor.attention import available_backends, backend_usage, flash_attention, flash_available
from flashdoctor.runtime import availability
from flashdoctor.runtime import call as runtime_call


def _no_imports(name: str) -> object:
    raise AssertionError(f"{name} was imported for a device that is not there")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_a_cuda_device_that_is_not_there_is_not_flash_capable(
    device: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flash_available("cuda") on a machine without a GPU (a CPU CI runner, CUDA_VISIBLE_DEVICES="")
    answers False with the reason; it raised torch's "Torch not compiled with CUDA enabled" (or "No
    CUDA GPUs are available") from get_device_capability before."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(availability, "import_backend", _no_imports)
    assert flash_available(device) is False  # type: ignore[arg-type]
    statuses = available_backends(device)  # type: ignore[arg-type]
    assert [s.name for s in statuses if s.usable] == ["sdpa"]
    assert {s.why_not for s in statuses if s.name != "sdpa"} == {
        f"no CUDA device is visible to torch {torch.__version__}"
    }
    assert attention.FLASH_AVAILABLE is False  # the default device is the CPU here


def test_a_cuda_index_past_the_last_gpu_is_not_flash_capable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(availability, "import_backend", _no_imports)
    assert flash_available("cuda:3") is False
    (why,) = {s.why_not for s in available_backends("cuda:3") if s.name != "sdpa"}
    assert why == "cuda:3 does not exist (torch sees 1 CUDA device)"


UNDEFINED_SYMBOL = (
    "/site/flash_attn_2_cuda.cpython-312-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"
)


@pytest.fixture
def broken_flash_attn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """An H100 (torch's view of it faked) with a flash_attn package whose import fails with the
    error given as the test's parameter: a wheel built for another torch, or worse."""
    error: str = request.param
    package = tmp_path / "site" / "flash_attn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise {error}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(availability, "_capability", lambda index: (9, 0))
    real = runtime_call.describe_call
    monkeypatch.setattr(
        runtime_call,
        "describe_call",
        lambda *a, **kw: dataclasses.replace(real(*a, **kw), device="cuda", capability=(9, 0)),
    )
    availability.import_backend.cache_clear()
    try:
        yield
    finally:
        availability.import_backend.cache_clear()
        for name in [m for m in sys.modules if m == "flash_attn" or m.startswith("flash_attn.")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("broken_flash_attn", "why"),
    [
        (f"ImportError({UNDEFINED_SYMBOL!r})", f"flash_attn does not import: {UNDEFINED_SYMBOL}"),
        (
            "OSError('libcudart.so.12: cannot open shared object file')",
            "flash_attn does not import: libcudart",
        ),
        ("TypeError('unsupported operand type(s)')", "flash_attn does not import: TypeError: unsupported"),
        ("NameError(\"name 'cutlass' is not defined\")", "flash_attn does not import: NameError: name"),
    ],
    indirect=["broken_flash_attn"],
    ids=["undefined-symbol", "oserror", "typeerror", "nameerror"],
)
def test_a_flash_attn_that_does_not_import_is_unusable_with_its_error_and_calls_fall_back(
    broken_flash_attn: None, why: str
) -> None:
    """Whatever a broken flash-attn raises at import, FLASH_AVAILABLE and flash_attention() answer:
    the backend is unusable with the error's first line (unquoted), and calls fall back. An error
    other than ImportError/OSError/RuntimeError/AttributeError escaped before, from every CUDA call."""
    statuses = {s.name: s for s in available_backends("cuda")}
    assert not statuses["fa2"].usable and not statuses["fa4"].usable
    assert statuses["fa2"].why_not is not None and statuses["fa2"].why_not.startswith(why)
    assert "'" not in statuses["fa2"].why_not.split(": ", 1)[1][:1]  # the message, not its repr
    assert statuses["fa4"].why_not is not None and statuses["fa4"].why_not.startswith(
        "flash_attn.cute does not import"
    )
    assert isinstance(flash_available("cuda"), bool)
    q = torch.randn(1, 8, 2, 64, dtype=torch.bfloat16)
    out = flash_attention(q, q, q, backend="fa2,fa4")
    assert backend_usage() == {"sdpa": 1}
    ref = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, q, q))).transpose(
        1, 2
    )
    torch.testing.assert_close(out, ref)


@pytest.mark.gpu
def test_on_a_gpu_an_index_past_the_last_is_not_flash_capable() -> None:
    count = torch.cuda.device_count()
    assert flash_available(f"cuda:{count}") is False
    (why,) = {s.why_not for s in available_backends(f"cuda:{count}") if s.name != "sdpa"}
    assert why is not None and why.startswith(f"cuda:{count} does not exist")
