"""The engine's rules: ranking, fallbacks, machine causes, fix tailoring, input normalisation, budgets."""

from __future__ import annotations

import pytest

from flashdoctor.decide.checks import check_installed
from flashdoctor.decide.explain import explain_bytes, explain_output, explain_text, import_diagnoser
from flashdoctor.decide.explain.engine import KEYWORD_LINE_BUDGET, find_key_lines, normalise
from flashdoctor.model.environment import Environment, FlashInstall
from flashdoctor.model.findings import Status
from flashdoctor.model.target import environment_from_target
from flashdoctor.render.console import make_console
from flashdoctor.render.explain import format_diagnoses, render_diagnoses
from tests.support.targets import target_env

UNDEF = (
    "ImportError: /venv/lib/python3.12/site-packages/flash_attn_2_cuda.cpython-312-x86_64-linux-gnu.so: "
    "undefined symbol: _ZN3c104cuda9SetDeviceEi"
)
STUCK = "Building wheels for collected packages: flash-attn\n  Building wheel for flash-attn (setup.py) ... -"
GUESS = "Guessing wheel URL:  https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/flash_attn-2.8.3+cu12torch2.9cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"


def codes(text: str, env: Environment | None = None) -> list[str]:
    # These rules concern a log from the machine given (flashdoctor's own commands, `explain --here`).
    return [d.code for d in explain_text(text, env, here=True)]


# -- ranking -----------------------------------------------------------------------------------
def test_404_then_compile_failure_puts_the_download_first_and_marks_the_build_a_consequence():
    log = "\n".join(
        [
            GUESS,
            "urllib.error.HTTPError: HTTP Error 404: Not Found",
            "Precompiled wheel not found. Building from source...",
            *(f"[{i}/73] nvcc -c flash_fwd_hdim{i}.cu" for i in range(1, 60)),
            'csrc/flash_attn/src/flash_fwd_kernel.h(70): error: identifier "__shfl_sync" is undefined',
            "ninja: build stopped: subcommand failed.",
            "ERROR: Failed building wheel for flash-attn",
        ]
    )
    diags = explain_text(log)
    # The compile error is inside flash-attn's own sources: the sources do not fit this toolchain (a
    # consequence of the missing wheel); the build's failure is its symptom.
    assert [d.code for d in diags] == ["wheel-download-failed", "source-toolchain-mismatch", "build-failed"]
    assert diags[0].line == 2
    assert diags[1].consequence_of == "wheel-download-failed"
    assert "error: identifier" in diags[1].evidence  # the first compiler error, not "build stopped"
    assert diags[1].confidence < diags[0].confidence


def test_the_wheel_miss_comes_before_the_oom_of_the_build_it_caused():
    # setup.py found no wheel, so it compiled, and the compile ran out of memory: two causes, in order.
    log = "\n".join(
        [
            GUESS,
            "Precompiled wheel not found. Building from source...",
            "[3/73] nvcc -c a.cu",
            "Killed",
            "ninja: build stopped: subcommand failed.",
        ]
    )
    diags = explain_text(log, target_env("cpu-box"), here=True)  # 23 GB, 2 CPUs
    assert [d.code for d in diags][:2] == ["wheel-download-failed", "build-oom"]
    assert diags[0].consequence_of is None and diags[1].consequence_of == "wheel-download-failed"
    assert "MAX_JOBS=1" in diags[1].fix and "23 GB" in diags[1].fix
    oom = next(d for d in explain_text(log, target_env("h100"), here=True) if d.code == "build-oom")
    assert "MAX_JOBS=8" in oom.fix  # 120 GB, 16 CPUs: cpus/2 wins
    oom = next(d for d in explain_text(log) if d.code == "build-oom")
    assert "MAX_JOBS=<free GB / 9" in oom.fix  # no machine: the rule, not a number


def test_caller_fields_tailor_the_fix_and_win_over_the_machine():
    # The build knows the MAX_JOBS it ran with; explain alone does not. Passed as fields, they pick
    # the build's own alternative; without them the machine's advice stays.
    log = "[3/73] nvcc -c a.cu\nKilled\nninja: build stopped: subcommand failed."
    env = target_env("h100")
    plain = explain_text(log, env, here=True)[0]
    assert plain.code == "build-oom" and "MAX_JOBS=8" in plain.fix and "--max-jobs" not in plain.fix
    built = explain_text(log, env, fields={"jobs_used": "16", "fewer_jobs": "8"}, here=True)[0]
    assert built.code == "build-oom"
    assert "MAX_JOBS=16" in built.fix and "--max-jobs 8" in built.fix
    assert (
        explain_output(log, env, fields={"jobs_used": "6", "fewer_jobs": "3"})[0].fix
        == explain_text(log, env, fields={"jobs_used": "6", "fewer_jobs": "3"}, here=True)[0].fix
    )
    # A field the caller gives replaces the computed one everywhere it is named.
    stopped = "Building wheel for flash-attn\nninja: build stopped: subcommand failed."
    assert "MAX_JOBS=5" in explain_text(stopped, env, fields={"max_jobs": "5"}, here=True)[0].fix


def test_gcc_killed_by_the_oom_killer_is_oom_not_a_compiler_crash():
    log = "[5/73] c++ -c flash_api.cpp\ng++: internal compiler error: Killed (program cc1plus)"
    assert codes(log)[:1] == ["build-oom"] and "compiler-crash" not in codes(log)
    assert codes("[5/73] c++ -c x.cpp\ng++: internal compiler error: Segmentation fault")[:1] == [
        "compiler-crash"
    ]


def test_an_arch_the_toolkit_dropped_is_not_an_old_toolkit():
    assert codes("nvcc fatal   : Unsupported gpu architecture 'compute_70'") == ["nvcc-arch-dropped"]
    assert codes("nvcc fatal   : Value 'sm_70' is not defined for option 'gpu-code'") == ["nvcc-arch-dropped"]
    assert codes("nvcc fatal   : Unsupported gpu architecture 'compute_100'") == ["nvcc-too-old"]
    assert codes("nvcc fatal   : Unsupported gpu architecture 'sm_90a'") == ["nvcc-too-old"]
    assert codes("nvcc fatal   : Value 'sm_120' is not defined for option 'gpu-code'") == ["nvcc-too-old"]
    fix = explain_text(
        "nvcc fatal   : Unsupported gpu architecture 'compute_61'", target_env("h100"), here=True
    )[0].fix
    assert "compute_61" in fix and "FLASH_ATTN_CUDA_ARCHS=90" in fix


def test_no_torch_without_build_isolation_is_this_environment_not_isolation():
    err = "ModuleNotFoundError: No module named 'torch'"
    ran = "$ /venv/bin/python -m pip wheel --no-build-isolation --no-deps --no-index -v -w dist ."
    assert codes(f"{ran}\n{err}") == ["missing-build-deps"]
    assert codes(f"  Getting requirements to build wheel ... error\n{err}")[:1] == ["build-isolation"]
    # uv's hint suggests the flag; it did not run with it.
    hint = "hint: `uv pip install torch` into the environment and re-run with `--no-build-isolation`."
    assert codes(f"{err}\n{hint}")[:1] == ["build-isolation"]


def _backend_log(site: str, err: str) -> str:
    """pip's output of a failed metadata step, piped (`pip install flash-attn 2>&1 | flashdoctor explain -`:
    the command line is not in it), the build backend running from ``site``."""
    return "\n".join(
        [
            "  Preparing metadata (pyproject.toml): finished with status 'error'",
            "  error: subprocess-exited-with-error",
            f'        File "{site}/setuptools/build_meta.py", line 380, in prepare_metadata_for_build_wheel',
            "          self.run_setup()",
            '        File "<string>", line 12, in <module>',
            f"      {err}",
            "error: metadata-generation-failed",
        ]
    )


def test_a_backend_run_from_the_environments_own_site_packages_is_a_build_without_isolation():
    """Made with --no-build-isolation in a venv without packaging (stop 42): the traceback runs from the
    venv's setuptools, so the build saw the environment; build-isolation came first all the same."""
    err = "ModuleNotFoundError: No module named 'packaging'"
    own = "/home/u/venv/lib/python3.11/site-packages"
    assert codes(_backend_log(own, err))[:1] == ["missing-build-deps"]
    assert codes(_backend_log(own, "ModuleNotFoundError: No module named 'torch'"))[:1] == [
        "missing-build-deps"
    ]
    isolated = "/tmp/pip-build-env-orsiyy4c/overlay/lib/python3.11/site-packages"
    assert codes(_backend_log(isolated, err))[:1] == ["build-isolation"]
    uv = "/home/u/.cache/uv/builds-v0/.tmpAbCd12/lib/python3.11/site-packages"
    assert codes(_backend_log(uv, err))[:1] == ["build-isolation"]
    # review: uv 0.1 built in ~/.cache/uv/.tmpXXXX/.venv (read as the environment's own); a system Python's
    # dist-packages (Debian, NGC containers) was not read as the environment's own
    old_uv = "/home/u/.cache/uv/.tmpsCJzgg/.venv/lib/python3.11/site-packages"
    assert codes(_backend_log(old_uv, err))[:1] == ["build-isolation"]
    system = "/usr/local/lib/python3.10/dist-packages"
    assert codes(_backend_log(system, err))[:1] == ["missing-build-deps"]


def test_setup_requires_that_cannot_be_fetched_is_a_missing_build_dependency():
    log = "ERROR: Could not find a version that satisfies the requirement psutil (from versions: none)"
    assert codes(log) == ["missing-build-deps"]
    assert codes("ERROR: No matching distribution found for flash-attn-4")[:1] == ["no-matching-wheel"]


def test_a_kernel_the_narrowed_build_lacks_is_not_a_torch_mismatch():
    link = "flash_api.cpp:(.text+0x19): undefined reference to `void run_mha_bwd_<cutlass::half_t, 64, true>(Flash_bwd_params&, CUstream_st*)'"
    d = explain_text(link)[0]
    assert d.code == "build-kernel-missing" and "run_mha_bwd_<cutlass::half_t, 64, true>" in d.message
    assert codes("ImportError: x.so: undefined symbol: _ZN3c104cuda9SetDeviceEi")[:1] == [
        "torch-abi-mismatch"
    ]


def test_killed_outside_a_build_is_not_an_oom_build():
    assert "build-oom" not in codes("python train.py\nKilled")


def test_max_jobs_is_judged_against_the_machine_memory():
    line = "Using envvar MAX_JOBS (12) as the number of workers...\nCompiling objects..."
    assert "build-oom" not in codes(line)  # 12 x 9 GB fits the 128 GB assumed without a machine
    assert codes(line, target_env("cpu-box"))[:1] == ["build-oom"]  # 108 GB > 23 GB
    assert "build-oom" not in codes(line, Environment(memory_gb=500.0, cpus=64))
    assert codes("Using envvar MAX_JOBS (48) as the number of workers...")[:1] == ["build-oom"]


def test_a_stuck_build_lists_its_possible_causes_only_when_nothing_else_is_found():
    assert codes(STUCK) == ["build-slow", "ninja-missing", "network-unreachable"]
    # The machine has no ninja: that becomes the first explanation.
    assert codes(STUCK, Environment(ninja=False))[0] == "ninja-missing"
    # The machine has ninja: that reading is dropped.
    assert "ninja-missing" not in codes(STUCK, Environment(ninja=True))
    # A failure in the same log is the answer, not the guesses.
    assert codes(STUCK + "\n" + UNDEF)[0] == "torch-abi-mismatch"
    assert "build-slow" not in codes(STUCK + "\n" + UNDEF)
    # A finished install is not stuck.
    assert codes(STUCK + "\nSuccessfully installed einops-0.8.1 flash-attn-2.8.3") == []


def test_windows_build_gets_the_windows_advice():
    log = "PS C:\\proj> pip install flash-attn\n" + STUCK
    assert "Windows" in explain_text(log)[0].fix
    assert (
        "Windows" in explain_text(STUCK, environment_from_target({"platform": "win_amd64"}), here=True)[0].fix
    )


def test_abi_reading_depends_on_the_torch_abi():
    line = "undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
    assert codes(line)[0] == "cxx11-abi-mismatch"  # unknown torch: the usual reading
    assert codes(line, Environment(cxx11abi=False, torch="2.6.0+cu124"))[0] == "cxx11-abi-mismatch"
    # A new-ABI torch exports __cxx11 symbols: a missing one means another torch version.
    assert codes(line, Environment(cxx11abi=True, torch="2.9.0+cu128"))[0] == "torch-abi-mismatch"


def test_rocm_context_turns_missing_nvcc_into_rocm_unsupported():
    log = "torch.__version__  = 2.5.1+rocm6.2\nUserWarning: flash_attn was requested, but nvcc was not found."
    diags = explain_text(log)
    assert [d.code for d in diags][:2] == ["rocm-unsupported", "nvcc-missing"]
    assert diags[1].consequence_of == "rocm-unsupported"
    # ... also when the machine (not the log) says torch is a ROCm build
    only = "UserWarning: flash_attn was requested, but nvcc was not found."
    assert codes(only)[0] == "nvcc-missing"
    assert codes(only, target_env("rocm-mi300"))[0] == "rocm-unsupported"


def test_bare_build_failure_gets_the_machines_own_build_blockers():
    log = "Building wheel for flash-attn (setup.py) ... error\nERROR: Failed building wheel for flash-attn"
    assert codes(log) == ["build-failed"]
    env = Environment(gcc="13.2.0", nvcc="12.3", ninja=False, torch="2.5.1+cu124", torch_cuda="12.4")
    diags = explain_text(log, env, here=True)
    by = {d.code: d for d in diags}
    assert diags[-1].code == "build-failed"
    assert {"host-compiler-unsupported", "ninja-missing"} <= set(by)
    assert by["host-compiler-unsupported"].basis == "machine" and by["host-compiler-unsupported"].line is None
    assert "gcc-12" in by["host-compiler-unsupported"].fix
    # A log with its own cause is not second-guessed with the machine's.
    assert codes(log + "\nKilled", env)[0] == "build-oom"
    assert "host-compiler-unsupported" not in codes(log + "\nKilled", env)


def test_symptoms_alone_are_still_an_answer_and_follow_causes_otherwise():
    assert codes("ninja: build stopped: subcommand failed.") == ["build-failed"]
    diags = explain_text("ImportError: flash_attn_2_cuda.so: invalid ELF header\n" + UNDEF)
    assert [d.code for d in diags] == ["torch-abi-mismatch", "flash-attn-import-error"]
    assert diags[1].consequence_of == "torch-abi-mismatch"
    # ... but a symptom read off the cause's own line is not repeated.
    assert codes(UNDEF) == ["torch-abi-mismatch"]


def test_confidences_are_sorted_and_in_range():
    log = "\n".join(
        [
            GUESS,
            "urllib.error.HTTPError: HTTP Error 404: Not Found",
            "Killed",
            "ninja: build stopped: x",
            UNDEF,
        ]
    )
    diags = explain_text(log)
    conf = [d.confidence for d in diags]
    assert conf == sorted(conf, reverse=True)
    assert all(0 < c <= 1 for c in conf)


# -- tailoring ------------------------------------------------------------------------------------
def test_abi_fix_names_the_wheel_from_the_selector_for_this_machine():
    calls = []

    def finder(env, variant):  # the wheel selector's shape: (Environment, Variant) -> file name
        calls.append((env.torch, variant))
        return "flash_attn-2.8.3+cu13torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"

    env = target_env("h100")
    d = explain_text(UNDEF, env, wheel_finder=finder, here=True)[0]
    assert calls == [("2.11.0+cu130", "fa2")]
    assert "flash_attn-2.8.3+cu13torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl" in d.fix
    # Without a selector the fix still names the wheel's tags for this machine.
    d = explain_text(UNDEF, env, here=True)[0]
    assert "torch 2.11, CUDA 13, cxx11abiTRUE, cp312" in d.fix
    assert "cu13torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64" in d.fix
    # A selector that finds nothing, or fails on the network, falls back the same way.
    from flashdoctor.errors import NetworkError

    def broken(env, variant):
        raise NetworkError("index unreachable")

    assert "cu13torch2.11" in explain_text(UNDEF, env, wheel_finder=broken, here=True)[0].fix
    # The selector answered "no wheel fits" (official FA2 wheels stop at torch 2.10): rebuild, don't
    # send the user looking for a wheel that does not exist.
    fix = explain_text(UNDEF, env, wheel_finder=lambda e, v: None, here=True)[0].fix
    assert "No prebuilt flash-attn wheel fits" in fix and "--from-source" in fix
    # No machine: general advice, no unfilled template field.
    assert "{" not in explain_text(UNDEF)[0].fix


def test_variant_follows_the_log():
    fa3 = "[2/293] nvcc -c /src/flash-attention/hopper/instantiations/flash_fwd_hdim128_bf16_sm90.cu -gencode arch=compute_90a,code=sm_90a\nKilled"
    assert explain_bytes(fa3.encode()).variant == "fa3"
    assert "--fa3" in explain_text(fa3)[0].fix
    fa2_with_hopper_files = "copying hopper/flash_attn_interface.py -> build/lib/hopper\ncopying flash_attn/cute/interface.py -> build/lib/flash_attn/cute\nKilled\n[1/73] nvcc"
    assert explain_bytes(fa2_with_hopper_files.encode()).variant == "fa2"
    assert explain_bytes(b"ModuleNotFoundError: No module named 'flash_attn.cute'").variant == "fa4"


def test_gpu_fix_uses_the_machine_gpu():
    line = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    assert "FLASH_ATTN_CUDA_ARCHS=120" in explain_text(line, target_env("rtx5090"), here=True)[0].fix
    assert (
        "FLASH_ATTN_CUDA_ARCHS=80" in explain_text(line, target_env("rtx4090"), here=True)[0].fix
    )  # sm_89 runs sm_80 code
    assert "SDPA" in explain_text(line, target_env("v100"), here=True)[0].fix


def test_no_torch_on_the_machine_changes_the_isolation_fix():
    line = "ModuleNotFoundError: No module named 'torch'"
    assert "--no-build-isolation" in explain_text(line)[0].fix
    fix = explain_text(line, target_env("no-torch"), here=True)[0].fix
    assert "torch is not installed" in fix


def test_a_script_whose_own_import_of_torch_fails_is_not_a_build_isolation():
    # Produced on the GPU machine: a venv that does not see the machine's torch runs a script.
    log = (
        "Traceback (most recent call last):\n"
        '  File "/tmp/t3.py", line 1, in <module>\n'
        "    import sys, torch\n"
        "ModuleNotFoundError: No module named 'torch'\n"
    )
    assert "build-isolation" not in [d.code for d in explain_text(log)]
    # ... while setup.py's own import of torch in a build still is, and so is the bare line.
    build = (
        "  Getting requirements to build wheel ... error\n"
        '    File "/tmp/pip-install-x/flash-attn_0/setup.py", line 19, in <module>\n'
        "      import torch\n"
        "  ModuleNotFoundError: No module named 'torch'\n"
    )
    assert explain_text(build)[0].code == "build-isolation"
    assert explain_text("ModuleNotFoundError: No module named 'torch'")[0].code == "build-isolation"


def test_facts_from_the_log_fill_fixes_without_a_machine():
    log = "torch.__version__  = 2.3.1+cu121\nRuntimeError: FlashAttention is only supported on CUDA 11.6 and above."
    d = explain_text(log)[0]
    assert d.code == "nvcc-too-old" and "12.1" in d.fix and "11.6" in d.fix


# -- input ---------------------------------------------------------------------------------------
def test_utf16_crlf_ansi_and_junk_bytes():
    text = "noise\r\n\x1b[31mERROR: \x1b[0m" + UNDEF + "\r\nmore\r\n"
    for data in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-16-be"), text.encode()):
        expl = explain_bytes(data)
        assert [d.code for d in expl.diagnoses][:1] == ["torch-abi-mismatch"], data[:20]
        assert expl.diagnoses[0].line == 2
        assert "\x1b" not in expl.diagnoses[0].evidence
    junk = b"\xff\xfe\xfd garbage \x00\x01\n" + UNDEF.encode() + b"\n\xc3\x28 invalid utf-8"
    assert [d.code for d in explain_bytes(junk).diagnoses][:1] == ["torch-abi-mismatch"]
    assert normalise(b"a\r\nb\rc") == b"a\nb\nc"


def test_a_web_pages_entities_and_spaces_read_as_the_log():
    assert normalise(b"File &quot;x.py&quot;, a &lt; b &amp;&amp; c &#39;d&#x27; &amp;lt;") == (
        b"File \"x.py\", a < b && c 'd' &lt;"
    )
    assert normalise("a\u00a0b\u202fc\u3000d".encode()) == b"a b c d"
    assert normalise("flash_\u200battn\ufeff".encode()) == b"flash_attn"
    assert normalise(b"a & b; c && d") == b"a & b; c && d"  # no entity: left as it is
    escaped = UNDEF.replace("'", "&#39;").replace('"', "&quot;")
    assert [d.code for d in explain_bytes(escaped.encode()).diagnoses][:1] == ["torch-abi-mismatch"]


@pytest.mark.parametrize(
    "prefix",
    [
        "[rank0]: ",
        "[default3]:",
        "2026-12-06T18:00:01.1234567Z ",
        "#12 45.678 ",
        "0: ",
        "> ",
        "Dec  6 12:00:01 gpu01 python3[4242]: ",
        "(RayWorkerWrapper pid=2931625) ",
        "(vLLMHttpServer pid=2930657) (EngineCore_DP0 pid=2931625, ip=10.0.0.7) ",
        "[pod/train-0/trainer] ",
    ],
)
def test_a_prefix_on_every_line_is_read_past(prefix: str):
    lines = [
        "Traceback (most recent call last):",
        '  File "train.py", line 3, in <module>',
        "ImportError: " + UNDEF,
    ]
    data = "\n".join(prefix + ln for ln in lines).encode()
    assert normalise(data) == "\n".join(lines).encode()
    d = explain_bytes(data).diagnoses[0]
    assert (d.code, d.line) == ("torch-abi-mismatch", 3)


def test_a_prefix_on_a_few_lines_stays():
    data = b"> python train.py\nTraceback (most recent call last):\nImportError: x\nsomething\n0: one\n"
    assert normalise(data) == data


def test_control_characters_never_reach_the_evidence():
    d = explain_bytes(b"\x07\x1b" + UNDEF.encode() + b"\x1b\x00").diagnoses[0]
    assert not any(ord(c) < 32 for c in d.evidence)


def test_long_lines_keep_the_match_in_the_evidence():
    line = "x" * 5000 + " " + UNDEF + " " + "y" * 5000
    d = explain_text(line)[0]
    assert len(d.evidence) <= 405 and "SetDeviceEi" in d.evidence


def test_a_frequent_keyword_is_retired_without_losing_later_causes():
    # Thousands of lines that hit the 'error' keyword, then the real cause at the very end.
    noise = "\n".join(f"src/file{i}.cu(1): error: something {i}" for i in range(KEYWORD_LINE_BUDGET * 20))
    diags = explain_text(noise + "\n" + UNDEF)
    assert diags[0].code == "torch-abi-mismatch"
    assert diags[0].line == KEYWORD_LINE_BUDGET * 20 + 1
    assert "file0.cu" in next(d for d in diags if d.code == "build-failed").evidence


def test_empty_input():
    expl = explain_bytes(b"")
    assert expl.diagnoses == () and expl.key_lines == () and expl.lines == 0


# -- key lines -----------------------------------------------------------------------------------
def test_key_lines_prefer_errors_and_the_final_exception_over_warnings():
    log = "\n".join(
        [
            "UserWarning: something is deprecated",
            "step 1",
            "FutureWarning: old api",
            "Traceback (most recent call last):",
            '  File "x.py", line 3, in <module>',
            "ValueError: the real problem",
        ]
    ).encode()
    lines = find_key_lines(log)
    assert [k.line for k in lines] == [4, 6]
    assert lines[-1].text == "ValueError: the real problem"
    assert find_key_lines(b"one\ntwo\nthree") == find_key_lines(b"one\ntwo\nthree\n")
    assert [k.text for k in find_key_lines(b"a\nb\nwarning: x\n")] == ["a", "b"]


# -- for other commands --------------------------------------------------------------------------
def test_explain_output_helper_and_renderers():
    diags = explain_output(UNDEF.encode(), target_env("h100"), limit=1)
    assert [d.code for d in diags] == ["torch-abi-mismatch"]
    text = format_diagnoses(diags)
    assert text.startswith("[torch-abi-mismatch]") and "line 1: " in text and "fix: " in text
    import io

    buf = io.StringIO()
    render_diagnoses(
        explain_output(UNDEF + "\nninja: build stopped: x", None, limit=None), make_console(buf), limit=1
    )
    out = buf.getvalue()
    assert "torch-abi-mismatch" in out and "SetDeviceEi" in out and "1 more" in out
    assert explain_output("") == [] and format_diagnoses([]) == ""


def test_check_names_the_wheel_when_it_has_a_wheel_finder():
    from flashdoctor.decide.explain import run_checks

    env = target_env("a100").replace(
        installed=(FlashInstall(dist="flash-attn", version="2.5.7", import_ok=False, import_error=UNDEF),)
    )
    wheel = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    report = run_checks(env, wheel_finder=lambda e, v: wheel if v == "fa2" else None)
    f = next(f for f in report.findings if f.code == "flash-attn-import-error")
    assert wheel in (f.fix or "")


def test_check_explains_a_failed_import_with_the_engine():
    env = target_env("h100").replace(
        installed=(FlashInstall(dist="flash-attn", version="2.8.3", import_ok=False, import_error=UNDEF),)
    )
    f = next(f for f in check_installed(env, import_diagnoser()) if f.code == "flash-attn-import-error")
    assert f.status is Status.FAIL
    assert "built for another torch version" in f.message
    assert "cu13torch2.11cxx11abiTRUE" in (f.fix or "")


def test_cuda_home_hint_prefers_a_toolkit_directory():
    log = "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root."
    env = environment_from_target(
        {
            "nvcc": "12.8",
            "nvcc_path": "/usr/local/bin/nvcc",
            "cuda_home": "/usr/local",
            "cuda_home_headers": False,
            "torch": "2.7.1+cu128",
            "nvccs": [
                {"path": "/usr/local/bin/nvcc", "version": "12.8"},
                {"path": "/usr/local/cuda-12.8/bin/nvcc", "version": "12.8"},
            ],
        }
    )
    assert "export CUDA_HOME=/usr/local/cuda-12.8" in explain_text(log, env, here=True)[0].fix
    fix = explain_text(log, env, wheel_finder=lambda e, v: None, here=True)[0].fix
    assert fix.startswith("No prebuilt wheel fits") and "CUDA_HOME=/usr/local/cuda-12.8" in fix


def test_a_log_without_line_breaks_is_read_in_windows_and_fast():
    import time

    blob = ("x" * 200 + " warning: nothing ") * 20000  # ~4 MB on one line
    data = (blob + UNDEF + " " + blob + " Killed ninja: build stopped").encode()
    t = time.perf_counter()
    diags = explain_bytes(data).diagnoses
    assert time.perf_counter() - t < 5  # a bound, not a benchmark: quadratic behaviour would take minutes
    assert [d.code for d in diags][:1] == ["torch-abi-mismatch"] and diags[0].line == 1
    assert len(diags[0].evidence) <= 405


def test_a_log_pasted_as_a_string_literal_is_split_on_escaped_line_breaks():
    text = "\\n".join(["Building wheel for flash-attn (setup.py) ... error", *(["noise"] * 300), UNDEF])
    diags = explain_text(text)
    assert diags[0].code == "torch-abi-mismatch" and diags[0].line == 302


def test_flashdoctors_own_no_code_for_this_gpu_messages_are_recognised():
    # Seen on the GPU machine (2026-12-06): an FA2 build for sm_110 only, installed on an H100, failed the smoke
    # test with "the binary has no code for GPU 0 ... (sm_90)", and explain on install's output recognised
    # nothing. The smoke classifier's own words are explained here, with check's and the wheelhouse's.
    from flashdoctor.decide.smoke.classify import classify_error
    from flashdoctor.model.cases import SMOKE_CASES_CUDA
    from flashdoctor.model.smoke import GpuInfo

    gpu = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 79.1)
    smoke = classify_error(
        "RuntimeError: CUDA error: no kernel image is available for execution on the device",
        "fa2",
        SMOKE_CASES_CUDA[0],
        gpu,
    ).reason
    assert "no code for" in smoke
    for line in (
        f" ✗ smoke test      FA2 flash_attn 2.8.3.post2 hd128 bf16: {smoke} 10.0s",
        "flashdoctor install fa2: rolled-back — the smoke test of flash-attn 2.8.3.post2+fd.sm110 failed: FA2 on"
        " GPU 0 NVIDIA H100 80GB HBM3 (sm_90): the binary has no code for GPU 0 NVIDIA H100 80GB HBM3 (sm_90)",
        "flash_attn-2.8.3+fd.sm110-cp312-cp312-linux_x86_64.whl has no code for sm_90 (built for sm_110)",
    ):
        assert [d.code for d in explain_text(line)][:1] == ["gpu-unsupported"], line


def test_one_reading_of_a_log_explained_for_several_machines_is_explain_bytes_for_each():
    # The evaluation measures read a log once and explain it for every target (read_log, then explain_bytes of the reading):
    # that must give what explain_bytes gives, whichever machine came before (the reading is shared).
    from flashdoctor.decide.explain.engine import read_log
    from tests.decide.explain.foreign import tune_cases
    from tests.support.targets import bundled_finder

    finder = bundled_finder()
    machines = [target_env("h100"), None, target_env("cpu-box"), target_env("h100")]
    for case in tune_cases()[::20]:  # five logs of different failures (each costs ~15 explains)
        data = str(case["log"]).encode("utf-8")
        reading = read_log(data)
        for env in machines:
            for here in (False, True):
                got = explain_bytes(reading, env, finder, here=here)
                assert got == explain_bytes(data, env, finder, here=here), (case["id"], here)


def test_a_cpu_torch_build_without_isolation_is_not_told_to_turn_isolation_off():
    """The fix for a CPU torch doing the build ended "use --no-build-isolation" also for a build that ran
    without isolation (stop 42: README's `pip install flash-attn --no-build-isolation 2>&1 | flashdoctor
    explain -`, run for real in a venv with the CPU torch; its lines, the paths shortened)."""

    def log(site: str) -> str:
        return (
            "  × Preparing metadata (pyproject.toml) did not run successfully.\n"
            "      torch.__version__  = 2.13.0+cpu\n"
            f'        File "{site}/setuptools/build_meta.py", line 380, in prepare_metadata_for_build_wheel\n'
            "      OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.\n"
        )

    own = explain_text(log("/home/u/venv/lib/python3.11/site-packages"))
    assert own[0].code == "no-cuda-device"
    assert "--no-build-isolation" not in own[0].fix and "CUDA build of torch" in own[0].fix
    isolated = explain_text(log("/tmp/pip-build-env-orsiyy4c/overlay/lib/python3.11/site-packages"))
    assert isolated[0].code == "no-cuda-device"
    assert "use --no-build-isolation" in isolated[0].fix  # where isolation was on, the advice stands


def test_a_build_killed_with_max_jobs_set_is_not_told_to_set_the_same_max_jobs():
    """A build that ran out of memory with MAX_JOBS=4 on its command line was told
    "MAX_JOBS=<free GB / 9, e.g. 4> NVCC_THREADS=2 pip install flash-attn --no-build-isolation": the command
    that had just failed (stop 42 audit; dev2's fa-2051, a server that froze with MAX_JOBS=4)."""

    def log(command: str) -> str:
        return (
            f"$ {command}\n"
            "Building wheels for collected packages: flash-attn\n"
            "  Building wheel for flash-attn (setup.py) ... error\n"
            "  [5/49] /usr/local/cuda/bin/nvcc -c flash_fwd_hdim128_fp16_sm80.cu -o flash_fwd_hdim128_fp16_sm80.o\n"
            "  Killed\n"
            "  ninja: build stopped: subcommand failed.\n"
        )

    for command in (
        "MAX_JOBS=4 pip install flash-attn --no-build-isolation",
        "MAX_JOBS=4 NVCC_THREADS=2 python -m pip install flash-attn --no-build-isolation",
        "export MAX_JOBS=4 && uv pip install flash-attn --no-build-isolation",
        "MAX_JOBS=4 python setup.py install",
    ):
        set_ = explain_text(log(command))
        assert set_[0].code == "build-oom", command
        assert "e.g. 4" not in set_[0].fix and "MAX_JOBS set" in set_[0].fix, command
    unset = explain_text(log("pip install flash-attn --no-build-isolation"))
    assert unset[0].code == "build-oom"
    assert "e.g. 4" in unset[0].fix  # without MAX_JOBS in the log, the general advice stands


def test_a_windows_build_without_nvcc_or_cuda_home_gets_windows_advice():
    """A Windows log that lacks nvcc or CUDA_HOME and does not name torch's CUDA was told to "export
    CUDA_HOME=<its directory, e.g. /usr/local/cuda-12.8>" and to "use a -devel image": a Linux shell's
    command and a Linux container's tag (stop 42 audit; dev2's fa-948 and dev4's open-sora-237)."""
    head = (
        "(venv) PS C:\\Users\\ana\\proj> pip install flash-attn --no-build-isolation\n"
        "  Building wheel for flash-attn (setup.py) ... error\n"
        '      File "C:\\Users\\ana\\proj\\venv\\Lib\\site-packages\\torch\\utils\\cpp_extension.py", line 2035\n'
    )
    for last, code in (
        ("  'nvcc' is not recognized as an internal or external command,", "nvcc-missing"),
        ("      OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
         "cuda-home-missing"),
    ):  # fmt: skip
        got = explain_text(head + last + "\n")
        assert got[0].code == code
        assert "Windows" in got[0].fix and "MSVC" in got[0].fix, got[0].fix
        assert "export " not in got[0].fix and "/usr/local" not in got[0].fix and "-devel" not in got[0].fix


WINDOWS_CUDA_HOME_LOG = (
    "(venv) PS C:\\Users\\ana\\proj> pip install flash-attn --no-build-isolation\n"
    "  Building wheel for flash-attn (setup.py) ... error\n"
    '      File "C:\\Users\\ana\\proj\\venv\\Lib\\site-packages\\torch\\utils\\cpp_extension.py", line 2035\n'
    "      OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.\n"
)


def test_a_probed_windows_machine_gets_its_own_toolkit_and_wheel_facts_in_windows_shell_words():
    """On a probed Windows machine cuda-home-missing gave the one Windows alternative before the machine's:
    "Install a prebuilt wheel (flashdoctor install ...)" where the wheel selector had found none, and never
    the toolkit the probe found; the machine's alternatives said `export CUDA_HOME=`, a Linux shell's
    command (stop 42 audit)."""
    toolkit = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v13.0"
    found = target_env("h100", platform="win_amd64", cuda_home=toolkit, cuda_home_headers=True)
    bare = target_env("h100", platform="win_amd64", cuda_home=None, nvccs=[])
    for env, finder, start, named in (
        (found, None, "This machine's toolkit", toolkit),
        (found, lambda e, v: None, "No prebuilt wheel fits", toolkit),
        (bare, lambda e, v: None, "No prebuilt wheel fits", "CUDA 13.0 toolkit"),
    ):
        fix = explain_text(WINDOWS_CUDA_HOME_LOG, env, wheel_finder=finder, here=True)[0].fix
        assert fix.startswith(start) and named in fix and "$env:CUDA_HOME" in fix, fix
        assert "export " not in fix and "/usr/local" not in fix, fix


def test_windows_logs_get_windows_words_for_cuda_home_and_cmake_advice():
    """cuda-home-question and cmake-no-cuda-compiler said `export CUDA_HOME=/usr/local/cuda-12.x` and `export
    CUDACXX=<toolkit>/bin/nvcc` to a Windows log, where cmd and PowerShell have no `export` (stop 42 audit)."""
    question = (
        "How to set the CUDA_HOME on Windows? pip install flash-attn fails in (venv) PS C:\\Users\\ana\\proj>,\n"
        "the toolkit is in C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4\n"
    )
    cmake = (
        "-- Building for: Visual Studio 17 2022\n"
        "-- The CXX compiler identification is MSVC 19.38.33130.0\n"
        "-- Check for working CXX compiler: C:/Program Files/Microsoft Visual Studio/2022/BuildTools/VC/Tools/"
        "MSVC/14.38.33130/bin/Hostx64/x64/cl.exe - skipped\n"
        "CMake Error at CMakeLists.txt:2 (project):\n"
        "  No CMAKE_CUDA_COMPILER could be found.\n"
    )
    for log, code, var in ((question, "cuda-home-missing", "CUDA_HOME"), (cmake, "nvcc-missing", "CUDACXX")):
        got = explain_text(log)
        assert got[0].code == code
        assert f"$env:{var}" in got[0].fix, got[0].fix
        assert "export " not in got[0].fix and "/usr/local" not in got[0].fix, got[0].fix
    linux = explain_text(cmake.replace("cl.exe", "c++").replace("C:/", "/").replace("MSVC", "GNU"))
    assert "export CUDACXX=" in linux[0].fix  # a Linux log keeps the Linux advice


def test_torch_saying_it_used_max_jobs_counts_as_max_jobs_set():
    """torch's own "Using envvar MAX_JOBS (4) as the number of workers..." shows the build ran with MAX_JOBS
    set, yet build-oom still advised "MAX_JOBS=<free GB / 9, e.g. 4>" when the command line was not in
    the log (a pip log piped in; stop 42 audit)."""
    log = (
        "  Building wheel for flash-attn (setup.py) ... error\n"
        "  Using envvar MAX_JOBS (4) as the number of workers...\n"
        "  [5/49] /usr/local/cuda/bin/nvcc -c flash_fwd_hdim128_fp16_sm80.cu -o flash_fwd_hdim128_fp16_sm80.o\n"
        "  Killed\n"
        "  ninja: build stopped: subcommand failed.\n"
    )
    got = explain_text(log)
    assert got[0].code == "build-oom"
    assert "e.g. 4" not in got[0].fix and "MAX_JOBS set" in got[0].fix, got[0].fix


def test_a_probed_windows_machine_without_a_fitting_wheel_is_not_told_to_install_one_for_missing_nvcc():
    """nvcc-missing on a probed Windows machine gave "install a community wheel built for your Python, torch
    and CUDA" first where the wheel selector had found none (stop 42, found beside the cuda-home-missing fix)."""
    log = (
        "(venv) PS C:\\Users\\ana\\proj> pip install flash-attn --no-build-isolation\n"
        "  Building wheel for flash-attn (setup.py) ... error\n"
        "  'nvcc' is not recognized as an internal or external command,\n"
    )
    env = target_env("h100", platform="win_amd64", cuda_home=None, nvccs=[])
    fix = explain_text(log, env, wheel_finder=lambda e, v: None, here=True)[0].fix
    assert (
        fix.startswith("No prebuilt wheel fits") and "CUDA 13.0 toolkit" in fix and "$env:CUDA_HOME" in fix
    ), fix
    assert "community wheel" not in explain_text(log, env, wheel_finder=lambda e, v: None, here=True)[0].fix
    assert "community wheel" in explain_text(log, env, here=True)[0].fix  # no wheel lookup: the advice stands


def test_a_linux_log_that_lists_a_windows_wheel_tag_gets_linux_advice():
    """pip -v lists the tags of every wheel it skips: a Linux log with `win_amd64` in such a line was read as
    a Windows log, and its CUDA_HOME fix came in PowerShell words (review, stop 42)."""
    log = (
        "  Skipping link: none of the wheel's tags (cp310-cp310-win_amd64) are compatible\n"
        '        File "/home/u/venv/lib/python3.10/site-packages/torch/utils/cpp_extension.py", line 1\n'
        "      OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.\n"
    )
    d = next(d for d in explain_text(log) if d.code == "cuda-home-missing")
    assert "$env:" not in d.fix and "MSVC" not in d.fix, d.fix


def test_a_probed_windows_machine_where_a_wheel_fits_is_told_that_first():
    """On a probed Windows machine where a wheel fits, nvcc-missing gave the generic "Windows has no official
    flash-attn wheels: install a community wheel built for your Python, torch and CUDA" before "No build
    needed: <wheel> fits this machine" (stop 43)."""
    env = target_env("h100", platform="win_amd64")
    wheel = "flash_attn-2.8.3+cu128torch2.8-cp312-cp312-win_amd64.whl"
    log = WINDOWS_CUDA_HOME_LOG.replace(
        "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
        "'nvcc' is not recognized as an internal or external command,",
    )
    got = explain_text(log, env, wheel_finder=lambda e, v: wheel, here=True)
    assert got[0].code == "nvcc-missing"
    assert got[0].fix.startswith(f"No build needed: {wheel} fits this machine"), got[0].fix


WINDOWS_TOOLKIT = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.8"


@pytest.mark.parametrize(
    "path",
    [
        WINDOWS_TOOLKIT + "\\bin\\nvcc.exe",
        '"' + WINDOWS_TOOLKIT + '\\bin\\nvcc.exe"',
        WINDOWS_TOOLKIT.replace("\\", "/") + "/bin/nvcc.exe",
        repr(WINDOWS_TOOLKIT + "\\bin\\nvcc.exe"),  # a Python repr doubles each backslash
        "-I" + WINDOWS_TOOLKIT + "\\include",
        '/LIBPATH:"' + WINDOWS_TOOLKIT + '\\lib\\x64"',
    ],
)
def test_a_windows_logs_toolkit_path_is_the_cuda_home_its_fix_names(path: str):
    """A Windows log that shows its toolkit (C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.8) got
    no CUDA_HOME from it, and with forward slashes was not even read as a Windows log (export
    CUDA_HOME=<its directory>) (stop 43)."""
    log = (
        "Building wheel for flash-attn (setup.py) ... error\n"
        "torch.__version__  = 2.7.1+cu128\n"
        f"  {path}\n"
        "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.\n"
    )
    got = explain_text(log)
    assert got[0].code == "cuda-home-missing"
    assert f"set CUDA_HOME={WINDOWS_TOOLKIT})" in got[0].fix, got[0].fix
    assert f'$env:CUDA_HOME = "{WINDOWS_TOOLKIT}"' in got[0].fix, got[0].fix
    assert "export " not in got[0].fix and "/usr/local" not in got[0].fix, got[0].fix


def test_a_toolkit_under_a_bin_directory_is_still_the_cuda_home_hint():
    """The toolkit root is what comes before nvcc's own bin/: cut at the first /bin/ (stop 43's rewrite),
    /sw/bin/cuda-12.4/bin/nvcc gave /sw, no toolkit, and no hint."""
    log = "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root."
    env = environment_from_target(
        {
            "nvcc": "12.4", "nvcc_path": "/sw/bin/cuda-12.4/bin/nvcc", "cuda_home": None, "torch": "2.6.0+cu124",
            "nvccs": [{"path": "/sw/bin/cuda-12.4/bin/nvcc", "version": "12.4"}],
        }
    )  # fmt: skip
    assert "export CUDA_HOME=/sw/bin/cuda-12.4" in explain_text(log, env, here=True)[0].fix


def test_a_probed_windows_machines_toolkit_without_cuda_home_is_its_cuda_home_hint():
    """The toolkit a probe of a Windows machine found (nvcc under ...\\CUDA\\v12.8\\bin, CUDA_HOME not set) was no
    CUDA_HOME hint: its directory's name (v12.8) does not say "cuda" (stop 43)."""
    nvcc = WINDOWS_TOOLKIT + "\\bin\\nvcc.exe"
    env = target_env(
        "h100", platform="win_amd64", cuda_home=None, nvcc="12.8", nvcc_path=nvcc,
        nvccs=[{"path": nvcc, "version": "12.8"}],
    )  # fmt: skip
    fix = explain_text(WINDOWS_CUDA_HOME_LOG, env, here=True)[0].fix
    assert fix.startswith("This machine's toolkit") and f"set CUDA_HOME={WINDOWS_TOOLKIT})" in fix, fix


CUDA_HOME_UNSET = (
    "      OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.\n"
)
WIN_WHEEL = "flash_attn-2.7.4.post1-cp310-cp310-win_amd64.whl"
TORCH_WIN_URL = "https://download.pytorch.org/whl/cu124/torch-2.6.0%2Bcu124-cp310-cp310-win_amd64.whl"


@pytest.mark.parametrize(
    "line",
    [
        f"  Downloading {TORCH_WIN_URL} (2529.6 MB)",
        f"  Downloading {WIN_WHEEL} (150.2 MB)",
        f"  Using cached {WIN_WHEEL} (150.2 MB)",
        f"Processing ./{WIN_WHEEL}",
        "ERROR: HTTP error 404 while getting https://github.com/oobabooga/flash-attention/releases/download/v2.5.6/"
        "flash_attn-2.5.6+cu118torch2.2.0cxx11abiFALSE-cp311-cp311-win_amd64.whl",
        "  Created wheel for xformers: filename=xformers-0.0.29-cp310-cp310-win_amd64.whl size=9 sha256=00ab",
        "  Guessing wheel URL:  https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.4/"
        "flash_attn-2.7.4+cu12torch2.6cxx11abiFALSE-cp310-cp310-win_amd64.whl",
    ],
)
def test_a_windows_wheel_the_platform_took_makes_a_windows_log(line: str) -> None:
    """pip downloads (or fails to), uses from its cache, processes or builds a win_amd64 wheel only on Windows
    (it refuses another platform's wheel before any of these lines), and setup.py guesses one only there: such a
    log with no other sign of Windows was read as OS-unknown, and its CUDA_HOME fix said `export CUDA_HOME=...`."""
    expl = explain_bytes(f"{line}\n{CUDA_HOME_UNSET}".encode(), None)
    assert "Windows" in expl.machine, expl.machine
    d = next(d for d in expl.diagnoses if d.code == "cuda-home-missing")
    assert "$env:CUDA_HOME" in d.fix and "export " not in d.fix, d.fix


@pytest.mark.parametrize(
    "line",
    [
        # a Linux user trying a Windows wheel, pip -v's skipped links, uv's hint, an index page's list
        f"ERROR: {WIN_WHEEL} is not a supported wheel on this platform.",
        f"ERROR: {TORCH_WIN_URL} is not a supported wheel on this platform.",
        "  Skipping link: none of the wheel's tags (cp310-cp310-win_amd64) are compatible (run pip debug --verbose"
        " to show compatible tags): https://example.org/flash_attn-2.7.4-cp310-cp310-win_amd64.whl",
        "ERROR: Ignored the following versions that require a different python version: 2.7.4 (win_amd64.whl)",
        "  hint: Wheels are available for `flash-attn` (v2.7.4) on the following platform: `win_amd64`",
        f"    {TORCH_WIN_URL}",
        "Successfully installed flash-attn-2.7.4.post1",
        # the other way round: a Windows user trying a Linux wheel is not on Linux
        "ERROR: flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl is not a supported wheel"
        " on this platform.",
        "ERROR: flash_attn-2.8.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl is not a supported"
        " wheel on this platform.",
    ],
)
def test_a_wheel_tag_the_platform_did_not_take_tells_no_os(line: str) -> None:
    expl = explain_bytes(f"{line}\n{CUDA_HOME_UNSET}".encode(), None)
    assert not any(os in expl.machine for os in ("Windows", "Linux")), expl.machine
    d = next(d for d in expl.diagnoses if d.code == "cuda-home-missing")
    assert "$env:" not in d.fix and "MSVC" not in d.fix, d.fix
