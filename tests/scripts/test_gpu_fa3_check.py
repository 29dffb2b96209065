"""scripts/check_fa3_smoke.py, the checks the lead's H100 run of scripts/gpu_smoke_fa3.sh ends with, run
here on reports of the same shape (golden_reports.py) so that it is known to read them right."""

from __future__ import annotations

import io
import json
import runpy
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.decide.smoke.judge import judge_smoke
from flashdoctor.model.cases import SMOKE_CASES_CUDA
from tests.support.golden_reports import FA3_VERSION, bench_report, smoke_report
from tests.support.paths import ROOT as REPO

GOLDEN = REPO / "tests" / "golden"


def unprofiled() -> dict[str, Any]:
    """FA3 given fp16 (the profile withheld): it crashed there, the restarted runner ran the rest."""
    head = [
        {"event": "torch", "version": "2.11.0+cu130", "import_s": 6.4},
        {"event": "variant", "backend": "fa3", "installed": True, "version": "3.0.0", "import_ok": True},
        {"event": "gpu", "gpu": 0, "name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gb": 79.1},
    ]
    ev = [*head, {"event": "case_start", "gpu": 0, "backend": "fa3", "case": "seed-fp16", "phase": "check"}]
    ev += [
        {
            "event": "crash",
            "gpu": 0,
            "backend": "fa3",
            "case": "seed-fp16",
            "phase": "check",
            "signal": "SIGSEGV",
        }
    ]
    ev += [{"event": "run", "attempt": 0, "returncode": -11}, *head]
    for c in SMOKE_CASES_CUDA:
        if c.name != "seed-fp16":
            k = {"gpu": 0, "backend": "fa3", "case": c.name}
            errs = {t: {"max_abs": 1e-3, "ref_max": 1.0} for t in ("out", "dq", "dk", "dv")}
            ev += [
                {**k, "event": "result", "ok": True, "errors": errs},
                {**k, "event": "timing", "fwd_ms": 0.1},
            ]
    ev += [{"event": "done"}, {"event": "run", "attempt": 1, "returncode": 0}]
    return judge_smoke(ev, RunInfo("p", "cuda", ("sdpa-math", "fa3")), cases=SMOKE_CASES_CUDA).to_json()


def test_the_checker_reads_the_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("smoke.json", "smoke-warm.json"):
        (out / name).write_text(json.dumps(smoke_report().to_json()))
    (out / "smoke-unprofiled.json").write_text(json.dumps(unprofiled()))
    for name in ("bench.json", "bench-causal.json"):
        (out / name).write_text(json.dumps(bench_report().to_json()))
    (out / "check.json").write_text(json.dumps({"verdicts": {"fa3": {"verdict": "ready"}}}))
    (out / "timings.txt").write_text("smoke_wall_s 19.2\nsmoke_warm_wall_s 12.8\n")
    for name in ("smoke-80.txt", "smoke-200.txt"):
        (out / name).write_text((GOLDEN / name).read_text())
    (out / "bench.txt").write_text((GOLDEN / "bench-80.txt").read_text())
    buf = io.StringIO()
    with redirect_stdout(buf):
        module = runpy.run_path(str(REPO / "scripts" / "check_fa3_smoke.py"))
        rc = module["main"](out)
    lines = buf.getvalue().splitlines()
    failed = [ln for ln in lines if ln.startswith("FAIL")]
    # The golden smoke has one SDPA efficient error row on purpose: the only thing flagged.
    assert [ln.split(":")[0] for ln in failed] == ["FAIL smoke.json", "FAIL smoke-warm.json"], failed
    assert all("('sdpa-efficient', 'long-causal')" in ln for ln in failed)
    assert rc == 1
    assert f"ok   smoke.json: FA3 {FA3_VERSION} carries a build profile" in lines
    assert "ok   unprofiled: 2 runner processes (want 2: one restart)" in lines
    assert any(ln.startswith("ok   bench.json: % peak at most 100") for ln in lines)
