"""The NVIDIA probe against a stand-in NVML (no GPU here): what it says when NVML answers oddly."""

from __future__ import annotations

from typing import Any

import pynvml
import pytest

from flashdoctor.probe import system


class FakeNVML:
    """The pynvml calls probe_nvidia makes, answering for ``gpus`` (name, capability, GiB, uuid); a name
    in ``fail`` raises NVML_ERROR_UNKNOWN there."""

    def __init__(
        self, gpus: list[tuple[str, tuple[int, int], float, str]], fail: tuple[str, ...] = ()
    ) -> None:
        self.gpus, self.fail = gpus, fail

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(system, "_driver_from_files", lambda: None)
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlSystemGetDriverVersion",
            "nvmlSystemGetCudaDriverVersion_v2",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetCudaComputeCapability",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUUID",
        ):
            monkeypatch.setattr(pynvml, name, self._call(name))

    def _call(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            if name in self.fail:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
            return getattr(self, name)(*args)

        return call

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.86.15"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12080

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return self.gpus[h][0]

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return self.gpus[h][1]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return type("Memory", (), {"total": int(self.gpus[h][2] * 2**30)})()

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self.gpus[h][3]


H100 = ("NVIDIA H100 80GB HBM3", (9, 0), 79.6, "GPU-5a8e1c2e-0000-1111-2222-333344445555")


@pytest.mark.parametrize("fails", ["nvmlDeviceGetCount", "nvmlSystemGetDriverVersion"])
def test_nvml_failing_to_count_the_gpus_leaves_them_unknown(
    monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """A driver whose NVML initialises but cannot list its devices (NVML_ERROR_UNKNOWN, a GPU fallen off
    the bus) is a note and unknown GPUs, not an exception out of the probe (a traceback from `check`)."""
    FakeNVML([H100], fail=(fails,)).install(monkeypatch)
    r = system.probe_nvidia({})
    assert any("Unknown Error" in n for n in r.notes), r.notes
    if fails == "nvmlDeviceGetCount":
        assert "gpus" in r.unknown
        assert r.values["driver"] == "570.86.15"
    else:
        assert "driver" in r.unknown
        assert len(r.values["gpus"]) == 1


def test_a_fake_nvml_lists_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNVML([H100]).install(monkeypatch)
    r = system.probe_nvidia({})
    assert [(g.name, g.capability) for g in r.values["gpus"]] == [("NVIDIA H100 80GB HBM3", "9.0")]
    assert not r.unknown
