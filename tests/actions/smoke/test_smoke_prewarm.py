"""The background cuDNN compile of the smoke test (README "Smoke test"): its orchestration on the CPU.

The compile itself needs a GPU (it is run for real by scripts/gpu_smoke_bench.sh); what is checked here
is what must hold wherever it runs: its threads report once and are joined, a runner that dies while
they run is run again without them and without blaming the backend the main thread was in, and the
time it took is reported as its own phase.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.actions.smoke import _runner
from flashdoctor.actions.smoke.run import run_with_restarts
from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.decide.smoke.judge import judge_smoke, phase_times
from flashdoctor.model.cases import BACKENDS, SMOKE_CASES_CPU
from tests.support.smoke_fakes import FAKE_RUNNER_HEAD


class _Collect:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: str, **data: Any) -> None:
        self.events.append({"event": event, **data})


def test_warmup_threads_report_once_and_are_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CPU torch every thread fails (no CUDA stream): each error is collected, one done event.
    (cuDNN "available" is the one thing faked: a CPU build has none, and the warm-up is skipped then.)"""
    torch = pytest.importorskip("torch")
    ev0 = _Collect()
    r0 = _runner.Runner({"device": "cpu", "seed": 0}, ev0, torch)
    assert _runner.CudnnWarmup(r0, [c.to_json() for c in SMOKE_CASES_CPU]).start() is False  # no cuDNN here
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    ev = _Collect()
    runner = _runner.Runner({"device": "cpu", "seed": 0}, ev, torch)
    runner.gpu, runner.dev = None, torch.device("cpu")
    cases = [c.to_json() for c in SMOKE_CASES_CPU]
    w = _runner.CudnnWarmup(runner, cases)
    # Packed varlen and GQA have no direct cuDNN op call here: left to the main thread.
    assert [c["name"] for c in w.cases] == ["seed", "seed-causal", "seed-fp16", "long", "long-causal"]
    assert w.start() is True
    w.wait(timeout=60)
    assert w.threads == []
    kinds = [e["event"] for e in ev.events]
    assert kinds == ["prewarm_start", "prewarm_done"]
    done = ev.events[1]
    assert len(done["errors"]) == 5 and all(": " in e for e in done["errors"])
    assert done["elapsed_s"] >= 0


FAKE_RUNNER = FAKE_RUNNER_HEAD + textwrap.dedent(
    """
    with open(os.environ["CONFIGS_LOG"], "a") as fh:
        fh.write(json.dumps({"prewarm": cfg["prewarm"], "skip": cfg["skip"]}) + "\\n")
    emit("gpu", gpu=0, name="fake", capability="9.0", memory_gb=80)
    if cfg["prewarm"]:
        emit("prewarm_start", gpu=0, backend="sdpa-cudnn", cases=["seed"])
    emit("backend_start", gpu=0, backend="sdpa-math")
    emit("case_start", gpu=0, backend="sdpa-math", case="seed", phase="time")
    if cfg["prewarm"]:
        os.kill(os.getpid(), signal.SIGSEGV)  # as if a compile thread had crashed the process
    emit("backend_done", gpu=0, backend="sdpa-math")
    emit("done", elapsed_s=0.5)
    """
)


@pytest.mark.system
def test_a_death_during_the_warmup_reruns_without_it_and_blames_no_backend(tmp_path: Path) -> None:
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_RUNNER)
    fake.chmod(0o755)
    log = tmp_path / "configs.jsonl"
    env = {**os.environ, "CONFIGS_LOG": str(log)}
    config = {"mode": "smoke", "device": "cuda", "backends": list(BACKENDS), "prewarm": ["sdpa-cudnn"]}
    events = run_with_restarts(str(fake), env, config, timeout=60, stall_timeout=30)
    configs = [json.loads(line) for line in log.read_text().splitlines()]
    assert configs == [
        {"prewarm": ["sdpa-cudnn"], "skip": []},
        {"prewarm": [], "skip": []},  # nothing left out: the crash was not sdpa-math's
    ]
    assert not [e for e in events if e["event"] in ("crash", "timeout", "runner_failed")]
    assert any(e["event"] == "note" and "background" in e["message"] for e in events)
    assert [e["returncode"] for e in events if e["event"] == "run"] == [-11, 0]


def test_warmup_time_is_its_own_phase_and_errors_are_notes() -> None:
    events = [
        {"event": "torch", "import_s": 3.0, "t": 3.5},
        {"event": "prewarm_start", "backend": "sdpa-cudnn", "t": 4.0},
        {"event": "backend_start", "gpu": 0, "backend": "sdpa-math", "t": 6.0},
        {
            "event": "prewarm_done",
            "backend": "sdpa-cudnn",
            "elapsed_s": 5.5,
            "errors": ["seed: boom"],
            "t": 9.5,
        },
        {"event": "preimport_done", "module": "torch._dynamo", "elapsed_s": 2.25, "error": None, "t": 7.0},
        {"event": "backend_done", "gpu": 0, "backend": "sdpa-math", "t": 10.0},
        {"event": "done", "elapsed_s": 10.5, "heavy_imports": ["torch._inductor"]},
        {"event": "run", "elapsed_s": 11.0},
    ]
    phases = phase_times(events)
    assert phases == {
        "torch_import_s": 3.0,
        "setup_s": 2.5,
        "sdpa-cudnn_prewarm_s": 5.5,
        "dynamo_import_s": 2.25,
        "sdpa-math_s": 4.0,
        "runner_s": 11.0,
    }
    report = judge_smoke(
        events, RunInfo(sys.executable, "cuda", ("sdpa-math",), elapsed_s=11.0), cases=SMOKE_CASES_CPU
    )
    assert any("background compile of sdpa-cudnn kernels" in n and "seed: boom" in n for n in report.notes)
    assert any("the runner imported torch._inductor" in n for n in report.notes)
