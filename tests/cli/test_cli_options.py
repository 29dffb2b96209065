"""The command tree: each shared option declared once (one meaning everywhere), variant flags from the
registry, examples in every --help, and the issue-17 CLI fixes (two variant flags, a negative --limit,
--join-timeout, "dry run" only for a dry run); the crash log keeps no credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flashdoctor.cli import cli, main
from flashdoctor.cli.options import build_options
from flashdoctor.knowledge.variants import VARIANTS, variant_info
from tests.support.hung_python import gone, hung_python, started
from tests.support.paths import ROOT, TARGETS

H100 = str(TARGETS / "h100.json")
SHARED = (
    "--python", "--target", "--fa2", "--fa3", "--fa4", "--version", "--allow-community", "--index",
    "--wheelhouse", "--index-url", "--allow-http", "--source", "--ref", "--arch", "--head-dims", "--dtypes",
    "--max-jobs", "--nvcc-threads", "--gpu", "--device",
)  # fmt: skip


def options_by_name() -> dict[str, list[tuple[str, click.Option]]]:
    out: dict[str, list[tuple[str, click.Option]]] = {}
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option):
                for opt in p.opts:
                    out.setdefault(opt, []).append((name, p))
    return out


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_each_shared_option_has_one_declaration() -> None:
    seen = options_by_name()
    for opt in SHARED:
        uses = seen[opt]
        assert len(uses) >= 2, f"{opt} is not shared"
        first = uses[0][1]
        for command, p in uses[1:]:
            same = (p.name, p.help, p.metavar, repr(p.type), p.is_flag, p.hidden)
            assert same == (
                first.name,
                first.help,
                first.metavar,
                repr(first.type),
                first.is_flag,
                first.hidden,
            ), f"{opt} differs between {uses[0][0]} and {command}"
    # --index-url: one meaning (the simple index to fetch the package from) for install, lock and build
    assert {c for c, _ in seen["--index-url"]} == {"install", "lock", "build"}
    assert "PEP 503/691 simple index" in (seen["--index-url"][0][1].help or "")


def test_variant_flags_come_from_the_registry() -> None:
    seen = options_by_name()
    for v in VARIANTS:
        for command, p in seen[f"--{v}"]:
            assert variant_info(v).title in (p.help or ""), (command, v)
    assert {c for c, _ in seen["--fa4"]} == {"install", "lock", "wheels"}  # FA4 has nothing to build
    assert {c for c, _ in seen["--fa2"]} == {"install", "lock", "wheels", "build"}


def test_every_command_has_examples_in_its_help() -> None:
    for name in [*cli.commands, None]:
        args = [name, "--help"] if name else ["--help"]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "Examples:\n  " in r.output, name
        assert "\b" not in r.output


def test_two_variant_flags_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["install", "--fa2", "--fa3", "--dry-run", "--target", H100], capsys)
    assert code == 2 and "--fa2 and --fa3: choose one variant" in err
    code, _, err = run_main(["wheels", "--fa4", "--fa3", "--target", H100], capsys)
    assert code == 2 and "choose one" in err
    code, out, _ = run_main(["install", "--fa3", "--fa3", "--dry-run", "--json", "--target", H100], capsys)
    assert code == 0 and json.loads(out)["variant"] == "fa3"  # the same flag twice is one choice
    code, _, err = run_main(["build", "--fa4", "--dry-run", "--target", H100], capsys)
    assert code == 2 and "No such option '--fa4'" in err


def test_variant_and_backend_names_are_read_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    """Users write FA2 / FA3 (as the docs title them); `check --require FA2` was a usage error (exit 2)
    and so was the Action's `require: FA2`. Every option that takes variant names reads them in any case
    and hands the command the registry's spelling."""
    code, _, err = run_main(
        ["check", "--target", str(TARGETS / "h100-torch213.json"), "--require", "FA2"], capsys
    )
    assert code == 1 and "--require fa2: fa2 is buildable, not ready" in err, err
    takes_variants = [
        (name, p)
        for name, cmd in cli.commands.items()
        for p in cmd.params
        if isinstance(p.type, click.Choice) and set(VARIANTS) <= set(p.type.choices)
    ]
    assert {(name, p.name) for name, p in takes_variants} == {
        ("check", "require"),
        ("smoke", "variants"),
        ("bench", "backends"),
    }
    for _, p in takes_variants:
        assert p.type.convert("FA3", p, None) == "fa3"
    code, _, err = run_main(["check", "--target", H100, "--require", "FA5"], capsys)
    assert code == 2 and "'FA5' is not one of" in err


def test_a_negative_limit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["wheels", "--limit", "-3", "--target", H100], capsys)
    assert code == 2 and "-3 is not in the range x>=0" in err


def test_an_empty_value_is_a_usage_error_not_a_missing_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`--target "$SPEC"` with SPEC unset: check probed this machine instead of the described one;
    `install --plan "" --yes` would install a fresh plan instead of the one named (issue: CLI audit)."""
    cases = [
        ["check", "--target", ""],
        ["check", "--python", ""],
        ["wheels", "--index", ""],
        ["install", "--dry-run", "--target", H100, "--plan", ""],
        ["install", "--dry-run", "--target", H100, "--wheelhouse", ""],
        ["lock", "--target", H100, "--version", ""],
        ["explain", ""],
    ]
    for args in cases:
        code, out, err = run_main(args, capsys)
        assert code == 2 and "must not be empty" in err and not out, (args, code, err)
    # every text option and argument, of every command, declared now or later
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            assert p.type is not click.STRING, (name, p.name)


def test_a_timeout_of_nan_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """click's FloatRange(min=1) lets "nan" through (NaN < 1 is false) and no deadline compares past it."""
    for args in (
        ["smoke", "--timeout", "nan"],
        ["bench", "--timeout", "NaN"],
        ["check", "--distributed", "--join-timeout", "nan"],
        ["check", "--distributed", "--rank-timeout", "nan"],
        ["check", "--distributed", "--timeout", "nan"],
    ):
        code, out, err = run_main(args, capsys)
        assert code == 2 and "is not a number of seconds" in err and not out, (args, err)


def test_the_old_timeout_of_check_distributed_warns(capsys: pytest.CaptureFixture[str]) -> None:
    # No launcher in the environment: the distributed check stops with a usage error, after the warning.
    code, _, err = run_main(["check", "--distributed", "--timeout", "5"], capsys)
    assert code == 2 and "--timeout is deprecated for check --distributed; use --join-timeout" in err
    code, _, err = run_main(["check", "--distributed", "--timeout", "5", "--join-timeout", "6"], capsys)
    assert code == 2 and "give only --join-timeout" in err
    assert "--timeout" not in CliRunner().invoke(cli, ["check", "--help"]).output.replace("-timeout", "")


def test_one_build_options_parser() -> None:
    from flashdoctor.actions.source_build.source import PYPI_SIMPLE

    opts = build_options(
        "fa2",
        source=None,
        ref=None,
        arch="80,90",
        head_dims="128",
        dtypes="bf16",
        max_jobs=4,
        nvcc_threads=None,
    )
    assert (
        opts.request.archs == (80, 90) and opts.request.head_dims == (128,) and opts.index_url == PYPI_SIMPLE
    )
    mirror = build_options(
        "fa3", source=None, ref="v1", arch=None, head_dims=None, dtypes=None, max_jobs=None, nvcc_threads=None,
        index_url="https://mirror.example/simple", disable=("fp8", "fp8"),
    )  # fmt: skip
    assert mirror.index_url == "https://mirror.example/simple" and mirror.request.disable == ("fp8",)
    with pytest.raises(Exception, match="--ref is for --fa3"):
        build_options(
            "fa2",
            source=None,
            ref="v1",
            arch=None,
            head_dims=None,
            dtypes=None,
            max_jobs=None,
            nvcc_threads=None,
        )


@pytest.mark.system
def test_install_without_dry_run_never_says_dry_run(tmp_path: Path) -> None:
    # a plan that installs nothing and holds on this GPU-less machine (a replayed plan is judged here: a
    # "build" plan does not hold where this machine's own plan is "unsupported")
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "action": "unsupported",
                "variant": "fa2",
                "wheel": None,
                "reasons": ["no NVIDIA GPU is visible"],
            }
        )
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    fd = [sys.executable, "-m", "flashdoctor", "install", "--plan", str(plan), "--python", sys.executable]
    p = subprocess.run([*fd, "--yes"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "flashdoctor install --fa2:" in p.stdout and "nothing was changed\n" in p.stdout, p.stdout
    assert "dry run" not in p.stdout + p.stderr and "--dry-run" not in p.stdout
    d = subprocess.run([*fd, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert (
        d.returncode == 1  # install --dry-run: the plan is unsupported (docs/json.md)
        and "install --fa2 --dry-run" in d.stdout
        and "nothing was changed (dry run)" in d.stdout
    ), d.stdout + d.stderr


def test_the_crash_log_keeps_no_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import flashdoctor.decide.checks

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("failed to fetch https://alice:hunter2@mirror.example/simple/?token=s3cr3t")

    monkeypatch.setattr(flashdoctor.decide.checks, "run_checks", boom)
    argv = [
        "flashdoctor",
        "check",
        "--target",
        H100,
        "--index-url=https://bob:pa55word@mirror.example/simple",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    code, _, err = run_main(["check", "--target", H100], capsys)
    assert code == 3
    log = Path(err.split("traceback is in ")[1].split(";")[0]).read_text()
    assert "RuntimeError: failed to fetch https://***@mirror.example/simple/?token=REDACTED" in log
    assert "--index-url=https://***@mirror.example/simple" in log
    for secret in ("alice", "hunter2", "s3cr3t", "bob", "pa55word"):
        assert secret not in log and secret not in err
    assert oct(Path(err.split("traceback is in ")[1].split(";")[0]).stat().st_mode & 0o777) == "0o600"


def test_a_user_error_that_names_a_credentialed_url_is_printed_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The catch-all: a FlashdoctorError whose raiser forgot to redact still reaches the terminal without the
    # password, the secret query value or the GITHUB_TOKEN value.
    import flashdoctor.decide.checks
    from flashdoctor.errors import NetworkError

    def boom(*a: object, **k: object) -> None:
        raise NetworkError(
            "cannot reach https://carol:opensesame@mirror.example/simple/?token=t0ps3cret",
            hint="retry with ghp_fake0token0value later",
        )

    monkeypatch.setattr(flashdoctor.decide.checks, "run_checks", boom)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake0token0value")
    code, _, err = run_main(["check", "--target", H100], capsys)
    assert code == 4 and "https://***@mirror.example/simple/?token=REDACTED" in err
    for secret in ("carol", "opensesame", "t0ps3cret", "ghp_fake0token0value"):
        assert secret not in err


def test_the_dependency_modules_are_pyprojects_dependencies() -> None:
    import tomllib
    from packaging.requirements import Requirement

    from flashdoctor.errors import DEPENDENCY_MODULES

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(DEPENDENCY_MODULES.values()) == sorted(Requirement(d).name for d in deps)
    for module in DEPENDENCY_MODULES:
        __import__(module)  # each import name is the one its distribution provides


@pytest.mark.system
@pytest.mark.parametrize("module", ["platformdirs", "rich", "click"])
def test_a_dependency_that_cannot_be_imported_is_named_with_the_pip_command(
    tmp_path: Path, module: str
) -> None:
    # Seen on the GPU machine: flashdoctor run from a checkout (PYTHONPATH) in a Python without platformdirs
    # crashed in `check`, and its crash report crashed too, on the same import. A real interpreter here, with
    # the module made unimportable the way Python itself does it (None in sys.modules).
    # click is imported before main() runs: `python -m flashdoctor` reports it (flashdoctor/__main__.py).
    code = (
        f"import runpy, sys; sys.modules[{module!r}] = None\n"
        f"sys.argv = ['flashdoctor', 'check', '--target', {H100!r}]\n"
        "runpy.run_module('flashdoctor', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FLASHDOCTOR_CACHE_DIR"}
    env.update(PYTHONPATH=str(ROOT), NO_COLOR="1", HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "c"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "unexpected error" not in p.stderr
    assert f"flashdoctor's dependency {module} is not installed in {sys.executable}" in p.stderr
    assert f"{sys.executable} -m pip install {module}" in p.stderr


def test_the_crash_report_survives_platformdirs_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the crash log's directory comes from platformdirs; the report of the bug is printed without it
    import flashdoctor.decide.checks

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(flashdoctor.decide.checks, "run_checks", boom)
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setenv("FLASHDOCTOR_CACHE_DIR", str(tmp_path))
    code, _, err = run_main(["check", "--target", H100], capsys)
    assert code == 3 and "RuntimeError: a bug" in err and "traceback is in" not in err


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
@pytest.mark.parametrize(
    ("sig", "code", "said", "delay"),
    [
        (signal.SIGTERM, 143, "terminated (SIGTERM)", 0.0),
        (signal.SIGTERM, 143, "terminated (SIGTERM)", 0.5),
        (signal.SIGINT, 130, "interrupted", 0.2),
    ],
)
def test_sigterm_and_ctrl_c_stop_the_probe_and_exit_at_once(
    tmp_path: Path, sig: signal.Signals, code: int, said: str, delay: float
) -> None:
    """`timeout`, `docker stop` and a cancelled CI job send SIGTERM. Python's default ended flashdoctor at
    once and the probe's interpreter (in a session of its own, so no signal of the terminal reaches it)
    went on running. And Ctrl-C (or now SIGTERM) that reached the main thread while a worker thread waited
    on the probe left flashdoctor waiting for the probe's timeout. Now: the child is stopped, the exit at
    once (143, or 130 for Ctrl-C), wherever the main thread was (``delay``)."""
    hang, pidfile = hung_python(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashdoctor", "check", "--python", str(hang)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        child = started(pidfile)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)  # the probe's own timeout is longer
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert said in err and "Traceback" not in err
    assert gone(child), "the probe's interpreter outlived flashdoctor"  # killed and reaped by flashdoctor


@pytest.mark.system
def test_a_hang_up_of_a_terminal_that_is_gone_stops_the_probe_and_exits_129(tmp_path: Path) -> None:
    """An ssh session that closes: the terminal goes away (every write to it fails, EIO) and SIGHUP arrives.
    click's "Aborted!" and flashdoctor's own message then raised OSError in place of the hang-up: a crash
    report, exit 1, and the probe in a session of its own left to the crash path."""
    import pty

    hang, pidfile = hung_python(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashdoctor", "check", "--python", str(hang)],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        child = started(pidfile)
        os.close(master)  # the terminal is gone
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 129
    assert gone(child), "the probe's interpreter outlived flashdoctor"


@pytest.mark.system
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_as_the_probe_starts_stops_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sig: int, code: int
) -> None:
    """`check` starts the environment probe before the code that would cancel it on Ctrl-C: a signal that
    landed as it started (the child running, not yet handed back) exited 130 or 143 and left the probe's
    interpreter running in a session of its own. Now every target script still running is stopped on the
    way out."""
    from flashdoctor.probe import interpreter

    hang, _ = hung_python(tmp_path)
    real, children = subprocess.Popen, []

    def popen_then_signal(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = real(*args, **kwargs)  # type: ignore[call-overload]
        children.append(proc.pid)
        signal.raise_signal(sig)  # the signal lands as the probe starts
        return proc

    monkeypatch.setenv("FLASHDOCTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(interpreter.subprocess, "Popen", popen_then_signal)
    rc, _, err = run_main(["check", "--python", str(hang)], capsys)
    assert rc == code and "Traceback" not in err, err
    assert children and gone(children[0]), "the probe's interpreter outlived flashdoctor"


def test_an_output_file_that_cannot_be_written_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`-o` is checked when the options are read: `bench -o /missing/dir/x.json` ran the whole bench and
    failed only at the end (issue: CLI audit)."""
    missing = tmp_path / "missing" / "r.json"
    for args in (
        ["bench", "-o", str(missing)],
        ["smoke", "-o", str(missing)],
        ["lock", "--target", H100, "-o", str(missing)],
        ["smoke", "-o", str(tmp_path)],  # a directory
    ):
        code, _, err = run_main(args, capsys)
        assert code == 2 and ("is not a writable directory" in err or "is a directory" in err), (args, err)
    # a new file in a directory that can be written passes, as given
    from flashdoctor.cli.options import _writable_file

    ok = str(tmp_path / "ok.json")
    assert _writable_file(click.Context(cli), click.Option(["-o"]), ok) == ok


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("json", [(), ("--json",)], ids=["human", "json"])
def test_a_reader_that_closes_stdout_early_gets_exit_1_and_no_traceback(json: tuple[str, ...]) -> None:
    """`flashdoctor wheels --all | head -1`: the pipe closes while 2 MB are still to be written. The output
    was cut: exit 1 (click's convention, docs/json.md), nothing on stderr (no traceback, no 'Exception ignored').
    The JSON document (2.7 MB) was one write, which a pipe whose reader has gone accepts in part and io's
    buffered writer reports as done: exit 0 for a cut document."""
    target = str(TARGETS / "h100.json")
    p = subprocess.Popen(
        [sys.executable, "-m", "flashdoctor", "wheels", "--all", "--target", target, *json],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline()
    p.stdout.close()
    try:
        err = p.stderr.read().decode()
        rc = p.wait(timeout=120)
    finally:
        p.kill()
        p.stderr.close()
    said = f"target: {target}\n" if json else ""  # --json names the machine on stderr
    assert rc == 1 and err == said, (rc, err[-2000:])
