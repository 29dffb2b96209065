"""`flashdoctor explain` through click's runner and as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from flashdoctor.cli import cli, main
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.schemas import load_schema
from tests.support.hung_python import interrupted
from tests.support.paths import DATA, ROOT, TARGETS

SAMPLES = DATA / "explain"


def run(*args: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def code(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def _with_first_line(tmp_path: Path, sample: str, first: str) -> str:
    log = tmp_path / sample
    log.write_bytes(first.encode() + b"\n" + (SAMPLES / sample).read_bytes())
    return str(log)


def test_json_document_for_a_target_machine(tmp_path: Path):
    # pip's line shows the target's torch: the log comes from that machine, so the fix is for it.
    log = _with_first_line(
        tmp_path,
        "build-killed-docker.log",
        "Requirement already satisfied: torch in /venv/lib/python3.11/site-packages (2.13.0+cpu)",
    )
    assert code("explain", log, "--target", target("cpu-box"), "--json") == 0
    r = run("explain", log, "--target", target("cpu-box"), "--json")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, load_schema("explain-report.schema.json"))
    first = doc["diagnoses"][0]
    assert set(first) >= {"code", "confidence", "evidence", "message", "fix"}
    assert first["code"] == "build-oom" and "MAX_JOBS=1" in first["fix"]
    assert doc["recognised"] is True and doc["log"]["lines"] == 6


def test_a_log_that_does_not_show_the_target_gets_no_fix_for_the_target():
    # The sample could come from any machine: --target describes this one, not the log's.
    r = run("explain", str(SAMPLES / "build-killed-docker.log"), "--target", target("cpu-box"), "--json")
    first = json.loads(r.stdout)["diagnoses"][0]
    assert first["code"] == "build-oom"
    assert "MAX_JOBS=1" not in first["fix"] and "23 GB" not in first["fix"]
    # The log's own command set MAX_JOBS=32: the rule for a build that already set it (context max_jobs_set).
    assert "already ran with MAX_JOBS set" in first["fix"]


def test_fixes_name_the_wheel_the_selector_picks_for_the_target(tmp_path: Path):
    a100_log = _with_first_line(tmp_path, "import-undefined-symbol.log", "PyTorch version: 2.8.0+cu128")
    a100 = json.loads(run("explain", a100_log, "--target", target("a100"), "--json").stdout)["diagnoses"][0]
    assert a100["code"] == "torch-abi-mismatch"
    assert "+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl" in a100["fix"]
    # torch 2.11 has no FA2 wheel of its own: the official torch 2.10 one, which loads there (measured), and
    # the fix does not call it a wheel built for torch 2.11.
    (tmp_path / "h").mkdir()
    h100_log = _with_first_line(
        tmp_path / "h", "import-undefined-symbol.log", "PyTorch version: 2.11.0+cu130"
    )
    h100 = json.loads(run("explain", h100_log, "--target", target("h100"), "--json").stdout)["diagnoses"][0]
    assert "that fits torch 2.11" in h100["fix"] and "+cu13torch2.10cxx11abiTRUE-cp312" in h100["fix"], h100[
        "fix"
    ]
    # torch 2.13 has none that loads: the fix says to rebuild instead of naming one.
    (tmp_path / "n").mkdir()
    spec = {**json.loads((TARGETS / "h100.json").read_text()), "torch": "2.13.0+cu130"}
    (tmp_path / "n" / "t.json").write_text(json.dumps(spec))
    new_log = _with_first_line(tmp_path / "n", "import-undefined-symbol.log", "PyTorch version: 2.13.0+cu130")
    newer = json.loads(run("explain", new_log, "--target", str(tmp_path / "n" / "t.json"), "--json").stdout)
    assert "No prebuilt flash-attn wheel fits" in newer["diagnoses"][0]["fix"], newer["diagnoses"][0]["fix"]
    assert "--from-source" in newer["diagnoses"][0]["fix"]
    # A torch 2.8 log explained against the h100 target: the fix is for the log's machine, and says so.
    other = json.loads(run("explain", a100_log, "--target", target("h100"), "--json").stdout)["diagnoses"][0]
    assert other["fix"].startswith("For the machine in this log (torch 2.8.0+cu128, cp312, Linux):")
    assert "2.11" not in other["fix"] and "this machine" not in other["fix"]


def test_human_output_shows_evidence_and_fix():
    out = run("explain", str(SAMPLES / "pip-404-compile-error.log"), "--no-probe").output
    assert "wheel-download-failed" in out and "HTTP Error 404" in out and "fix:" in out
    assert "consequence of wheel-download-failed" in out
    assert out.index("wheel-download-failed") < out.index("build-failed")


def test_stdin_and_dash():
    log = (SAMPLES / "import-libc10.log").read_bytes()
    for args in (["explain", "-", "--no-probe", "--json"], ["explain", "--no-probe", "--json"]):
        r = run(*args, stdin=log)
        assert json.loads(r.stdout)["diagnoses"][0]["code"] == "torch-not-imported-first"


def test_unrecognised_log_says_so_shows_lines_and_exits_1(tmp_path: Path):
    assert code("explain", str(SAMPLES / "unknown-error.log"), "--no-probe") == 1
    r = run("explain", str(SAMPLES / "unknown-error.log"), "--no-probe")
    # the header wraps at 80 columns after the log's path, whose length depends on where the checkout is
    assert "no known failure recognised" in " ".join(r.output.split())
    assert "ValueError: shard 17 is corrupt" in r.output and "FutureWarning" not in r.output
    doc = json.loads(run("explain", str(SAMPLES / "unknown-error.log"), "--no-probe", "--json").stdout)
    assert doc["recognised"] is False and doc["diagnoses"] == [] and doc["key_lines"]
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert code("explain", str(empty), "--no-probe") == 1
    assert "empty" in run("explain", str(empty), "--no-probe").output


def test_binary_junk_is_not_a_text_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # issue 17: a binary file printed garbage; now a usage error that says why (and no traceback)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64 + "ümlaut €\n".encode("latin-1", errors="replace"))
    assert code("explain", str(junk), "--no-probe") == 2
    assert "is not a text log" in capsys.readouterr().err
    assert code("explain", str(junk), "--no-probe", "--json") == 2
    with pytest.raises(UsageError, match="<stdin> is not a text log"):
        run("explain", "-", "--no-probe", stdin=junk.read_bytes())
    # A UTF-16 log (PowerShell's `>`) is full of NUL bytes and is still text, with a byte-order mark or
    # without one in either byte order.
    utf16 = tmp_path / "ps.log"
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        utf16.write_bytes((SAMPLES / "import-libc10.log").read_text(encoding="utf-8").encode(codec))
        assert code("explain", str(utf16), "--no-probe") == 0, codec


def test_a_long_logs_middle_is_skipped_and_the_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A log longer than the window (the real one is 32 MiB) is read head and tail: the error near its end is
    # still found, at its line in the whole log, and both reports say what was skipped.
    from flashdoctor.actions import inputs

    monkeypatch.setattr(inputs, "LOG_WINDOW_BYTES", 1 << 20)
    undef = "ImportError: flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"
    log = tmp_path / "build.log"
    log.write_text("".join(f"[{i}/300000] nvcc -c kernel_{i}.cu\n" for i in range(1, 300_001)) + undef + "\n")
    for args in ((str(log),), ("-",)):
        stdin = log.read_bytes() if args == ("-",) else None
        doc = json.loads(run("explain", *args, "--no-probe", "--json", stdin=stdin).stdout)
        jsonschema.validate(doc, load_schema("explain-report.schema.json"))
        assert [(d["code"], d["line"]) for d in doc["diagnoses"]] == [("torch-abi-mismatch", 300_001)]
        skipped = doc["log"]["skipped"]
        assert doc["log"]["lines"] == 300_001 and skipped["bytes"] > log.stat().st_size - (1 << 20)
        assert 0 < skipped["after_line"] < skipped["after_line"] + skipped["lines"] < 300_001
        out = " ".join(run("explain", *args, "--no-probe", stdin=stdin).output.split())
        assert "line 300001" in out and f"{skipped['lines']:,} lines" in out and "not read" in out
    small = json.loads(run("explain", str(SAMPLES / "import-libc10.log"), "--no-probe", "--json").stdout)
    assert small["log"]["skipped"] is None


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert code("explain", str(tmp_path / "missing.log"), "--no-probe") == 2
    assert "cannot read" in capsys.readouterr().err
    assert code("explain", str(tmp_path), "--no-probe") == 2
    assert "directory" in capsys.readouterr().err
    assert code("explain", str(SAMPLES / "import-libc10.log"), "--no-probe", "--target", target("h100")) == 2
    assert code("explain", str(SAMPLES / "import-libc10.log"), "--target", str(tmp_path / "nope.json")) == 2
    assert code("explain", str(SAMPLES / "import-libc10.log"), "--target", target("h100")) == 0
    assert (
        code(
            "explain",
            str(SAMPLES / "import-libc10.log"),
            "--target",
            target("h100"),
            "--python",
            sys.executable,
        )
        == 2
    )


def test_verbose_lists_sources():
    r = run("explain", str(SAMPLES / "import-glibc.log"), "--no-probe", "-v")
    assert "known from" in r.output and "flash-attention#1708" in r.output


@pytest.mark.system
def test_real_process_probes_this_machine_and_reads_a_pipe():
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    log = (SAMPLES / "pip-404-then-oom.log").read_bytes()
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "explain", "-", "--json"],
        input=log,
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [d["code"] for d in doc["diagnoses"]][:2] == ["wheel-download-failed", "build-oom"]
    # The log's torch 2.9.1 is not this machine's: the fix gives the rule, not this machine's numbers.
    assert "MAX_JOBS=<free GB / 9" in doc["diagnoses"][1]["fix"]
    human = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "explain", str(SAMPLES / "pip-404-then-oom.log")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert human.returncode == 0 and "build-oom" in human.stdout and "\x1b[" not in human.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "explain", "/nonexistent/log"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_log_no_signature_matches_gets_a_labelled_guess_and_exit_1(tmp_path: Path):
    # Words no signature anticipated: the closest known cause is offered as a guess, and explain still
    # says (exit 1, status "unrecognised") that no known failure was recognised.
    log = tmp_path / "prose.txt"
    log.write_text("no kernel for my old card? compute capability 7.5 here\n")
    assert code("explain", str(log), "--no-probe") == 1
    human = " ".join(run("explain", str(log), "--no-probe").stdout.split())  # unwrapped
    assert "no known failure recognised" in human
    assert "Closest known causes by wording" in human and "by resemblance only" in human
    assert "gpu-unsupported" in human
    doc = json.loads(run("explain", str(log), "--no-probe", "--json").stdout)
    jsonschema.validate(doc, load_schema("explain-report.schema.json"))
    assert doc["status"] == "unrecognised" and doc["recognised"] is False and doc["exit_code"] == 1
    assert [(d["code"], d["basis"]) for d in doc["diagnoses"]][:1] == [("gpu-unsupported", "resemblance")]


def test_a_bare_build_failure_of_an_old_release_is_named_from_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The index in use (here the bundled one, named as a user's index would be) says which torch each release's build matrix made wheels for.
    log = tmp_path / "old-release.log"
    log.write_text(
        "Collecting flash-attn==2.5.8\n  torch.__version__  = 2.6.0+cu124\n"
        "  RuntimeError: Error compiling objects for extension\n  ERROR: Failed building wheel for flash-attn\n"
    )
    monkeypatch.setenv("FLASHDOCTOR_WHEELS_INDEX", str(ROOT / "wheels_index.json"))
    r = run("explain", str(log), "--no-probe", "--json")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, load_schema("explain-report.schema.json"))
    first = doc["diagnoses"][0]
    assert (first["code"], first["basis"], first["line"]) == ("source-toolchain-mismatch", "versions", None)
    assert "wheels up to torch 2.3" in first["message"] and "flash-attn==2.8.3" in first["fix"]
    human = run("explain", str(log), "--no-probe").stdout
    assert "versions: flash-attn 2.5.8 and torch 2.6.0+cu124 in the log" in " ".join(human.split())


@pytest.mark.system
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_explain_reads_a_stdin_that_never_ends_exits_at_once(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """`tail -f build.log | flashdoctor explain -`: the log never ends; Ctrl-C or SIGTERM exits at once."""
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # held open: the reader never sees an end
    try:
        with open(fifo, "rb") as stdin:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flashdoctor", "explain", "-", "--no-probe"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                text=True,
                start_new_session=True,
            )
        os.write(writer, b"building wheel for flash-attn (setup.py) ...\n")
        time.sleep(2)  # into the read
        err = interrupted(proc, sig)
    finally:
        os.close(writer)
    assert proc.returncode == code and "Traceback" not in err, err
