"""The build runner: ninja progress parsing, the first real error, diagnoses, and a real subprocess
that prints ninja-style lines and fails like nvcc does."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from flashdoctor.actions.source_build.runner import (
    Step,
    diagnose,
    first_error,
    parse_ninja_line,
    run_build,
)
from flashdoctor.render.progress import LineProgress
from tests.support.targets import target_env

NVCC_LINE = (
    "  [3/7] /usr/local/cuda/bin/nvcc --generate-dependencies-with-compile --dependency-output "
    "/s/build/temp/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.o.d -I/s/csrc/flash_attn "
    "-c -c /s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.cu -o /s/build/temp/flash_bwd_hdim128_bf16_sm80.o "
    "-gencode arch=compute_90,code=sm_90 --threads 2"
)


def test_parse_ninja_lines() -> None:
    s = parse_ninja_line(NVCC_LINE)
    assert s == Step(3, 7, "flash_bwd_hdim128_bf16_sm80.cu")
    s = parse_ninja_line("[2/7] c++ -MMD -MF x.o.d -c /s/csrc/flash_attn/flash_api.cpp -o x.o -O3")
    assert s == Step(2, 7, "flash_api.cpp")
    assert parse_ninja_line("[8/8] c++ -shared a.o b.o -o flash_attn_2_cuda.so") == Step(8, 8, None)
    for junk in ("building 'flash_attn_2_cuda' extension", "[9/8] x", "[0/0]", "see [1/2] below", "[a/b] x"):
        assert parse_ninja_line(junk) is None


PIP_FAILURE = textwrap.dedent(
    """\
    Processing /s
      Running command python setup.py bdist_wheel
      [1/7] c++ -c /s/csrc/flash_attn/flash_api.cpp -o flash_api.o
      [2/7] /usr/local/cuda/bin/nvcc -c /s/csrc/flash_attn/src/flash_fwd_hdim128_bf16_sm80.cu -o a.o
      FAILED: /s/build/temp/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.o
      /usr/local/cuda/bin/nvcc -c /s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.cu -o b.o
      /s/csrc/flash_attn/src/flash_bwd_kernel.h(123): error: identifier "acc_dq_reg" is undefined
            acc_dq_reg(0) = 0;
            ^
      1 error detected in the compilation of "/s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.cu".
      ninja: build stopped: subcommand failed.
      Traceback (most recent call last):
        File "/venv/lib/python3.12/site-packages/torch/utils/cpp_extension.py", line 2595, in _run_ninja_build
      subprocess.CalledProcessError: Command '['ninja', '-v', '-j', '7']' returned non-zero exit status 1.
      RuntimeError: Error compiling objects for extension
      error: subprocess-exited-with-error
    ERROR: Failed building wheel for flash_attn
    """
)


def test_first_error_is_the_compiler_error_not_the_consequences() -> None:
    fe = first_error(PIP_FAILURE.splitlines())
    assert fe is not None
    assert (
        fe.text.splitlines()[0]
        .strip()
        .startswith('/s/csrc/flash_attn/src/flash_bwd_kernel.h(123): error: identifier "acc_dq_reg"')
    )
    assert "acc_dq_reg(0) = 0;" in fe.text
    assert fe.line_no == 7


def test_first_error_gcc_style_and_python_fallback() -> None:
    gcc = [
        "noise",
        "/usr/include/crt/host_config.h:143:2: error: #error -- unsupported GNU version! gcc versions later than 15",
        "x",
    ]
    fe = first_error(gcc)
    assert fe is not None and "unsupported GNU version" in fe.text
    py = [
        "Traceback (most recent call last):",
        "RuntimeError: FlashAttention is only supported on CUDA 11.7 and above.",
    ]
    fe = first_error(py)
    assert fe is not None and "CUDA 11.7" in fe.text
    assert first_error(["all fine", "ERROR: Failed building wheel for flash_attn"]) is None


def test_diagnoses_for_common_failures() -> None:
    # The explain engine is the one matcher; the build adds what only it knows (its MAX_JOBS).
    oom = diagnose(
        "[3/7] nvcc ...\nKilled\nninja: build stopped", fields={"jobs_used": "8", "fewer_jobs": "4"}
    )
    assert oom[0].code == "build-oom" and "--max-jobs 4" in oom[0].fix and "MAX_JOBS=8" in oom[0].fix
    assert "build-failed" in [d.code for d in oom[1:]]  # "build stopped" follows from the OOM
    gnu = diagnose(
        "host_config.h:143:2: error: #error -- unsupported GNU version! gcc versions later than 15 are not supported!"
    )
    assert gnu[0].code == "host-compiler-unsupported" and "NVCC_CCBIN" in gnu[0].fix
    arch = diagnose("nvcc fatal   : Unsupported gpu architecture 'compute_100'")
    assert arch[0].code == "nvcc-too-old" and "12.8" in arch[0].fix
    dropped = diagnose("nvcc fatal   : Unsupported gpu architecture 'compute_70'")
    assert dropped[0].code == "nvcc-arch-dropped"
    assert diagnose("nothing to see") == []


def test_diagnoses_use_the_machine_and_the_build_log_header() -> None:
    # The runner's log starts with the pip command: --no-build-isolation, so a missing torch is this
    # environment's, and the machine (no torch here) tailors the fix.
    log = (
        "$ /venv/bin/python -m pip wheel --no-build-isolation --no-deps --no-index -v -w /w/dist /w/src\n"
        "# MAX_JOBS=4\n"
        "  ModuleNotFoundError: No module named 'torch'\n"
        "  Preparing metadata (setup.py) ... error\n"
    )
    diags = diagnose(log, target_env("no-torch"))
    assert diags[0].code == "missing-build-deps" and "build-isolation" not in [d.code for d in diags]
    assert "--python" in diags[0].fix


FAKE_BUILD = textwrap.dedent(
    """\
    import sys, time
    mode = sys.argv[1]
    print("Processing /s", flush=True)
    print("  [1/4] c++ -c /s/csrc/flash_attn/flash_api.cpp -o a.o", flush=True)
    time.sleep(0.05)
    print("  [2/4] /usr/local/cuda/bin/nvcc -c /s/csrc/flash_attn/src/flash_fwd_hdim128_bf16_sm80.cu -o b.o", flush=True)
    if mode == "ok":
        print("  [3/4] /usr/local/cuda/bin/nvcc -c /s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_sm80.cu -o c.o")
        print("  [4/4] c++ -shared a.o b.o c.o -o flash_attn_2_cuda.so")
        sys.exit(0)
    if mode == "oom":
        print("  nvcc error   : 'cicc' died due to signal 9 (Kill signal)", file=sys.stderr)
        print("  Killed", file=sys.stderr)
    else:
        print("  /s/csrc/flash_attn/src/flash_bwd_kernel.h(123): error: identifier \\"acc_dq_reg\\" is undefined", file=sys.stderr)
        print("        acc_dq_reg(0) = 0;", file=sys.stderr)
        print("        ^", file=sys.stderr)
    print("  ninja: build stopped: subcommand failed.")
    print("  RuntimeError: Error compiling objects for extension")
    sys.exit(1)
    """
)


@pytest.fixture()
def fake(tmp_path: Path) -> Path:
    p = tmp_path / "fake_build.py"
    p.write_text(FAKE_BUILD)
    return p


@pytest.mark.system
def test_runner_success_logs_everything_and_reports_progress(fake: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    log = tmp_path / "logs" / "build.log"
    res = run_build(
        [sys.executable, str(fake), "ok"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path,
        log,
        LineProgress(lines.append),
    )
    assert res.ok and res.returncode == 0
    assert (res.steps_done, res.steps_total) == (4, 4)
    assert res.compiled == (
        "flash_api.cpp",
        "flash_fwd_hdim128_bf16_sm80.cu",
        "flash_bwd_hdim128_bf16_sm80.cu",
    )
    assert [ln.split()[0] for ln in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "100%" in lines[-1] and "eta 0:00" in lines[-1]
    text = log.read_text()
    assert text.startswith("$ ") and "[4/4] c++ -shared" in text


@pytest.mark.system
def test_runner_failure_has_first_error_and_keeps_the_log(fake: Path, tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    res = run_build([sys.executable, str(fake), "error"], {"PATH": "/usr/bin:/bin"}, tmp_path, log)
    assert res.returncode == 1 and not res.ok
    assert (res.steps_done, res.steps_total) == (2, 4)
    assert res.first_error is not None
    assert 'flash_bwd_kernel.h(123): error: identifier "acc_dq_reg" is undefined' in res.first_error.text
    assert "acc_dq_reg(0) = 0;" in res.first_error.text
    assert "Error compiling objects" in log.read_text()  # stderr and stdout both in the log


@pytest.mark.system
def test_runner_oom_is_diagnosed_with_a_fix(fake: Path, tmp_path: Path) -> None:
    res = run_build(
        [sys.executable, str(fake), "oom"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path,
        tmp_path / "b.log",
        diag_fields={"jobs_used": "16", "fewer_jobs": "8"},
    )
    assert res.returncode == 1
    assert res.first_error is not None and "signal 9" in res.first_error.text
    assert res.diagnoses and res.diagnoses[0].code == "build-oom"
    assert "--max-jobs 8" in res.diagnoses[0].fix and "MAX_JOBS=16" in res.diagnoses[0].fix
    assert res.diagnoses[0].line is not None  # the engine's evidence line in the log


@pytest.mark.system
def test_runner_missing_command(tmp_path: Path) -> None:
    res = run_build([str(tmp_path / "no-such-python")], {}, tmp_path, tmp_path / "b.log")
    assert res.returncode == 127 and res.first_error is not None and "cannot start" in res.first_error.text


@pytest.mark.system
def test_runner_emits_started_steps_finished(fake: Path, tmp_path: Path) -> None:
    from tests.actions.source_build.test_build_fa3 import Recorder

    ok, bad = Recorder(), Recorder()
    run_build(
        [sys.executable, str(fake), "ok"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path,
        tmp_path / "a.log",
        ok,
        expected_steps=4,
    )
    assert ok.events[0] == ("started", 4) and ok.events[-1] == ("finished", True)
    assert ok.events[2] == ("step", 2, 4, "flash_fwd_hdim128_bf16_sm80.cu")
    run_build(
        [sys.executable, str(fake), "error"], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "b.log", bad
    )
    assert bad.events[0] == ("started", None) and bad.events[-1] == ("finished", False)
    assert [e[0] for e in bad.events].count("step") == 2


@pytest.mark.system
def test_the_log_is_never_written_through_a_link_and_a_bad_log_is_a_usage_error(tmp_path: Path) -> None:
    """The default log has a predictable name (<cache>/logs/build-fa2-<profile>.log): the old code opened it
    with open(..., "w"), so a link planted there had its target emptied and overwritten with the build's
    output; and a --log that cannot be written (a directory) crashed with exit 3. The install log already
    refused both (open_own_file); the build log is opened the same way and a refusal is exit 2."""
    from flashdoctor.errors import UsageError

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "logs" / "build-fa2-fd.sm90.log"
    log.parent.mkdir()
    log.symlink_to(victim)
    cmd = [sys.executable, "-c", "print('[1/1] c++ -c a.cpp')"]
    for bad in (log, tmp_path):
        with pytest.raises(UsageError, match="cannot write the build log"):
            run_build(cmd, {}, tmp_path, bad)
    assert victim.read_text() == "precious\n"
    log.unlink()
    log.write_text("an earlier build's log\n")
    assert run_build(cmd, {}, tmp_path, log).ok
    assert "an earlier build" not in log.read_text() and "[1/1]" in log.read_text()


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_build_starts_leaves_no_child_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str
) -> None:
    """`flashdoctor build` started pip with a subprocess.Popen of its own, outside the guard the target
    scripts' start has: Ctrl-C (or SIGTERM) that reached the main thread inside Popen, after the fork and
    before run_build held the child, lost its pid, and the build (in a session of its own, out of the
    terminal's reach) outlived flashdoctor. It starts through interpreter.start now: the signal is raised
    once the child is recorded, and stop_started (what Ctrl-C and SIGTERM run) stops it."""
    from tests.support.hung_python import stopped_after_a_signal_as_it_starts

    def start(hang: Path) -> object:
        return run_build([str(hang), "-m", "pip", "wheel", "."], {}, tmp_path, tmp_path / "b.log")

    assert stopped_after_a_signal_as_it_starts(tmp_path, monkeypatch, sig, start), "the build outlived it"
