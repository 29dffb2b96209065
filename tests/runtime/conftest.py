"""Every runtime test starts from a fresh runtime: no backend override, nothing logged, failed or counted,
torch's generator seeded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import torch

    from flashdoctor.attention import backend_usage
    from flashdoctor.runtime import dispatch, state

    monkeypatch.delenv(dispatch.override_env_var(), raising=False)
    state.LOGGED.clear()
    state.FAILED.clear()
    backend_usage(reset=True)
    torch.manual_seed(0)
    yield
