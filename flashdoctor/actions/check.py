"""The `check` service: the environment a command works on (--python / --target, probes started early
in threads), the checks and verdicts with the default wheel finder, the smoke report merged in, and the
probed machine saved as a target spec. Returns values; the CLI renders them."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.model.environment import Environment

if TYPE_CHECKING:
    from concurrent.futures import Future

    from flashdoctor.actions.smoke import SmokeReport
    from flashdoctor.decide.checks import WheelFinder
    from flashdoctor.model.findings import CheckReport
    from flashdoctor.probe.default_python import Interpreter
    from flashdoctor.probe.interpreter import Launched
    from flashdoctor.probe.state import TargetState


def check_python_target(python: str | None, target: str | None) -> None:
    """--python must exist, and describes this machine: it cannot go with --target."""
    if target and python:
        raise UsageError("--target and --python exclude each other: a target spec describes another machine")
    if python:
        from flashdoctor.probe.default_python import is_bare_name, locate_python

        # a bare name is a command, as in a shell: python3, python3.12
        if locate_python(python, os.environ.get("PATH", os.defpath)) is None:
            also = ", and no such command on PATH" if is_bare_name(python) else ""
            raise UsageError(f"--python {python}: no such file{also}")


def choose_python(
    python: str | None, target: str | None, environ: Mapping[str, str], module_run: bool = False
) -> Interpreter | None:
    """The interpreter a command works on: --python, else the one running ``python -m flashdoctor``
    (``module_run``), else the environment the user is in (an activated venv or conda env, else the
    first Python on PATH that is not flashdoctor's own, else flashdoctor's own: probe.default_python);
    None with --target (a described machine)."""
    check_python_target(python, target)
    if target:
        return None
    from flashdoctor.probe.default_python import choose_interpreter

    return choose_interpreter(environ, explicit=python, module_run=module_run)


def target_python(python: str | None) -> str:
    """The interpreter a command runs things in: --python, else the one running flashdoctor."""
    check_python_target(python, None)
    return python or sys.executable


def resolve_environment(
    python: str | None,
    target: str | None,
    import_tests: bool = True,
    deep: bool = False,
    environ: Mapping[str, str] | None = None,
    torch_archs: bool = False,
    launched: Launched | None = None,
) -> tuple[Environment, str]:
    """The Environment for a command and where it came from: "target:FILE", else "probe".
    ``torch_archs``: also read torch's CUDA arch list (for an output that shows it: probe_environment);
    ``launched``: the environment probe already started for ``python`` (launch_probe)."""
    check_python_target(python, target)
    if target:
        from flashdoctor.actions.inputs import load_target

        return load_target(target), f"target:{target}"
    from flashdoctor.probe import InterpreterError, probe_environment

    try:
        return probe_environment(
            python=python,
            environ=os.environ if environ is None else environ,
            import_tests=import_tests,
            deep=deep,
            torch_archs=torch_archs,
            launched=launched,
        ), "probe"
    except InterpreterError as exc:
        raise UsageError(str(exc)) from None


def launch_probe(python: str | None, target: str | None, environ: Mapping[str, str]) -> Launched | None:
    """Start the target interpreter's environment probe now, so that it runs while the rest of the
    command is imported and the wheel index read (None with --target: nothing to probe)."""
    check_python_target(python, target)
    if target:
        return None
    from flashdoctor.probe import launch_interp

    return launch_interp(python or sys.executable, environ)


class EarlyProbes:
    """resolve_environment (and, for an install about to happen, the target's installed state) started
    in threads, so that they overlap the imports and set-up that follow. Errors surface where the
    results are taken, exactly as from a direct call."""

    def __init__(self, python: str | None, target: str | None, *, read_state: bool, variant: Variant) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._python, self._target = python, target
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flashdoctor-probe")
        self._env = None if target else self._pool.submit(resolve_environment, python, None, True)
        self.state: Future[TargetState] | None = None
        if read_state and not target and (python is None or os.path.exists(python)):
            from flashdoctor.probe.state import read_state as read

            dist = VARIANT_DIST[variant]
            self.state = self._pool.submit(read, python or sys.executable, os.environ, (dist,))
        self._pool.shutdown(wait=False)

    def environment(self) -> tuple[Environment, str]:
        if self._env is None:
            return resolve_environment(self._python, self._target, import_tests=True)
        return self._env.result()


@dataclass(frozen=True)
class CheckResult:
    report: CheckReport  # with the smoke report under extra["smoke"] when one ran
    exit_code: int
    smoke: SmokeReport | None = None


def checked(
    env: Environment, source: str, wheel_finder: WheelFinder | None, environ: Mapping[str, str]
) -> CheckReport:
    """The check pipeline of ``check`` and of each rank of ``check --distributed``: the checks and verdicts
    (prebuilt wheels from ``wheel_finder`` count as "installable"), then the wheel index's age, then
    installs killed part-way (none for a target spec)."""
    from flashdoctor.decide.explain import run_checks

    report = run_checks(env, source=source, wheel_finder=wheel_finder)
    report = with_index_freshness(report, environ)
    return with_interrupted_installs(report, env, environ)


def with_index_freshness(report: CheckReport, environ: Mapping[str, str]) -> CheckReport:
    """``report`` with the wheel index in use under ``extra["index"]`` and, when it is older than 60 days,
    the ``wheel-index-stale`` warning (decide.wheels.freshness); as it is when there is no index."""
    from flashdoctor.actions.wheel_index import index_status, today_of
    from flashdoctor.decide.wheels import WheelIndexError
    from flashdoctor.decide.wheels.freshness import index_info

    today = today_of(environ)
    try:
        location, stale = index_status(None, environ, today)
    except WheelIndexError:
        return report  # no index at all: inputs.wheel_finder said so
    return dataclasses.replace(
        report,
        findings=report.findings if stale is None else (*report.findings, stale),
        extra={**report.extra, "index": index_info(location, today)},
    )


def with_interrupted_installs(
    report: CheckReport, env: Environment, environ: Mapping[str, str]
) -> CheckReport:
    """``report`` with an ``install-interrupted`` warning for each install into the checked environment
    that was killed between its backup and its verification or restore (its complete backup is still in
    the cache, and no install into it holds its lock). Read without waiting for the install lock (``check``
    takes none): a missing or unreadable backup is no finding; while an install runs, none is (its own
    backup is there, and it restores the orphans first)."""
    if env.prefix is None:
        return report  # a target spec: not this machine's environment
    from packaging.utils import canonicalize_name

    from flashdoctor.actions.cache import WheelCache, default_cache_root
    from flashdoctor.actions.install.envlock import install_running
    from flashdoctor.actions.install.rollback import find_interrupted
    from flashdoctor.decide.checks.installed import install_interrupted

    backups = find_interrupted(WheelCache(default_cache_root(environ)).backups(), env.prefix)
    if not backups or install_running(env.prefix):
        return report

    def now(dist: str) -> str | None:
        return next(
            (i.version for i in env.installed if canonicalize_name(i.dist) == canonicalize_name(dist)), None
        )

    found = [install_interrupted(b.dist, b.version, b.installing, str(b.root), now(b.dist)) for b in backups]
    return dataclasses.replace(report, findings=(*report.findings, *found)) if found else report


def run_check(
    *,
    python: str | None,
    target: str | None,
    strict: bool,
    require: tuple[Variant, ...],
    save_target: str | None,
    deep: bool,
    import_tests: bool,
    smoke: bool,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    torch_archs: bool = True,
) -> CheckResult:
    """`flashdoctor check` (one machine): the report and the exit code, the smoke test's included.
    ``torch_archs``: read torch's arch list (the JSON report and --save-target show it; a human report
    only with -v); --save-target always reads it."""
    if smoke and target:
        raise UsageError("--smoke runs kernels on this machine; it cannot be combined with --target")
    launched = launch_probe(python, target, environ)  # first: it runs while what follows is imported
    try:
        from flashdoctor.actions import inputs

        if launched is not None:
            inputs.read_wheel_index_ahead(environ)  # while the probe runs
        env, source = resolve_environment(
            python,
            target,
            import_tests=import_tests,
            deep=deep,
            environ=environ,
            torch_archs=torch_archs or bool(save_target),
            launched=launched,
        )
    except BaseException:  # Ctrl-C or an error before the probe's answer was taken: stop it
        if launched is not None:
            launched.cancel()
        raise
    report = checked(env, source, inputs.wheel_finder(environ, say), environ)
    if save_target:
        inputs.write_json(save_target, env.to_target())
    code = report.exit_code(strict=strict, require=require)
    smoke_report = None
    if smoke:  # -- smoke (issue 5)
        from flashdoctor.actions.smoke import run_smoke

        smoke_report = run_smoke(target_python(python), environ)
        report = dataclasses.replace(report, extra={**report.extra, "smoke": smoke_report.to_json()})
        code = max(code, smoke_report.exit_code())
    return CheckResult(report, code, smoke_report)
