"""Checks and verdicts, fed target specs of real machine kinds (no probing)."""

from __future__ import annotations

import pytest

from flashdoctor.decide.checks import CODES, build_jobs, gpu_support, pytorch_cuda_index
from flashdoctor.decide.explain import run_checks
from flashdoctor.model.environment import GPU, FlashInstall
from flashdoctor.model.findings import Status, Verdict
from flashdoctor.model.target import environment_from_target
from tests.support.targets import bundled_finder, one_gpu, target_env


def codes(report, status=None, variant="any"):  # type: ignore[no-untyped-def]
    return {
        f.code
        for f in report.findings
        if (status is None or f.status is status) and (variant == "any" or f.variant == variant)
    }


def verdicts(report):  # type: ignore[no-untyped-def]
    return {v: vv.verdict.value for v, vv in report.verdicts.items()}


# Each row: target, codes that must fail/warn, expected verdicts (no wheel index consulted here:
# wheel availability is the selector's business and is tested with it).
MACHINES = [
    (
        "cpu-box",
        {"no-gpu": Status.WARN, "torch-cpu-only": Status.WARN},
        ("unsupported", "unsupported", "unsupported"),
        0,
    ),
    (
        "t4",
        {"gpu-unsupported": Status.FAIL, "bf16-unsupported": Status.WARN},
        ("unsupported", "unsupported", "unsupported"),
        0,
    ),
    (
        "v100",
        {"gpu-unsupported": Status.FAIL, "bf16-unsupported": Status.WARN},
        ("unsupported", "unsupported", "unsupported"),
        0,
    ),
    ("a100", {"gpu-experimental": Status.WARN}, ("buildable", "buildable", "installable"), 0),
    ("rtx4090", {"gpu-experimental": Status.WARN}, ("buildable", "buildable", "installable"), 0),
    ("h100", {}, ("buildable", "buildable", "installable"), 0),
    ("h200", {}, ("buildable", "buildable", "installable"), 0),
    ("b200", {"gpu-unsupported": Status.FAIL}, ("buildable", "unsupported", "installable"), 0),
    (
        "rtx5090",
        {"gpu-unsupported": Status.FAIL, "gpu-experimental": Status.WARN},
        ("buildable", "unsupported", "installable"),
        0,
    ),
    (
        "jetson-orin",
        {"gpu-experimental": Status.WARN, "driver-too-old": Status.WARN},
        ("buildable", "buildable", "installable"),
        0,
    ),
    # Jetson Thor (sm_110): FA2 builds for it (torch's cpp_extension compiles sm_110: docs/build.md); FA3 has no
    # Blackwell kernels; FA4 runs there but does not target it. Before stop 28 FA2 was "unsupported" here.
    (
        "jetson-thor",
        {"gpu-unsupported": Status.FAIL, "gpu-experimental": Status.WARN},
        ("buildable", "unsupported", "installable"),
        0,
    ),
    (
        "rocm-mi300",
        {"torch-rocm": Status.WARN, "no-gpu": Status.WARN},
        ("unsupported", "unsupported", "unsupported"),
        0,
    ),
    ("old-driver", {"driver-too-old": Status.FAIL}, ("buildable", "buildable", "installable"), 1),
    ("nvcc-mismatch", {"nvcc-torch-mismatch": Status.WARN}, ("buildable", "buildable", "installable"), 0),
    ("no-torch", {"torch-missing": Status.FAIL}, ("buildable", "buildable", "installable"), 1),
]


@pytest.mark.parametrize(("name", "expected", "verdict", "exit_code"), MACHINES, ids=[m[0] for m in MACHINES])
def test_machine_table(name, expected, verdict, exit_code):  # type: ignore[no-untyped-def]
    report = run_checks(target_env(name), source=f"target:{name}")
    for code, status in expected.items():
        assert code in codes(report, status), (code, [f.to_json() for f in report.findings])
    assert tuple(verdicts(report).values()) == verdict
    assert report.exit_code() == exit_code
    for f in report.findings:
        assert f.code in CODES
        if f.status in (Status.WARN, Status.FAIL):
            assert f.fix, f"{f.code} has no fix"


def test_t4_names_sdpa_as_the_working_alternative():
    report = run_checks(target_env("t4"))
    fa2 = report.verdicts["fa2"]
    assert fa2.verdict is Verdict.UNSUPPORTED
    assert "sm80" in fa2.reasons[0]
    assert "scaled_dot_product_attention" in (fa2.fix or "")
    assert "gpu-unsupported" in fa2.blockers


def test_fa3_on_ampere_is_experimental_but_fa3_on_blackwell_points_to_fa4():
    a100 = run_checks(target_env("a100"))
    assert "gpu-experimental" in codes(a100, Status.WARN, "fa3")
    b200 = run_checks(target_env("b200"))
    f = next(f for f in b200.findings if f.code == "gpu-unsupported" and f.variant == "fa3")
    assert "FA4" in (f.fix or "")


def test_identical_gpus_are_grouped():
    report = run_checks(target_env("a100"))
    found = [f for f in report.findings if f.code == "gpu-found"]
    assert len(found) == 1 and found[0].message.startswith("8 × NVIDIA A100")


def test_variant_findings_do_not_fail_the_check_unless_installed_or_required():
    report = run_checks(target_env("b200"))  # FA3 is unsupported on Blackwell
    assert report.exit_code() == 0
    assert report.exit_code(require=["fa3"]) == 1
    assert report.exit_code(require=["fa2"]) == 1  # not installed: not ready


def test_strict_turns_warnings_into_failure():
    report = run_checks(target_env("nvcc-mismatch"))
    assert report.exit_code() == 0
    assert report.exit_code(strict=True) == 1


def test_driver_major_too_old_fix_names_driver_and_torch_index():
    report = run_checks(target_env("old-driver"))
    f = next(f for f in report.findings if f.code == "driver-too-old")
    assert "570.26" in (f.fix or "")  # CUDA 12.8 needs driver >= 570.26
    assert "cu118" in (f.fix or "")  # a 470 driver runs CUDA 11.x: the newest torch index it can use


def test_ready_when_installed_and_importing_with_code_for_the_gpu():
    env = target_env(
        "h100",
        installed={"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["sm_80", "sm_90"]}},
    )
    report = run_checks(env)
    assert report.verdicts["fa2"].verdict is Verdict.READY
    assert "flash-attn-ok" in codes(report, Status.OK)
    assert report.exit_code(require=["fa2"]) == 0


def test_arch_missing_for_blackwell_in_a_27_build():
    # 2.7.x wheels were built with CUDA 12.4: no sm_100 code (facts.md)
    env = target_env(
        "b200",
        installed={"flash-attn": {"version": "2.7.4.post1", "import_ok": True, "archs": ["sm_80", "sm_90"]}},
    )
    report = run_checks(env)
    assert "flash-attn-arch-missing" in codes(report, Status.FAIL, "fa2")
    assert report.verdicts["fa2"].verdict is not Verdict.READY
    assert report.exit_code() == 1  # installed and broken: counts


def test_no_arch_missing_for_a_gpu_the_variant_never_runs_on():
    # An H100 beside a V100: no FA2 build has sm_70 code, so "--from-source --arch 70" would be a false fix
    h100 = {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gb": 80}
    v100 = {"name": "Tesla V100-SXM2-32GB", "capability": "7.0", "memory_gb": 32}
    env = target_env(
        "h100",
        gpus=[h100, v100],
        installed={"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["sm_80", "sm_90"]}},
    )
    report = run_checks(env)
    assert "flash-attn-arch-missing" not in codes(report)
    assert "gpu-unsupported" in codes(report, Status.FAIL, "fa2")  # the V100 is still named
    assert report.verdicts["fa2"].verdict is Verdict.READY


def test_ptx_only_is_a_warning():
    env = target_env(
        "rtx4090", installed={"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["compute_80"]}}
    )
    report = run_checks(env)
    assert "flash-attn-ptx-jit" in codes(report, Status.WARN, "fa2")


def test_import_error_is_diagnosed_as_torch_mismatch():
    err = (
        'Traceback (most recent call last):\n  File "<string>", line 1\n'
        "ImportError: /venv/lib/python3.12/site-packages/flash_attn_2_cuda.cpython-312-x86_64-linux-gnu.so: "
        "undefined symbol: _ZN3c104cuda9SetDeviceEi"
    )
    env = target_env(
        "h100", installed={"flash-attn": {"version": "2.7.4.post1", "import_ok": False, "import_error": err}}
    )
    report = run_checks(env)
    f = next(f for f in report.findings if f.code == "flash-attn-import-error")
    assert f.status is Status.FAIL and f.variant == "fa2"
    assert "torch" in f.message
    assert f.evidence and "undefined symbol" in f.evidence
    assert report.exit_code() == 1


def test_local_build_profile_label_is_reported():
    env = target_env(
        "h100",
        installed={
            "flash-attn": {"version": "2.8.3.post2+fd.sm90.hd128.bf16", "import_ok": True, "archs": ["sm_90"]}
        },
    )
    report = run_checks(env)
    ok = next(f for f in report.findings if f.code == "flash-attn-ok")
    assert "sm90.hd128.bf16" in ok.message


def test_host_compiler_too_new_for_nvcc():
    report = run_checks(target_env("h100", nvcc="12.4", torch="2.5.1+cu124", torch_cuda="12.4", gcc="14.2.0"))
    f = next(f for f in report.findings if f.code == "host-compiler-unsupported")
    assert "gcc-13" in (f.fix or "")


def test_nvcc_too_old_per_variant():
    report = run_checks(
        target_env("h100", nvcc="12.2", torch="2.5.1+cu121", torch_cuda="12.1", driver="550.54.15")
    )
    assert "nvcc-too-old" in codes(report, Status.WARN, "fa3")  # FA3 needs 12.3
    assert "nvcc-too-old" not in codes(report, Status.WARN, "fa2")
    assert "nvcc-too-old" in report.verdicts["fa3"].blockers


def test_resources_low_memory_and_disk():
    report = run_checks(target_env("h100", memory_gb=6, disk_free_gb=1))
    assert "build-memory-low" in codes(report, Status.WARN)
    assert "disk-low" in codes(report, Status.FAIL)
    assert report.exit_code() == 1


def test_glibc_too_old_warns_for_official_wheels():
    report = run_checks(target_env("a100", glibc="2.31"))
    assert "glibc-too-old" in codes(report, Status.WARN)


def test_missing_keys_skip_instead_of_guessing():
    env = environment_from_target({"gpus": [{"name": "NVIDIA H100", "capability": "9.0"}]})
    report = run_checks(env)
    assert {f.code for f in report.findings if f.status is Status.SKIP} >= {"torch-ok", "nvcc-ok"}
    assert report.exit_code() == 0


def test_gpu_support_table():
    def g(cap: str) -> GPU:
        return GPU(capability=cap)

    assert gpu_support("fa2", g("7.5")) is Status.FAIL
    assert gpu_support("fa2", g("8.6")) is Status.OK
    assert gpu_support("fa2", g("12.0")) is Status.OK
    assert gpu_support("fa3", g("9.0")) is Status.OK
    assert gpu_support("fa3", g("8.0")) is Status.WARN
    assert gpu_support("fa3", g("10.0")) is Status.FAIL
    assert gpu_support("fa4", g("10.0")) is Status.OK
    assert gpu_support("fa4", g("7.0")) is Status.FAIL


def test_build_jobs_rule():
    assert build_jobs(125, 16) == 8  # cpus/2
    assert build_jobs(40, 64) == 4  # memory / 9 GB
    assert build_jobs(5, 8) == 0
    assert build_jobs(None, 8) is None


def test_flash_attn_4_conflict_with_283():
    env = target_env(
        "h100",
        installed={
            "flash-attn": {"version": "2.8.3", "import_ok": True},
            "flash-attn-4": {"version": "4.0.0b36", "import_ok": True},
        },
    )
    assert "flash-attn-conflict" in codes(run_checks(env), Status.WARN, "fa4")


@pytest.mark.parametrize(
    ("torch", "flash_attn", "warned"),
    [
        ("2.5.1+cu124", "2.8.3", True),  # 2.8's Triton ops call torch.library.wrap_triton (torch 2.6)
        ("2.4.1+cu121", "2.8.3.post1+cu12torch2.4cxx11abiFALSE", True),
        ("2.5.1+cu124", "2.7.4.post1", False),
        ("2.6.0+cu124", "2.8.3", False),
    ],
)
def test_a_release_whose_python_code_needs_a_newer_torch_is_a_warning(torch, flash_attn, warned):
    env = target_env(
        "h100", torch=torch, installed={"flash-attn": {"version": flash_attn, "import_ok": True}}
    )
    found = [f for f in run_checks(env).findings if f.code == "flash-attn-torch-api"]
    assert bool(found) is warned
    if warned:
        f = found[0]
        assert f.status is Status.WARN and "wrap_triton" in f.message and "torch >= 2.6" in f.message
        assert f.fix is not None and "flashdoctor install --fa2 --version '<2.8'" in f.fix


def test_crashed_import_says_so():
    env = target_env("h100").replace(
        installed=(
            FlashInstall(
                dist="flash-attn",
                version="2.8.3",
                import_ok=False,
                import_error="[the interpreter was killed by SIGSEGV]",
                import_crashed=True,
            ),
        )
    )
    f = next(f for f in run_checks(env).findings if f.code == "flash-attn-import-error")
    assert "crashed" in f.message


# -- advice consistent with the verdicts (issue 17) --------------------------------------------------------
INSTALLING = ("flashdoctor install", "flashdoctor build")


@pytest.mark.parametrize("name", ["cpu-box", "t4", "v100", "rocm-mi300", "b200", "rtx5090"])
def test_no_install_or_build_fix_for_an_unsupported_variant(name: str) -> None:
    """On a GPU-less box every variant is unsupported, yet each finding used to say
    "fix: flashdoctor install --fa2"."""
    report = run_checks(target_env(name))
    unsupported = {v for v, vv in report.verdicts.items() if vv.verdict is Verdict.UNSUPPORTED}
    assert unsupported
    for f in report.findings:
        if f.variant in unsupported:
            assert not (f.fix or "").startswith(INSTALLING), f.to_json()
            assert "flashdoctor install --" + f.variant not in (f.fix or ""), f.to_json()
    for v in unsupported:
        assert not (report.verdicts[v].fix or "").startswith(INSTALLING)


def test_a_missing_unsupported_variant_points_to_what_works() -> None:
    report = run_checks(target_env("cpu-box"))
    f = next(f for f in report.findings if f.code == "flash-attn-missing" and f.variant == "fa2")
    assert (
        f.fix == "FA2 cannot run here; use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention)."
    )
    # where the variant runs, the fix stays the install command
    h100 = run_checks(target_env("h100"))
    f = next(f for f in h100.findings if f.code == "flash-attn-missing" and f.variant == "fa2")
    assert f.fix == "flashdoctor install --fa2"


def test_the_unsupported_verdict_names_the_variants_that_run() -> None:
    b200 = run_checks(target_env("b200")).verdicts["fa3"]
    assert b200.verdict is Verdict.UNSUPPORTED
    assert b200.fix == "Use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention) or FA2/FA4."
    cpu = run_checks(target_env("cpu-box")).verdicts["fa3"]
    assert cpu.fix == "Use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention)."


def test_torch_cpu_only_fix_reinstalls_the_same_version_from_the_drivers_index() -> None:
    """`pip install torch --index-url …/cu130` answers "Requirement already satisfied" when torch
    2.13.0+cpu is installed: the fix must force the CUDA build of that same version."""
    f = next(f for f in run_checks(target_env("h100-cpu-torch")).findings if f.code == "torch-cpu-only")
    assert f.status is Status.FAIL
    assert (
        f.fix
        == "pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130"
    )
    # no driver: the newest CUDA of that release that a known PyTorch index serves
    f = next(f for f in run_checks(target_env("cpu-box")).findings if f.code == "torch-cpu-only")
    assert (
        f.fix
        == "pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130"
    )


@pytest.mark.parametrize(
    ("driver_cuda", "torch", "command"),
    [
        # nothing installed: the newest index the driver runs
        ("12.8", None, "pip install torch --index-url https://download.pytorch.org/whl/cu128"),
        ("11.4", None, "pip install torch --index-url https://download.pytorch.org/whl/cu118"),
        # the same version, from the newest CUDA it is published for that the driver runs
        ("13.0", "2.8.0+cpu", "pip install --force-reinstall torch==2.8.0 --index-url https://download.pytorch.org/whl/cu129"),
        ("12.6", "2.8.0+cpu", "pip install --force-reinstall torch==2.8.0 --index-url https://download.pytorch.org/whl/cu126"),
        ("12.8", "2.6.0", "pip install --force-reinstall torch==2.6.0 --index-url https://download.pytorch.org/whl/cu126"),
        # torch 2.8 has no build for a CUDA 12.4 driver: the newest older torch that has one, named
        # (2.7, whose cu118 build a 12.4 driver runs: the least step back, not 2.6 on the cu124 index)
        ("12.4", "2.8.0+cu128", "pip install --force-reinstall 'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118"),
        ("12.5", "2.9.0+cu128", "pip install --force-reinstall 'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118"),
        # nothing tabulated runs on the driver: the newest torch on the oldest index (minor-version compatibility)
        ("11.4", "2.8.0+cu128", "pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/cu118"),
        # a release torch_builds.json does not tabulate: the same version from the driver's index
        ("12.1", "2.3.1+cpu", "pip install --force-reinstall torch==2.3.1 --index-url https://download.pytorch.org/whl/cu121"),
        # a nightly comes from the nightly index
        ("13.0", "2.14.0.dev20261101+cpu", "pip install --force-reinstall --pre torch --index-url https://download.pytorch.org/whl/nightly/cu130"),
    ],
)  # fmt: skip
def test_pytorch_cuda_index(driver_cuda: str, torch: str | None, command: str) -> None:
    assert pytorch_cuda_index(driver_cuda, torch) == command


def test_a_driver_too_old_for_any_build_of_this_torch_says_the_fix_is_an_older_torch() -> None:
    # The fix read "install a torch built for CUDA 12.x: pip install --force-reinstall torch --index-url
    # .../cu124": pip then took torch 2.6 in place of 2.9, and nothing said it was older.
    env = target_env("h100").replace(
        torch="2.9.0+cu130", torch_cuda="13.0", driver="550.54", driver_cuda="12.4"
    )
    (f,) = [f for f in run_checks(env).findings if f.code == "driver-too-old"]
    assert f.fix is not None and "(torch 2.7, older than your 2.9: the driver upgrade keeps yours)" in f.fix
    assert "'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118" in f.fix


@pytest.mark.parametrize(
    ("torch", "torch_cuda", "note"),
    [
        ("2.9.0+cu130", "13.0", " (torch 2.7, older than your 2.9"),
        # the command keeps the version (not tabulated) or takes the nightly index: no step back to name
        ("2.14.0+cu126", "12.6", None),
        ("2.8.0.dev20250601+cu126", "12.6", None),
    ],
)
def test_the_older_torch_note_and_the_command_are_one_decision(
    torch: str, torch_cuda: str, note: str | None
) -> None:
    # The note was worked out apart from the command: "(torch 2.7, older than your 2.14 …): pip install
    # --force-reinstall torch==2.14.0 …", or with a nightly's --pre command.
    env = target_env("h100").replace(torch=torch, torch_cuda=torch_cuda, driver="520.61", driver_cuda="11.8")
    (f,) = [f for f in run_checks(env).findings if f.code == "driver-too-old"]
    assert f.fix is not None
    if note is None:
        assert "older than your" not in f.fix
    else:
        assert note in f.fix and "'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118" in f.fix


def test_a_cpu_torch_whose_version_has_no_build_for_the_driver_names_the_older_one() -> None:
    env = target_env("h100").replace(torch="2.8.0+cpu", torch_cuda=None, driver="520.61", driver_cuda="11.8")
    (f,) = [f for f in run_checks(env).findings if f.code == "torch-cpu-only"]
    assert f.fix is not None and f.fix.startswith(
        "Install a CUDA build of torch (torch 2.7, older than your 2.8"
    )
    assert f.fix.endswith("'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118")


def test_torch_commands_use_the_target_interpreter() -> None:
    env = target_env("h100-cpu-torch", python_executable="/home/me/my env/bin/python")
    assert pytorch_cuda_index("13.0", "2.13.0+cpu", env).startswith(
        "'/home/me/my env/bin/python' -m pip install --force-reinstall torch==2.13.0 "
    )
    uv = env.replace(env_manager="uv")
    assert pytorch_cuda_index("13.0", None, uv).startswith(
        "uv pip install --python '/home/me/my env/bin/python' torch "
    )


# -- dtypes per GPU, also when everything passes (issue 17) ------------------------------------------------
def _support(name: str) -> dict[str, dict[str, object]]:
    groups = run_checks(target_env(name)).extra["gpu_support"]
    assert len(groups) == 1
    return groups[0]["variants"]  # type: ignore[no-any-return]


def test_gpu_support_says_which_dtypes_each_variant_runs() -> None:
    assert _support("h100") == {
        "fa2": {"fit": "supported", "dtypes": ["fp16", "bf16"]},
        "fa3": {"fit": "supported", "dtypes": ["fp16", "bf16", "fp8-forward"]},  # fp8: forward, sm90 only
        "fa4": {"fit": "supported", "dtypes": ["fp16", "bf16"]},
    }
    a100 = _support("a100")
    assert a100["fa3"] == {"fit": "experimental", "dtypes": ["fp16", "bf16"]}  # no fp8 off Hopper
    t4 = _support("t4")
    assert all(v == {"fit": "unsupported", "dtypes": []} for v in t4.values())
    b200 = _support("b200")
    assert b200["fa3"]["dtypes"] == [] and b200["fa4"]["dtypes"] == ["fp16", "bf16"]
    assert run_checks(target_env("cpu-box")).extra["gpu_support"] == []
    groups = run_checks(target_env("a100")).extra["gpu_support"]
    assert groups[0]["count"] == 8 and groups[0]["subject"].startswith("GPUs 0,1,")


def test_torch_ok_says_when_the_abi_was_inferred() -> None:
    report = run_checks(target_env("torch26-cu124"))
    f = next(f for f in report.findings if f.code == "torch-ok")
    assert f.message == "torch 2.6.0+cu124 (CUDA 12.4, pre-CXX11 ABI inferred from its version)"
    assert report.environment.notes[0].startswith("cxx11abi inferred from the torch version")


def test_a_verdict_that_needs_a_cuda_torch_says_so_first() -> None:
    """`flashdoctor install` refuses while torch is missing or a CPU build: the verdict's next step starts
    with the torch command."""
    fa4 = run_checks(target_env("h100-cpu-torch")).verdicts["fa4"]
    assert fa4.fix == (
        "pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130; "
        "then flashdoctor install --fa4"
    )
    fa2 = run_checks(target_env("no-torch")).verdicts["fa2"]
    assert fa2.fix is not None and fa2.fix.startswith("pip install torch --index-url ")
    assert fa2.fix.endswith("; then flashdoctor install --fa2 --from-source")
    assert run_checks(target_env("h100")).verdicts["fa4"].fix == "flashdoctor install --fa4"


def test_an_undiagnosed_import_error_fix_is_the_bare_command() -> None:
    from flashdoctor.decide import checks

    env = target_env(
        "h100", installed={"flash-attn": {"version": "2.8.3", "import_ok": False, "import_error": "boom"}}
    )
    f = next(f for f in checks.run_checks(env).findings if f.code == "flash-attn-import-error")
    assert f.fix == "flashdoctor install --fa2"  # was "… --fa2 (reinstall a build that matches this torch)"


@pytest.mark.parametrize(
    ("capability", "nvcc", "needs"), [("12.0", "12.4", "12.8"), ("11.0", "12.8", "13.0")]
)
def test_a_build_this_nvcc_cannot_compile_for_the_gpu_is_not_called_ready_to_build(capability, nvcc, needs):  # type: ignore[no-untyped-def]
    # check said "buildable" with no blocker where the build plan refuses: sm_120 needs nvcc 12.8, sm_110 13.0
    fa2 = run_checks(one_gpu(capability, "2.9.1+cu128", "12.8", nvcc=nvcc)).verdicts["fa2"]
    assert fa2.verdict is Verdict.BUILDABLE and "nvcc-too-old" in fa2.blockers
    assert any(f"needs nvcc ≥ {needs}" in r for r in fa2.reasons)
    ok = run_checks(one_gpu(capability, "2.11.0+cu130", "13.0", nvcc="13.0"))
    assert "nvcc-too-old" not in ok.verdicts["fa2"].blockers


def test_an_intel_xpu_torch_is_no_cuda_torch_in_its_own_words() -> None:
    """ "torch": "2.5.1+xpu" beside an NVIDIA GPU was a CUDA torch of unknown CUDA: check said torch-ok."""
    env = target_env("h100").replace(torch="2.5.1+xpu", torch_cuda=None)
    f = next(f for f in run_checks(env).findings if f.code == "torch-cpu-only")
    assert f.message.startswith("torch 2.5.1+xpu is an Intel XPU build (no CUDA)"), f.message
    assert f.fix and "torch==2.5.1 --index-url https://download.pytorch.org/whl/cu" in f.fix


@pytest.mark.parametrize(
    ("platform", "said"),
    [("win_arm64", "Windows on ARM64 has no CUDA"), ("win32", "32-bit Windows has no CUDA")],
)
def test_windows_on_arm64_has_no_cuda(platform: str, said: str) -> None:
    """win_arm64 (and 32-bit Windows) with an NVIDIA GPU was planned a build, with only platform-mismatch
    rejections: there is no CUDA for either, so nothing can run there."""
    env = target_env("h100").replace(platform=platform, glibc=None)
    report = run_checks(env)
    f = next(f for f in report.findings if f.code == "platform-unsupported")
    assert f.status is Status.FAIL and f.message.startswith(said), f.message
    assert all(v.verdict is Verdict.UNSUPPORTED for v in report.verdicts.values())
    amd64 = run_checks(target_env("h100").replace(platform="win_amd64", glibc=None))
    assert not any(f.code == "platform-unsupported" for f in amd64.findings)


@pytest.mark.parametrize("spec", [{"glibc": None}, {"platform": "musllinux_1_2_x86_64"}], ids=["null", "tag"])
def test_a_musl_linux_is_told_that_a_source_build_cannot_work(spec: dict[str, object]) -> None:
    """On Alpine check said only "no prebuilt wheel fits" and pointed at a source build, which fails there:
    NVIDIA ships CUDA for glibc only."""
    report = run_checks(target_env("h100").replace(**spec))
    f = next(f for f in report.findings if f.code == "libc-musl")
    assert f.status is Status.FAIL
    assert "musl" in f.message and "no CUDA toolkit" in f.message, f.message
    assert f.fix and "glibc-based image" in f.fix
    fa2 = report.verdicts["fa2"]
    assert fa2.verdict is Verdict.BUILDABLE and "libc-musl" in fa2.blockers
    assert not any(f.code == "libc-musl" for f in run_checks(target_env("h100")).findings)


@pytest.mark.parametrize("spec", [{"glibc": None}, {"platform": "musllinux_1_2_x86_64"}], ids=["null", "tag"])
def test_fa4_on_a_musl_linux_is_unsupported(spec: dict[str, object]) -> None:
    """FA4's own wheel is pure Python, so on Alpine check called it installable; but it needs
    nvidia-cutlass-dsl, whose wheels are built for glibc (manylinux) only: the install cannot work there."""
    report = run_checks(target_env("h100").replace(**spec), wheel_finder=bundled_finder())
    fa4 = report.verdicts["fa4"]
    assert fa4.verdict is Verdict.UNSUPPORTED, fa4
    assert "libc-musl" in fa4.blockers
    assert any("nvidia-cutlass-dsl" in r and "glibc" in r for r in fa4.reasons), fa4.reasons
    # no variant works on musl: the fix offers none (FA2/FA3 are blocked there by libc-musl too)
    assert fa4.fix == "Use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention).", fa4.fix
    missing = next(f for f in report.findings if f.code == "flash-attn-missing" and f.variant == "fa4")
    assert missing.fix and "install --fa4" not in missing.fix, missing.fix
    assert run_checks(target_env("h100"), wheel_finder=bundled_finder()).verdicts["fa4"].verdict is not (
        Verdict.UNSUPPORTED
    )


def test_install_interrupted_names_both_versions_and_the_install_that_restores() -> None:
    from flashdoctor.decide.checks.installed import install_interrupted

    f = install_interrupted("flash-attn", "2.7.4", "2.8.3", "/cache/backups/x", "2.8.3")
    assert f.code == "install-interrupted" and f.status is Status.WARN and f.variant == "fa2"
    assert "2.8.3 is in place unverified" in f.message and "flash-attn 2.7.4 before it" in f.message
    assert f.fix == "flashdoctor install --fa2: it restores the previous version first (flash-attn 2.7.4)"
    # Killed during pip: what is there now is said, not assumed (it said "2.8.3 is in place", or "? …")
    mid = install_interrupted("flash-attn", "2.7.4", "2.8.3", "/cache/backups/x", "2.7.4")
    assert "flash-attn 2.7.4 is installed now" in mid.message and "in place" not in mid.message
    gone = install_interrupted("flash-attn", "2.7.4", None, "/cache/backups/x", None)
    assert (
        "an install of flash-attn into" in gone.message and "flash-attn is not installed now" in gone.message
    )
    assert "?" not in gone.message
    fresh = install_interrupted("flash-attn-4", None, "4.0.0b1", "/cache/backups/y", None)
    assert fresh.variant == "fa4" and "flash-attn-4 not installed" in (fresh.fix or ""), fresh
