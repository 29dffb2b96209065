"""The NVIDIA probe against a stand-in NVML (no GPU here): what it says when NVML answers oddly."""

from __future__ import annotations

from typing import Any

import pynvml
import pytest

from flashdoctor.probe import system


class FakeNVML:
    """The pynvml calls probe_nvidia makes, answering for ``gpus`` (name, capability, GiB, uuid) and the MIG
    devices of each (``migs``: GPU index -> [(name, GiB, uuid)], MIG mode on for those, and ``mig_ids``:
    (index, slot) -> (GPU instance id, compute instance id), "not supported" for one not in it); a name in
    ``fail`` raises NVML_ERROR_UNKNOWN there. A GPU's handle is its index, a MIG device's (index, slot)."""

    def __init__(
        self,
        gpus: list[tuple[str, tuple[int, int], float, str]],
        fail: tuple[str, ...] = (),
        migs: dict[int, list[tuple[str, float, str]]] | None = None,
        mig_ids: dict[tuple[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self.gpus, self.fail, self.migs, self.mig_ids = gpus, fail, migs or {}, mig_ids or {}

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
            "nvmlDeviceGetMigMode",
            "nvmlDeviceGetMaxMigDeviceCount",
            "nvmlDeviceGetMigDeviceHandleByIndex",
            "nvmlDeviceGetGpuInstanceId",
            "nvmlDeviceGetComputeInstanceId",
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

    def _mig(self, h: Any) -> tuple[str, float, str]:
        return self.migs[h[0]][h[1]]

    def nvmlDeviceGetName(self, h: Any) -> str:
        return self._mig(h)[0] if isinstance(h, tuple) else self.gpus[h][0]

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return self.gpus[h][1]

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:
        gib = self._mig(h)[1] if isinstance(h, tuple) else self.gpus[h][2]
        return type("Memory", (), {"total": int(gib * 2**30)})()

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        return self._mig(h)[2] if isinstance(h, tuple) else self.gpus[h][3]

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        if h not in self.migs:  # what a GPU without MIG answers
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_ENABLE] * 2

    def nvmlDeviceGetMaxMigDeviceCount(self, h: int) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: int, j: int) -> tuple[int, int]:
        if j >= len(self.migs[h]):  # an empty slot
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return (h, j)

    def _ids(self, h: tuple[int, int]) -> tuple[int, int]:
        if h not in self.mig_ids:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self.mig_ids[h]

    def nvmlDeviceGetGpuInstanceId(self, h: tuple[int, int]) -> int:
        return self._ids(h)[0]

    def nvmlDeviceGetComputeInstanceId(self, h: tuple[int, int]) -> int:
        return self._ids(h)[1]


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


MIG_A = "MIG-0d1c2b3a-aaaa-5555-8888-000000000001"
MIG_B = "MIG-0d1c2b3a-bbbb-5555-8888-000000000002"


def test_mig_devices_named_in_cuda_visible_devices_are_the_gpus_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slurm or Kubernetes job given MIG slices (CUDA_VISIBLE_DEVICES=MIG-<uuid>) saw no GPU at all: the
    list was matched against the physical GPUs' GPU-<uuid> only. Each MIG device is its parent's GPU (its
    compute capability) with the slice's memory."""
    other = ("NVIDIA H100 80GB HBM3", (9, 0), 79.6, "GPU-99999999-0000-1111-2222-333344445555")
    migs = {
        0: [
            ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 9.8, MIG_A),
            ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", 39.4, MIG_B),
        ]
    }
    FakeNVML([H100, other], migs=migs).install(monkeypatch)
    r = system.probe_nvidia({"CUDA_VISIBLE_DEVICES": f"{MIG_B},{MIG_A[:17]}"})
    got = [(g.index, g.name, g.capability, g.memory_gb, g.uuid) for g in r.values["gpus"]]
    assert got == [
        (0, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "9.0", 39.4, MIG_B),
        (1, "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "9.0", 9.8, MIG_A),
    ]
    # indices and GPU- uuids still name the physical GPUs; an unknown MIG uuid stops the list
    r = system.probe_nvidia({"CUDA_VISIBLE_DEVICES": "1,MIG-ffff,0"})
    assert [g.uuid for g in r.values["gpus"]] == [other[3]]
    assert [g.uuid for g in system.probe_nvidia({}).values["gpus"]] == [H100[3], other[3]]


def test_mig_devices_in_the_pre_r470_form_are_matched_by_gpu_and_instance_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CUDA_VISIBLE_DEVICES=MIG-GPU-<gpu uuid>/<gi>/<ci> (how drivers before R470 named MIG devices, still
    in older job scripts) matched nothing, so the job saw no GPU. It names the MIG device of that GPU with
    those GPU and compute instance ids (NVML's)."""
    migs = {
        0: [
            ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 9.8, MIG_A),
            ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", 39.4, MIG_B),
        ]
    }
    FakeNVML([H100], migs=migs, mig_ids={(0, 0): (7, 0), (0, 1): (2, 0)}).install(monkeypatch)
    legacy_b = f"MIG-{H100[3]}/2/0"
    r = system.probe_nvidia({"CUDA_VISIBLE_DEVICES": f"{legacy_b},MIG-{H100[3].lower()}/7/0"})
    assert [(g.index, g.uuid, g.memory_gb) for g in r.values["gpus"]] == [(0, MIG_B, 39.4), (1, MIG_A, 9.8)]
    assert not r.unknown
    # no such instance: the list stops there, as CUDA's does
    r = system.probe_nvidia({"CUDA_VISIBLE_DEVICES": f"MIG-{H100[3]}/3/0,{legacy_b}"})
    assert r.values["gpus"] == () and not r.unknown


def test_a_pre_r470_mig_name_without_the_instance_ids_leaves_the_gpus_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where NVML does not give the MIG devices' instance ids, such a name cannot be matched: the GPUs are
    unknown (a note says why), not "no GPU"."""
    FakeNVML([H100], migs={0: [("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 9.8, MIG_A)]}).install(monkeypatch)
    r = system.probe_nvidia({"CUDA_VISIBLE_DEVICES": f"MIG-{H100[3]}/7/0"})
    assert "gpus" in r.unknown
    assert any("MIG-GPU-" in n and "instance" in n for n in r.notes), r.notes


def test_an_old_nvml_answering_bytes_gives_the_same_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Old nvidia-ml-py versions return the driver version, names and uuids as bytes: the GPUs and MIG
    devices probed are the ones a newer (str) NVML gives."""
    migs = {0: [("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 9.8, MIG_A)]}
    FakeNVML([H100], migs=migs).install(monkeypatch)
    env = {"CUDA_VISIBLE_DEVICES": MIG_A}
    want = system.probe_nvidia(env).values
    for name in ("nvmlSystemGetDriverVersion", "nvmlDeviceGetName", "nvmlDeviceGetUUID"):
        answer = getattr(pynvml, name)
        monkeypatch.setattr(pynvml, name, lambda *a, answer=answer: answer(*a).encode())
    got = system.probe_nvidia(env).values
    assert got == want
    assert want["driver"] == "570.86.15" and [g.uuid for g in want["gpus"]] == [MIG_A]
