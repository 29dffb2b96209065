"""What the runtime says is available: FLASH_AVAILABLE, available_backends(), import failures.

Only what cannot exist here is faked: a GPU (its presence, count and compute capability) and a
flash-attn build (a package on sys.path whose import fails the way a wheel for another torch does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from flashdoctor import attention
from flashdoctor.attention import available_backends, backend_usage, flash_available
from flashdoctor.runtime import availability, dispatch, state


@pytest.fixture(autouse=True)
def _fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(dispatch.override_env_var(), raising=False)
    state.LOGGED.clear()
    state.FAILED.clear()
    backend_usage(reset=True)
    yield


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
