"""The probes against the real machine: the real interpreter and torch, fake packages that really
crash, fake toolkits on PATH, other interpreters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from importlib import resources
from pathlib import Path

import pytest

from flashdoctor.model.environment import GPU
from flashdoctor.probe import import_test, interp_config, launch_interp, probe_environment
from flashdoctor.probe.buildtools import probe_build_tools
from flashdoctor.probe.interpreter import Launched, TargetScriptError, run_script, run_target
from flashdoctor.probe.system import probe_toolkit, visible_filter
from tests.support.paths import ROOT


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in [extra.pop("PYTHONPATH", "")] if p]])
    env.update(extra)
    return env


def fake_dist(
    site: Path, dist: str, module: str, version: str, init: str, extra_files: dict[str, bytes] | None = None
) -> None:
    """A real installed distribution (dist-info with METADATA and RECORD) in ``site``."""
    pkg = site / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(init)
    files = [f"{module}/__init__.py"]
    for name, data in (extra_files or {}).items():
        (site / name).write_bytes(data)
        files.append(name)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "RECORD").write_text(
        "".join(f"{f},,\n" for f in [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"])
    )


def test_visible_filter_indices_uuids_and_stop_rule():
    gpus = [GPU(index=i, name=f"g{i}", capability="9.0", uuid=f"GPU-{i}aaa-{i}") for i in range(4)]
    assert [g.name for g in visible_filter(gpus, "2,0")] == ["g2", "g0"]
    assert [g.index for g in visible_filter(gpus, "2,0")] == [0, 1]  # renumbered, as CUDA does
    assert [g.name for g in visible_filter(gpus, "GPU-3aaa")] == ["g3"]
    assert visible_filter(gpus, "") == []
    assert visible_filter(gpus, "-1") == []
    assert [g.name for g in visible_filter(gpus, "1,7,2")] == ["g1"]  # stops at the first invalid entry
    assert visible_filter(gpus, None) == gpus


@pytest.mark.system
def test_real_interpreter_and_real_torch():
    torch = pytest.importorskip("torch")
    env = probe_environment(python=sys.executable, environ=child_env())
    assert env.python == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert env.torch == torch.__version__
    assert env.torch_cuda == torch.version.cuda
    assert env.cxx11abi is bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    assert env.platform and env.platform.startswith("linux")
    assert env.cpus and env.cpus >= 1
    assert env.known("gpus")


@pytest.mark.system
def test_interpreter_probe_never_imports_torch(tmp_path: Path):
    """With the registry's variant table (as probe_environment passes it) and a variant installed."""
    site = tmp_path / "site"
    fake_dist(site, "flash-attn", "flash_attn", "2.8.3", "import torch\n")
    script = resources.files("flashdoctor.probe").joinpath("_interp.py")
    config = interp_config()
    code = (
        "import runpy, sys, io, contextlib\n"
        f"sys.argv = [{str(script)!r}, {config!r}]\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "print(json.dumps(json.loads(buf.getvalue())['flash']))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=child_env(PYTHONPATH=str(site)),
    )
    flash, loaded = out.stdout.strip().splitlines()[-2:]
    assert [(f["variant"], f["dist"], f["version"]) for f in json.loads(flash)] == [
        ("fa2", "flash-attn", "2.8.3")
    ]
    assert loaded == "False"


@pytest.mark.system
def test_fa3_is_found_through_the_registry_module_list(tmp_path: Path):
    """An FA3 laid out as upstream main builds it (flash_attn_3/flash_attn_interface.py, extension
    flash_attn_3/_C.abi3.so), found by the environment probe and imported by the import test."""
    site = tmp_path / "site"
    fake_dist(
        site,
        "flash_attn_3",
        "flash_attn_3",
        "3.0.0+fd.sm90.hd128.bf16",
        "",
        {
            "flash_attn_3/_C.abi3.so": b"not an ELF",
            "flash_attn_3/flash_attn_interface.py": b"def flash_attn_func(): pass\n",
        },
    )
    env = probe_environment(python=sys.executable, environ=child_env(PYTHONPATH=str(site)))
    inst = env.installed_variant("fa3")
    assert inst is not None and inst.dist == "flash-attn-3" and inst.version == "3.0.0+fd.sm90.hd128.bf16"
    assert inst.import_ok is True, inst.import_error
    assert inst.extension_path and inst.extension_path.endswith("_C.abi3.so")


# -- the one target-script runner (probe.interpreter) -------------------------------------------------
@pytest.mark.system
@pytest.mark.parametrize(
    ("python", "code", "kind", "message"),
    [
        (
            "/nonexistent/python",
            "",
            "no-interpreter",
            "cannot run the target interpreter /nonexistent/python: No such file",
        ),
        (
            "/etc/hostname",
            "",
            "no-interpreter",
            "cannot run the target interpreter /etc/hostname: ",
        ),
        (
            sys.executable,
            "import os; os.abort()",
            "signal",
            "was killed by SIGABRT while running the test script",
        ),
        (
            sys.executable,
            "import time; time.sleep(30)",
            "timeout",
            "the test script did not finish within 2 s",
        ),
        (
            sys.executable,
            "raise ImportError('libcudart.so.13: cannot open')",
            "exit",
            "(exit 1): ImportError: libcudart.so.13",
        ),
        (sys.executable, "print('hello')", "bad-output", "printed no result in the target interpreter"),
        (sys.executable, "print('[1, 2]')", "bad-output", "its last line is not a JSON object"),
    ],
)
def test_one_error_type_for_every_way_a_script_fails(python: str, code: str, kind: str, message: str):
    with pytest.raises(TargetScriptError) as info:
        run_script(python, code, [], child_env(), 2.0, "the test script")
    assert info.value.kind == kind
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.system
def test_a_script_result_and_its_arguments():
    code = "import json, sys\nprint('noise')\nprint(json.dumps({'args': sys.argv[1:]}))\n"
    assert run_script(sys.executable, code, ["a", "b c"], child_env(), 30, "x") == {"args": ["a", "b c"]}


@pytest.mark.system
def test_a_start_up_banner_without_a_newline_does_not_hide_the_result(tmp_path: Path):
    """A sitecustomize (or a .pth) that writes to stdout at start-up without a newline (a conda or
    module banner) put the script's JSON at the end of its line: "printed no result" for every probe."""
    (tmp_path / "sitecustomize.py").write_text("import sys; sys.stdout.write('env {activated} ')\n")
    code = "import json\nprint(json.dumps({'ok': True, 'nested': {'a': [1]}}))\n"
    env = child_env(PYTHONPATH=str(tmp_path))
    assert run_script(sys.executable, code, [], env, 30, "x") == {"ok": True, "nested": {"a": [1]}}
    with pytest.raises(TargetScriptError, match="its last line is not JSON"):
        run_script(sys.executable, "print('a {not json}')", [], env, 30, "x")
    with pytest.raises(TargetScriptError, match="its last line is not JSON"):  # was a RecursionError
        run_script(sys.executable, "print('[' * 100000)", [], child_env(), 30, "x")


@pytest.mark.system
@pytest.mark.slow
def test_a_timeout_kills_what_the_script_started(tmp_path: Path):
    marker = tmp_path / "child-alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').close()\n")
    code = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(child)!r}])\ntime.sleep(30)\n"
    )
    run = run_target(sys.executable, ["-c", code], child_env(), 1.0, "x")
    assert run.timed_out and run.failure() is not None and run.elapsed_s < 10
    time.sleep(4)
    assert not marker.exists(), "the grandchild outlived the timeout"


@pytest.mark.system
def test_wrapper_shell_exit_codes_are_read_as_signals(tmp_path: Path):
    wrapper = tmp_path / "python"
    wrapper.write_text("#!/bin/sh\nexit 139\n")
    wrapper.chmod(0o755)
    res = import_test(str(wrapper), "flash-attn", child_env())
    assert res.crashed and res.error and res.error.endswith("[the interpreter was killed by SIGSEGV]")


@pytest.mark.system
def test_build_tools_probe_reports_a_dead_interpreter():
    tools = probe_build_tools("/nonexistent/python", child_env())
    assert tools.torch_ok is False and "cannot run the target interpreter" in str(tools.torch_error)


@pytest.mark.system
def test_segfaulting_flash_attn_is_a_finding_not_a_crash(tmp_path: Path):
    site = tmp_path / "site"
    fake_dist(site, "flash-attn", "flash_attn", "2.8.3", "import ctypes\nctypes.string_at(0)\n")
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(PYTHONPATH=str(site)),
    )
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(p.stdout)
    f = next(f for f in doc["findings"] if f["code"] == "flash-attn-import-error")
    assert f["status"] == "fail" and f["variant"] == "fa2"
    assert "crashed" in f["message"]
    assert "SIGSEGV" in f["evidence"]
    assert doc["environment"]["installed"]["flash-attn"]["import_crashed"] is True


@pytest.mark.system
def test_installed_extension_archs_are_read_without_import(tmp_path: Path):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        pytest.skip("nvcc not available")
    src = tmp_path / "k.cu"
    src.write_text('__global__ void k(float* x){x[0]=1;}\nextern "C" void l(float*x){k<<<1,1>>>(x);}\n')
    so = tmp_path / "ext.so"
    subprocess.run(
        [
            nvcc,
            "-shared",
            "-Xcompiler",
            "-fPIC",
            "-gencode",
            "arch=compute_80,code=sm_80",
            "-o",
            str(so),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = tmp_path / "site"
    ext = f"flash_attn_2_cuda.cpython-{sys.version_info[0]}{sys.version_info[1]}-x86_64-linux-gnu.so"
    fake_dist(
        site,
        "flash-attn",
        "flash_attn",
        "2.7.4.post1",
        "raise ImportError('not a real build')\n",
        {ext: so.read_bytes()},
    )
    env = probe_environment(python=sys.executable, environ=child_env(PYTHONPATH=str(site)))
    inst = env.installed_variant("fa2")
    assert inst is not None and inst.version == "2.7.4.post1"
    assert inst.archs == ("sm_80",)
    assert inst.extension_path and inst.extension_path.endswith(ext)
    assert inst.import_ok is False and "not a real build" in (inst.import_error or "")


@pytest.mark.system
def test_toolkit_probe_with_fake_nvccs(tmp_path: Path):
    def fake_toolkit(root: Path, release: str, headers: bool) -> None:
        (root / "bin").mkdir(parents=True)
        nv = root / "bin" / "nvcc"
        nv.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
        nv.chmod(0o755)
        if headers:
            (root / "include").mkdir()
            (root / "include" / "cuda_runtime.h").write_text("")

    fake_toolkit(tmp_path / "cuda-12.4", "12.4", True)
    fake_toolkit(tmp_path / "cuda-11.8", "11.8", True)
    environ = {
        "PATH": f"{tmp_path / 'cuda-11.8' / 'bin'}:/usr/bin:/bin",
        "CUDA_HOME": str(tmp_path / "cuda-12.4"),
    }
    r = probe_toolkit(environ)
    assert r.values["nvcc"] == "12.4"  # CUDA_HOME wins, as in torch.utils.cpp_extension
    assert r.values["cuda_home_headers"] is True
    versions = {n.version for n in r.values["nvccs"]}  # type: ignore[attr-defined]
    assert {"12.4", "11.8"} <= versions
    from flashdoctor.decide.explain import run_checks
    from flashdoctor.model.target import environment_from_target

    env = environment_from_target({"torch": "2.5.1+cu124"}).replace(
        **{k: r.values[k] for k in ("nvcc", "nvcc_path", "nvccs", "cuda_home", "cuda_home_headers")},
        unknown=frozenset(),
    )
    f = [f for f in run_checks(env).findings if f.code == "cuda-home-mismatch"]
    assert f and "11.8" in f[0].message


@pytest.mark.system
def test_an_nvcc_whose_release_cannot_be_read_is_unknown_not_missing(tmp_path: Path) -> None:
    """An nvcc that prints an unexpected version text (a wrapper script) or fails was reported as "No nvcc
    found ... install the CUDA toolkit" on a machine that has one: its version is unknown, with a note."""
    (tmp_path / "bin").mkdir()
    nv = tmp_path / "bin" / "nvcc"
    nv.write_text("#!/bin/sh\necho 'nvcc wrapper 1.0'\n")
    nv.chmod(0o755)
    r = probe_toolkit({"PATH": "/usr/bin:/bin", "CUDA_HOME": str(tmp_path)})
    assert r.values["nvcc"] is None and r.values["nvcc_path"] == str(nv)
    assert "nvcc" in r.unknown
    assert any(str(nv) in n and "version" in n for n in r.notes), r.notes


@pytest.mark.system
def test_other_interpreter_without_torch(tmp_path: Path):
    venv.EnvBuilder(with_pip=False).create(tmp_path / "v")
    py = tmp_path / "v" / "bin" / "python"
    env = probe_environment(python=str(py), environ=child_env())
    assert env.torch is None and env.known("torch")
    assert env.python_executable and env.python_executable.startswith(str(tmp_path))
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--python", str(py), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    doc = json.loads(p.stdout)
    assert any(f["code"] == "torch-missing" for f in doc["findings"])


@pytest.mark.system
@pytest.mark.parametrize("bad", ["/nonexistent/python", "/bin/true", "/etc/hostname"])
def test_bad_python_is_a_usage_error(bad: str):
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--python", bad],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "flashdoctor: error:" in p.stderr


def _python2() -> str | None:
    """A Python 2 on PATH that runs (a pyenv shim may be there without one behind it)."""
    for name in ("python2", "python2.7"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "pass"], capture_output=True, timeout=30).returncode == 0:
            return found
    return None


def _fake_python2(directory: Path) -> Path:
    """An interpreter that says it is Python 2.7 (sys.version_info) and runs the script it is given."""
    fake = directory / "python"
    shim = "import runpy, sys; sys.version_info = (2, 7, 18, 'final', 0); sys.argv = sys.argv[1:]; "
    shim += "runpy.run_path(sys.argv[0], run_name='__main__')"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{shim}" "$@"\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.system
@pytest.mark.parametrize("kind", ["fake", "real"])
@pytest.mark.parametrize("command", ["check", "smoke"])
def test_a_python_2_is_refused_with_a_clear_message(tmp_path: Path, kind: str, command: str) -> None:
    """`check --python` at a Python 2 failed with the probe's raw traceback (`AttributeError` / `ImportError:
    No module named util`), `smoke` with the runner's SyntaxError; each says which Python it is and that
    only Python 3 is probed."""
    py = _fake_python2(tmp_path) if kind == "fake" else _python2()
    if py is None:
        pytest.skip("no Python 2 on PATH")
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", command, "--python", str(py)],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"Python 2.7 at {py}: flashdoctor probes Python 3 interpreters only" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "Error" not in p.stderr


@pytest.mark.system
def test_fa4_namespace_package_is_not_taken_for_fa2(tmp_path: Path):
    site = tmp_path / "site"
    (site / "flash_attn" / "cute").mkdir(parents=True)
    (site / "flash_attn" / "cute" / "__init__.py").write_text("raise ImportError('needs the CUTLASS DSL')\n")
    info = site / "flash_attn_4-4.0.0b36.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flash-attn-4\nVersion: 4.0.0b36\n")
    (info / "RECORD").write_text("flash_attn/cute/__init__.py,,\n")
    env = probe_environment(
        python=sys.executable, environ=child_env(PYTHONPATH=str(site)), import_tests=False
    )
    assert [i.dist for i in env.installed] == ["flash-attn-4"]
    assert env.installed[0].version == "4.0.0b36"


# -- a probe started ahead of its use -----------------------------------------------------------------
@pytest.mark.system
def test_a_launched_script_runs_while_the_caller_goes_on(tmp_path: Path):
    stamp = tmp_path / "ran"
    code = f"import json, time\nopen({str(stamp)!r}, 'w').close()\nprint(json.dumps({{'ok': 1}}))\n"
    launched = Launched(sys.executable, ["-c", code], child_env(), 30, "x")
    deadline = time.monotonic() + 20
    while not stamp.exists() and time.monotonic() < deadline:  # it runs before anyone waits for it
        time.sleep(0.02)
    assert stamp.exists()
    assert launched.finish().result() == {"ok": 1}


@pytest.mark.system
def test_a_launched_script_times_out_from_its_start_and_cancel_stops_it():
    slow = Launched(sys.executable, ["-c", "import time; time.sleep(30)"], child_env(), 1.0, "x")
    time.sleep(1.2)  # the timeout counts from the start: finishing now waits no longer
    t0 = time.monotonic()
    run = slow.finish()
    assert run.timed_out and time.monotonic() - t0 < 5
    other = Launched(sys.executable, ["-c", "import time; time.sleep(30)"], child_env(), 60, "x")
    other.cancel()
    assert other._proc is not None and other._proc.poll() is not None


@pytest.mark.system
def test_a_launch_that_cannot_start_is_the_same_error_as_a_run(tmp_path: Path):
    gone = str(tmp_path / "no-python")
    with pytest.raises(TargetScriptError) as launched:
        Launched(gone, ["-c", "pass"], child_env(), 5, "x").finish().result()
    with pytest.raises(TargetScriptError) as direct:
        run_target(gone, ["-c", "pass"], child_env(), 5, "x").result()
    assert launched.value.kind == direct.value.kind == "no-interpreter"


@pytest.mark.system
def test_the_environment_probe_launched_early_gives_the_same_environment():
    env = child_env()
    early = probe_environment(sys.executable, env, False, launched=launch_interp(sys.executable, env))
    plain = probe_environment(sys.executable, env, False)
    assert early.python == plain.python and early.torch == plain.torch and early.platform == plain.platform
    assert early.installed == plain.installed


@pytest.mark.system
def test_cancel_after_finish_is_harmless():
    launched = Launched(sys.executable, ["-c", "print('{}')"], child_env(), 30, "x")
    assert launched.finish().result() == {}
    launched.cancel()  # run_check cancels on any error, also after the probe's answer was taken


# -- waiting for a target process ---------------------------------------------------------------------
@pytest.mark.system
@pytest.mark.parametrize("pidfd", ["pidfd", "no pidfd_open", "pidfd_open refused"])
def test_waiting_gives_the_exit_or_the_timeout_with_and_without_a_pidfd(
    monkeypatch: pytest.MonkeyPatch, pidfd: str
):
    """interpreter.wait wakes on a pidfd where Linux has one, and is Popen.wait(timeout) elsewhere (other
    systems, kernels before 5.3): the same answers either way."""
    from flashdoctor.probe import interpreter

    if pidfd == "no pidfd_open":
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif pidfd == "pidfd_open refused":

        def refused(pid: int, flags: int = 0) -> int:
            raise OSError(38, "Function not implemented")  # ENOSYS: a kernel before 5.3

        monkeypatch.setattr(os, "pidfd_open", refused, raising=False)
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    interpreter.wait(done, 30)
    assert done.returncode == 3
    unbounded = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    interpreter.wait(unbounded, float("inf"))  # no limit at all: waits for the exit
    assert unbounded.returncode == 4
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            interpreter.wait(slow, 0.3)
        assert slow.poll() is None  # still running: the caller decides (Launched.finish kills it)
    finally:
        interpreter.stop(slow)
    assert slow.returncode is not None


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "400000 100000\n"}, 4),  # docker --cpus 4 (cgroup v2)
        ({"cpu.max": "150000 100000\n"}, 2),  # --cpus 1.5: rounded up
        ({"cpu.max": "max 100000\n"}, None),  # no quota
        ({"cpu/cpu.cfs_quota_us": "800000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({"cpu.max": "5 0\n"}, None),
        ({}, None),
    ],
)
def test_a_cgroup_cpu_quota_is_read_as_the_cpus_a_build_may_use(
    tmp_path: Path, files: dict[str, str], cpus: int | None
) -> None:
    """A container limited to 4 CPUs on a 128-core host: build jobs are sized from 4, not 128."""
    from flashdoctor.probe.system import _cgroup_cpus, _cgroup_memory_gb

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _cgroup_cpus(str(tmp_path)) == cpus
    (tmp_path / "memory.max").write_text(str(6 * 2**30))
    (tmp_path / "memory.current").write_text(str(2 * 2**30))
    assert _cgroup_memory_gb(str(tmp_path)) == 4.0


def test_the_probe_takes_the_smaller_of_the_cores_and_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    from flashdoctor.probe import system

    monkeypatch.setattr(system, "_cgroup_cpus", lambda: 1)
    r = system.probe_resources(dict(os.environ))
    assert r.values["cpus"] == 1
    assert any("cgroup CPU quota allows 1 of the" in n for n in r.notes) or len(os.sched_getaffinity(0)) == 1


@pytest.mark.system
def test_hanging_nvccs_are_waited_for_once_not_one_after_another(tmp_path: Path) -> None:
    """Several nvccs that hang (on PATH, CUDA_HOME, CUDA_PATH) were asked one after another, each to its
    timeout (and the build's again), so `check` waited a minute or more. They are asked together: the
    probe takes one timeout, and each is still an nvcc of unknown release."""
    paths = []
    for name in ("path", "home", "cuda-path"):
        (tmp_path / name / "bin").mkdir(parents=True)
        nv = tmp_path / name / "bin" / "nvcc"
        nv.write_text("#!/bin/sh\nexec sleep 30\n")
        nv.chmod(0o755)
        paths.append(nv)
    environ = {
        "PATH": f"{paths[0].parent}:/usr/bin:/bin",
        "CUDA_HOME": str(tmp_path / "home"),
        "CUDA_PATH": str(tmp_path / "cuda-path"),
    }
    t0 = time.monotonic()
    r = probe_toolkit(environ, timeout=1.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, f"{elapsed:.1f} s: the nvccs were waited for one after another"
    listed = {n.path: n.version for n in r.values["nvccs"]}  # type: ignore[attr-defined]
    assert {str(p) for p in paths} <= set(listed) and all(listed[str(p)] is None for p in paths)
    assert r.values["nvcc"] is None and r.values["nvcc_path"] == str(paths[1]) and "nvcc" in r.unknown
    assert any(str(paths[1]) in n and "release could not be read" in n for n in r.notes), r.notes


@pytest.mark.system
def test_two_metadata_folders_of_one_flash_attn_are_a_warning_naming_the_stale_one(tmp_path: Path) -> None:
    """A half-finished upgrade leaves flash_attn-2.7.4.dist-info beside flash_attn-2.8.3.dist-info in one
    site-packages: pip reports either, and uninstalls by the wrong RECORD. `check` said nothing; it warns,
    naming the folder whose version is not the package's files' to remove."""
    from flashdoctor.decide.explain import run_checks

    site = tmp_path / "site"
    fake_dist(site, "flash-attn", "flash_attn", "2.8.3", "__version__ = '2.8.3'\n")
    stale = site / "flash_attn-2.7.4.dist-info"
    stale.mkdir()
    (stale / "METADATA").write_text("Metadata-Version: 2.1\nName: flash-attn\nVersion: 2.7.4\n")
    (stale / "RECORD").write_text("flash_attn/__init__.py,,\n")
    env = probe_environment(
        python=sys.executable, environ=child_env(PYTHONPATH=str(site)), import_tests=False, torch_archs=False
    )
    found = [f for f in run_checks(env).findings if f.code == "flash-attn-duplicate-metadata"]
    assert len(found) == 1, [f.code for f in run_checks(env).findings]
    assert found[0].status.value == "warn"
    assert (
        "flash_attn-2.7.4.dist-info" in found[0].message and "flash_attn-2.8.3.dist-info" in found[0].message
    )
    assert found[0].fix and f"rm -r {stale}" in found[0].fix and "2.8.3.dist-info" not in found[0].fix


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_a_target_script_starts_leaves_no_child_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str
) -> None:
    """Ctrl-C (or SIGTERM) that reached the main thread inside subprocess.Popen, after the fork and before
    the child was recorded, lost its pid: `check --python HANG` interrupted at that moment exited 130 and
    left the probe (in a session of its own, out of reach of the terminal) running. Now the signal waits
    until the child is recorded, and is raised then: stop_started (what Ctrl-C runs) stops it."""
    from flashdoctor.probe import interpreter
    from tests.support.hung_python import stopped_after_a_signal_as_it_starts

    def start(hang: Path) -> object:
        return interpreter.start(str(hang), [], os.environ)

    assert stopped_after_a_signal_as_it_starts(tmp_path, monkeypatch, sig, start), "the child outlived it"


@pytest.mark.system
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_a_command_starts_leaves_no_child_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str
) -> None:
    """system.run (install's pip, nvcc, git) started its command with subprocess.run, outside the guard the
    target scripts' start has: a SIGTERM to flashdoctor alone (a cancelled CI job, `kill PID`) or a Ctrl-C
    that reached the main thread inside Popen, after the fork, lost the child, and pip went on changing the
    environment after flashdoctor had exited. Now the signal is raised once the child is held, and run
    stops and reaps it before the signal goes on."""
    from flashdoctor.probe.system import run
    from tests.support.hung_python import gone, hung_python, signal_inside_popen

    hang, _ = hung_python(tmp_path)
    with signal_inside_popen(monkeypatch, sig) as children, pytest.raises(KeyboardInterrupt):
        run([str(hang)], timeout=60)
    assert len(children) == 1
    assert gone(children[0].pid), "the command outlived the signal"


@pytest.mark.system
def test_a_ctrl_c_while_a_command_runs_stops_and_reaps_it_before_going_on(tmp_path: Path) -> None:
    """Ctrl-C while system.run waited on its command (install's pip): subprocess.run killed the child but,
    for a KeyboardInterrupt, did not wait for it, so the install's restore could start while pip was still
    alive (and it stayed a zombie). Now run has reaped it when the KeyboardInterrupt reaches its caller."""
    import signal
    import threading

    from flashdoctor.probe.system import run
    from tests.support.hung_python import gone, hung_python, started

    hang, pidfile = hung_python(tmp_path)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        started(pidfile)
        signal.pthread_kill(main, signal.SIGINT)  # to flashdoctor alone: the child gets nothing

    ctrl_c = threading.Thread(target=interrupt)
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run([str(hang)], timeout=60)
    finally:
        ctrl_c.join()
    assert gone(int(pidfile.read_text()), within=0.5), "the command was still there (alive or unreaped)"


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
def test_a_script_a_worker_starts_after_the_stop_is_stopped_at_once(tmp_path: Path) -> None:
    """stop_started (Ctrl-C, SIGTERM) stopped the scripts running then; a worker thread that started
    another just after (the import test, once the environment probe answered) left it running, and
    leaving joined that worker for the script's whole timeout. A start after the stop is stopped at once."""
    from flashdoctor.probe import interpreter
    from tests.support.hung_python import gone, hung_python

    hang, pidfile = hung_python(tmp_path)
    interpreter.stop_started()
    before = set(interpreter._STARTED)
    t0 = time.monotonic()
    with pytest.raises(interpreter.TargetScriptError) as err:
        interpreter.start(str(hang), [], os.environ)
    assert time.monotonic() - t0 < 5 and err.value.detail == "flashdoctor is stopping"
    text = pidfile.read_text().strip() if pidfile.exists() else ""
    if text:  # it may have been killed before it wrote its pid
        assert gone(int(text))
    assert set(interpreter._STARTED) <= before  # nothing left recorded (or running) from this start


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
def test_a_signal_stops_what_a_command_in_its_own_group_started(tmp_path: Path) -> None:
    """git clone --recurse-submodules clones CUTLASS in a child of its own: a SIGTERM to flashdoctor alone
    (a cancelled CI job) killed git and left the submodule clone running, writing into the directory that
    the failure path removes. A command run with own_group is stopped with everything it started."""
    from flashdoctor.errors import Terminated
    from flashdoctor.probe.system import run_process
    from tests.support.hung_python import gone, hung_python, sigterm_once_started

    hang, pidfile = hung_python(tmp_path)
    script = tmp_path / "parent.sh"
    script.write_text(f'#!/bin/sh\n"{hang}" &\nwait\n')  # the hung child is the command's child
    script.chmod(0o755)
    with sigterm_once_started(pidfile), pytest.raises(Terminated):
        run_process([str(script)], timeout=60, own_group=True)
    assert gone(int(pidfile.read_text()), within=5), "what the command started outlived it"


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
def test_a_script_a_worker_is_starting_when_the_process_leaves_is_stopped_first(tmp_path: Path) -> None:
    """A cluster rank leaves with stop_started() and then os._exit (its launcher's SIGTERM, or its end),
    without joining the daemon thread that runs its probes. A worker inside subprocess.Popen at that moment
    (the child forked, Popen not yet returned) had recorded nothing: stop_started missed it, the worker
    never reached its own late stop, and the probe, in a session of its own, outlived the rank. Now
    stop_started waits for the starts in flight, so the child is stopped before the process leaves."""
    import subprocess
    import sys

    from tests.support.hung_python import gone, hung_python

    hang, pidfile = hung_python(tmp_path)
    rank = f"""
import os, subprocess, threading, time
from flashdoctor.probe import interpreter
from tests.support.hung_python import started

real = subprocess.Popen

def slow_to_return(*args, **kwargs):  # the child runs; the worker is not back from Popen yet
    proc = real(*args, **kwargs)
    time.sleep(3)
    return proc

subprocess.Popen = slow_to_return
worker = threading.Thread(target=interpreter.start, args=({str(hang)!r}, [], os.environ), daemon=True)
worker.start()
started(__import__("pathlib").Path({str(pidfile)!r}))
interpreter.stop_started()
os._exit(0)
"""
    r = subprocess.run([sys.executable, "-c", rank], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert gone(int(pidfile.read_text()), within=0.5), "the probe outlived the process that started it"


@pytest.mark.system
def test_a_sigterm_handler_that_stops_the_started_scripts_can_land_while_their_lock_is_held() -> None:
    """A cluster rank's SIGTERM handler (_keep_outcome_on_sigterm) calls stop_started, and Python runs a
    handler in the main thread between two bytecodes: landing while the main thread held the lock of the
    started scripts (forgetting a reaped script, stop_started at the rank's end), the handler waited for a
    lock its own thread held, and the rank hung until its launcher killed it. Now the handler goes on."""
    import subprocess
    import sys

    rank = """
import os, signal, time
from flashdoctor.probe import interpreter

def handler(signum, frame):
    interpreter.stop_started()
    os._exit(7)

signal.signal(signal.SIGTERM, handler)
with interpreter._STARTED_LOCK:  # where _forget and stop_started hold it
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
os._exit(0)
"""
    try:
        r = subprocess.run([sys.executable, "-c", rank], capture_output=True, text=True, timeout=10, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("the SIGTERM handler waited for the lock its own thread held")
    assert r.returncode == 7, r.stderr


@pytest.mark.system
def test_a_script_is_stopped_where_there_are_no_process_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """interpreter.stop called os.killpg unguarded: where os has none (Windows) a timed-out script or a
    Ctrl-C raised AttributeError and left the script running. The one stop of run_process and
    interpreter.start kills the process itself there, as run_process always did."""
    from flashdoctor.probe import interpreter
    from tests.support.hung_python import hung_python, started

    hang, pidfile = hung_python(tmp_path)
    proc = interpreter.start(str(hang), [], os.environ)
    started(pidfile)
    monkeypatch.delattr(os, "killpg")
    interpreter.stop(proc)
    assert proc.returncode is not None and proc not in interpreter._STARTED
