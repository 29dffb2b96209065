"""One rank's work with fed probes and smoke runners: which GPU, which target, which exit code."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flashdoctor.actions.cluster.launch import LaunchInfo
from flashdoctor.actions.cluster.rank import (
    RankOptions,
    SmokeOutcome,
    default_smoke_runner,
    run_rank,
    smoke_passed,
)
from flashdoctor.errors import UsageError
from flashdoctor.model.environment import Environment
from tests.support.paths import TARGETS
from tests.support.targets import target_env


def launch(rank: int = 1, local: int | None = None) -> LaunchInfo:
    return LaunchInfo(
        launcher="torchrun",
        rank=rank,
        world_size=4,
        local_rank=rank if local is None else local,
        node_rank=0,
        local_world_size=4,
        master_addr="127.0.0.1",
        master_port=29500,
        agent_store=True,
        run_id="t.0",
    )


class FakeNode:
    """A 4-GPU H100 node: the probe honours CUDA_VISIBLE_DEVICES like the real one."""

    def __init__(self, gpus: int = 4) -> None:
        self.gpus = gpus
        self.probed: list[Mapping[str, str]] = []

    def count(self, environ: Mapping[str, str]) -> int:
        return self.gpus

    def probe(
        self, python: str | None, environ: Mapping[str, str], import_tests: bool, deep: bool
    ) -> Environment:
        self.probed.append(dict(environ))
        env = target_env("h100")
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        return env.replace(gpus=env.gpus if visible is not None else env.gpus * self.gpus)


def test_rank_probes_only_its_own_gpu() -> None:
    node = FakeNode()
    res = run_rank(launch(2), RankOptions(), {"PATH": "/bin"}, "n1", gpu_count=node.count, probe=node.probe)
    assert node.probed == [{"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "2"}]
    assert (res.rank, res.host, res.device, res.source, res.exit_code, res.error) == (
        2,
        "n1",
        "2",
        "probe",
        0,
        None,
    )
    assert res.check is not None and len(res.check["environment"]["gpus"]) == 1


def test_rank_honours_an_existing_cuda_visible_devices() -> None:
    node = FakeNode()
    res = run_rank(
        launch(1),
        RankOptions(),
        {"CUDA_VISIBLE_DEVICES": "4,5,6,7"},
        "n1",
        gpu_count=node.count,
        probe=node.probe,
    )
    assert node.probed[0]["CUDA_VISIBLE_DEVICES"] == "5"
    assert res.device == "5"


def test_rank_beyond_the_gpus_is_noted_and_probes_unrestricted() -> None:
    node = FakeNode(gpus=2)
    res = run_rank(launch(3), RankOptions(), {}, "n1", gpu_count=node.count, probe=node.probe)
    assert "CUDA_VISIBLE_DEVICES" not in node.probed[0]
    assert res.device is None and res.device_note and "2 visible" in res.device_note


def test_rank_on_a_cpu_node() -> None:
    res = run_rank(
        launch(1), RankOptions(), {}, "n1", gpu_count=lambda e: 0, probe=lambda *a: target_env("cpu-box")
    )
    assert (res.device, res.device_note, res.exit_code) == (None, None, 0)


def test_target_for_rank_replaces_the_probe() -> None:
    def no_probe(*a: Any) -> Environment:
        raise AssertionError("a rank with a target must not probe")

    opts = RankOptions(target_for_rank={1: str(TARGETS / "old-driver.json")})
    res = run_rank(launch(1), opts, {}, "n1", gpu_count=lambda e: 0, probe=no_probe)
    assert res.source is not None and res.source.startswith("target:")
    assert res.exit_code == 1  # old-driver fails its check
    assert res.device is None  # a spec's GPU is no device of this node
    assert res.check is not None and res.check["environment"]["driver"] == "470.182.03"


def test_a_stale_wheel_index_is_reported_by_the_rank_as_by_check() -> None:
    """A plain `check` warns of a wheel index older than 60 days (``wheel-index-stale``) and names the
    index in its report; each rank's check said neither."""
    opts = RankOptions(target=str(TARGETS / "h100.json"))
    res = run_rank(launch(1), opts, {"FLASHDOCTOR_TODAY": "2099-01-01"}, "n1", gpu_count=lambda e: 0)
    assert res.check is not None
    assert "wheel-index-stale" in [f["code"] for f in res.check["findings"]], res.check["findings"]
    assert res.check["index"]["stale"] is True


def test_flashdoctor_target_env_var_per_rank() -> None:
    res = run_rank(
        launch(0),
        RankOptions(),
        {"FLASHDOCTOR_TARGET": str(TARGETS / "h100.json")},
        "n1",
        gpu_count=lambda e: 0,
    )
    assert res.source == f"target:{TARGETS / 'h100.json'}"


def test_a_multi_gpu_target_gives_the_rank_its_gpu(tmp_path: Path) -> None:
    spec = json.loads((TARGETS / "h100.json").read_text())
    spec["gpus"] = [{"name": f"GPU{i}", "capability": "9.0", "memory_gb": 80} for i in range(4)]
    path = tmp_path / "node.json"
    path.write_text(json.dumps(spec))
    res = run_rank(launch(2), RankOptions(target=str(path)), {}, "n1", gpu_count=lambda e: 0)
    assert res.check is not None and [g["name"] for g in res.check["environment"]["gpus"]] == ["GPU2"]


def test_an_unreadable_target_is_the_ranks_error_not_a_crash(tmp_path: Path) -> None:
    res = run_rank(
        launch(1), RankOptions(target=str(tmp_path / "nope.json")), {}, "n1", gpu_count=lambda e: 0
    )
    assert res.exit_code == 1 and res.error is not None and "cannot read target spec" in res.error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_without_a_writer_as_the_target_is_the_ranks_error_not_a_hang(tmp_path: Path) -> None:
    """A rank's target (FLASHDOCTOR_TARGET, --target-for-rank) was opened with a plain open(): a FIFO that
    nobody writes to blocked the rank for ever (rank 0 then reported it unfinished, after --rank-timeout).
    It is read as `check --target` reads one: at once, and the rank says why."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_rank(launch(1), RankOptions(), {"FLASHDOCTOR_TARGET": str(fifo)}, "n1", gpu_count=lambda e: 0)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(10)
    if worker.is_alive():  # blocked in open(): a writer's open (and close) lets it go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("the rank blocked opening a FIFO without a writer")
    (res,) = results
    assert res.exit_code == 1 and res.source == f"target:{fifo}"
    assert res.error == f"target spec {fifo} is a FIFO with nothing written to it"


def test_a_probe_usage_error_is_the_ranks_error() -> None:
    def bad_probe(*a: Any) -> Environment:
        raise UsageError("cannot run the target interpreter /x: not found")

    res = run_rank(launch(1), RankOptions(), {}, "n1", gpu_count=lambda e: 0, probe=bad_probe)
    assert res.error == "cannot run the target interpreter /x: not found"


def test_strict_and_require_reach_the_rank_exit_code() -> None:
    node = FakeNode()
    res = run_rank(launch(0), RankOptions(require=("fa2",)), {}, "n1", gpu_count=node.count, probe=node.probe)
    assert res.exit_code == 1  # fa2 is not installed on the h100 spec


def test_save_target_per_rank(tmp_path: Path) -> None:
    node = FakeNode()
    opts = RankOptions(save_target=str(tmp_path / "node-{host}-{rank}.json"))
    run_rank(launch(3), opts, {}, "n7", gpu_count=node.count, probe=node.probe)
    saved = json.loads((tmp_path / "node-n7-3.json").read_text())
    assert saved["torch"] == "2.11.0+cu130"


# -- smoke hook --------------------------------------------------------------------------------------
class Smoke:
    def __init__(self, passed: bool = True, crash: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, str], int | None]] = []
        self.passed = passed
        self.crash = crash

    def __call__(self, python: str, environ: Mapping[str, str], gpu: int | None) -> SmokeOutcome:
        self.calls.append((python, dict(environ), gpu))
        if self.crash:
            raise RuntimeError("CUDA error: no kernel image is available")
        return SmokeOutcome(passed=self.passed, document={"passed": self.passed})


def test_smoke_runs_on_the_ranks_gpu_only() -> None:
    node, smoke = FakeNode(), Smoke()
    res = run_rank(launch(3), RankOptions(smoke=True, python="/py"), {}, "n1", smoke, node.count, node.probe)
    ((python, environ, gpu),) = smoke.calls
    assert (python, environ["CUDA_VISIBLE_DEVICES"], gpu) == ("/py", "3", 0)
    assert (res.smoke, res.smoke_passed, res.exit_code) == ({"passed": True}, True, 0)


def test_failing_or_crashing_smoke_fails_the_rank() -> None:
    node = FakeNode()
    res = run_rank(launch(0), RankOptions(smoke=True), {}, "n1", Smoke(passed=False), node.count, node.probe)
    assert (res.smoke_passed, res.exit_code) == (False, 1)
    res = run_rank(launch(0), RankOptions(smoke=True), {}, "n1", Smoke(crash=True), node.count, node.probe)
    assert res.smoke_passed is False and res.exit_code == 1 and res.smoke is None
    assert res.smoke_error == "RuntimeError: CUDA error: no kernel image is available"


def test_smoke_is_skipped_for_a_target_and_without_gpu_gets_none() -> None:
    smoke = Smoke()
    opts = RankOptions(smoke=True, target=str(TARGETS / "h100.json"))
    res = run_rank(launch(0), opts, {}, "n1", smoke, lambda e: 0)
    assert smoke.calls == [] and res.smoke_passed is None and res.smoke is None
    run_rank(
        launch(0), RankOptions(smoke=True), {}, "n1", smoke, lambda e: 0, lambda *a: target_env("cpu-box")
    )
    assert smoke.calls[0][2] is None


@pytest.mark.parametrize(
    ("report", "passed"),
    [
        (SimpleNamespace(exit_code=lambda: 0, skipped=False), True),
        (SimpleNamespace(exit_code=lambda: 1, skipped=False), False),
        (SimpleNamespace(exit_code=lambda: 0, skipped=True), None),
        (SimpleNamespace(exit_code=lambda: 1, skipped=True), False),
    ],
)
def test_smoke_passed_reads_the_smoke_report(report: object, passed: bool | None) -> None:
    assert smoke_passed(report) is passed


def test_default_smoke_runner_calls_run_smoke_on_the_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import flashdoctor.actions.smoke

    calls: list[tuple[str, dict[str, str], int | None, Any]] = []

    def fake_run_smoke(
        python: str, environ: Mapping[str, str], gpu: int | None = None, variants: Any = None
    ) -> Any:
        calls.append((python, dict(environ), gpu, variants))
        return SimpleNamespace(exit_code=lambda: 1, skipped=False, to_json=lambda: {"status": "failed"})

    monkeypatch.setattr(flashdoctor.actions.smoke, "run_smoke", fake_run_smoke)
    out = default_smoke_runner(("fa2",))("/py", {"CUDA_VISIBLE_DEVICES": "3"}, 0)
    assert calls == [("/py", {"CUDA_VISIBLE_DEVICES": "3"}, 0, ["fa2"])]
    assert (out.passed, out.document) == (False, {"status": "failed"})


def test_rank_verdicts_consult_the_wheel_index_like_check() -> None:
    """Found on the 2-GPU H100 run: ranks said 'buildable (no wheel index consulted)' where a plain
    `check` on the same node said 'installable'."""
    from flashdoctor.actions.inputs import wheel_finder
    from flashdoctor.decide.explain import run_checks

    node = FakeNode()
    res = run_rank(launch(0), RankOptions(), {}, "n1", gpu_count=node.count, probe=node.probe)
    assert res.check is not None
    plain = run_checks(
        node.probe(None, {"CUDA_VISIBLE_DEVICES": "0"}, True, False), wheel_finder=wheel_finder({})
    )
    want = {v: plain.verdicts[v].verdict for v in plain.verdicts}
    assert {v: d["verdict"] for v, d in res.check["verdicts"].items()} == want
    assert want["fa3"] == "installable"  # FA3's prebuilt wheel fits this node: the verdict that was wrong
    assert not any(
        "no wheel index consulted" in r for d in res.check["verdicts"].values() for r in d["reasons"]
    )
    blind = run_rank(
        launch(0), RankOptions(), {}, "n1", gpu_count=node.count, probe=node.probe, finder=lambda: None
    )
    assert blind.check is not None
    assert any(
        "no wheel index consulted" in r for d in blind.check["verdicts"].values() for r in d["reasons"]
    )
