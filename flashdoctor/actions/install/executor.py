"""Carry out an install plan: fetch and verify, back up, install, verify again, or put everything back.

    obtain wheel (wheelhouse -> cache -> mirror/network; sha256 + wheel contents checked)
    -> refuse a wheel that needs another torch (nothing has changed yet)
    -> lock the target environment, back up what will be replaced
    -> <installer> install --no-deps --force-reinstall -c <torch pin> WHEEL
    -> add missing dependencies with every installed distribution pinned (may only add)
    -> verify: version in the target, torch unchanged, import in a subprocess, smoke test on a GPU
    -> on any failure (or Ctrl-C): restore the backup, check the restore, report with a diagnosis

The result is a value (InstallResult); rendering is elsewhere. Download failures come back as status
"download-failed" (exit 4), failed-and-restored installs as "rolled-back" (exit 5).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from packaging.utils import canonicalize_name

from flashdoctor.actions.fetch import Artifact, FetchOptions, obtain
from flashdoctor.actions.install.pip import Installer, choose_installer, constraints_text, run_installer
from flashdoctor.actions.install.rollback import (
    Backup,
    discard,
    find_interrupted,
    make_backup,
    restore,
    same_version,
)
from flashdoctor.actions.net.download import DownloadError
from flashdoctor.actions.wheelfile import dependency_problems, missing_requirements
from flashdoctor.errors import (
    EXIT_FAILED,
    EXIT_INSTALL,
    EXIT_NETWORK,
    EXIT_OK,
    FlashdoctorError,
    InstallError,
)
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.probe.state import TargetState, read_state

if TYPE_CHECKING:
    from flashdoctor.decide.explain import Diagnosis

Status = Literal["installed", "rolled-back", "restore-failed", "refused", "download-failed", "nothing-to-do"]


@dataclass(frozen=True)
class SmokeOutcome:
    """What the smoke test (issue "smoke and bench") says about the freshly installed variant."""

    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


SmokeHook = Callable[[str, Mapping[str, str], Variant], SmokeOutcome]


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class InstallResult:
    status: Status
    variant: Variant
    dist: str
    message: str
    wheel: WheelRef | None = None
    origin: str | None = None  # wheelhouse | cache | download | local
    sha256: str | None = None
    sha256_from: str | None = None  # index | computed
    previous: str | None = None  # version installed before
    installed: str | None = None  # version installed after (the restored one after a rollback)
    installer: str | None = None
    steps: tuple[Step, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    added: tuple[str, ...] = ()  # dependencies the install added
    warnings: tuple[str, ...] = ()
    smoke: SmokeOutcome | None = None
    error: str | None = None  # the failure, verbatim (tail)
    hint: str | None = None
    log: str | None = None
    verification: dict[str, Any] | None = None  # how the wheel's bytes were checked (fetch.Artifact)

    @property
    def exit_code(self) -> int:
        return {
            "installed": EXIT_OK,
            "nothing-to-do": EXIT_OK,
            "download-failed": EXIT_NETWORK,
            "rolled-back": EXIT_INSTALL,
            "restore-failed": EXIT_INSTALL,
            "refused": EXIT_INSTALL,
        }.get(self.status, EXIT_FAILED)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "variant": self.variant,
            "dist": self.dist,
            "message": self.message,
            "wheel": self.wheel.to_json() if self.wheel else None,
            "origin": self.origin,
            "sha256": self.sha256,
            "sha256_from": self.sha256_from,
            "previous": self.previous,
            "installed": self.installed,
            "installer": self.installer,
            "steps": [s.to_json() for s in self.steps],
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "added": list(self.added),
            "warnings": list(self.warnings),
            "smoke": None
            if self.smoke is None
            else {"ok": self.smoke.ok, "summary": self.smoke.summary, **self.smoke.details},
            "error": self.error,
            "hint": self.hint,
            "log": self.log,
            "verification": self.verification,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class InstallContext:
    python: str
    environ: Mapping[str, str]
    fetch: FetchOptions
    env: Environment  # the probed target (GPUs decide whether the smoke test runs)
    smoke: SmokeHook | None = None
    install_deps: bool = True
    log_dir: Path | None = None
    on_wait: Callable[[str], None] | None = None  # told when another install holds the environment
    # The target's state read ahead (started by the CLI while it probes the machine): used only when it
    # is still current once the environment lock is held (TargetState.is_current), else read again.
    early_state: Future[TargetState] | None = None


class _Failed(Exception):
    def __init__(self, what: str, output: str, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.output = output
        self.hint = hint


class _Steps:
    def __init__(self) -> None:
        self.done: list[Step] = []
        self._t = time.perf_counter()

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        now = time.perf_counter()
        self.done.append(Step(name, ok, detail, now - self._t))
        self._t = now


def env_lock_key(prefix: str) -> str:
    return "env-" + hashlib.sha256(os.path.abspath(prefix).encode()).hexdigest()[:16]


def _log_path(ctx: InstallContext) -> Path | None:
    d = ctx.log_dir
    if d is None:
        return None
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        return d / f"install-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    return None


def fetch_for_plan(plan: Plan, ctx: InstallContext) -> Artifact:
    assert plan.wheel is not None
    return obtain(plan.wheel, ctx.fetch, ctx.environ, VARIANT_DIST[plan.variant])


def execute(plan: Plan, ctx: InstallContext) -> InstallResult:
    variant = plan.variant
    dist = VARIANT_DIST[variant]
    steps = _Steps()
    if plan.action != "wheel" or plan.wheel is None:
        return InstallResult(
            "nothing-to-do", variant, dist, f"the plan is {plan.action!r}: no wheel to install"
        )
    log = _log_path(ctx)
    cache = ctx.fetch.cache
    # The environment's directory from the interpreter's path as given: a venv's bin/python is a symlink
    # to the base interpreter, so resolving it would make every venv of that Python share one lock.
    env_dir = os.path.dirname(os.path.dirname(os.path.abspath(ctx.python)))
    lock_key = env_lock_key(env_dir)

    def on_wait() -> None:
        if ctx.on_wait is not None:
            ctx.on_wait("another flashdoctor install into this environment is running; waiting for it")

    with cache.lock(lock_key, on_wait=on_wait), ThreadPoolExecutor(max_workers=1) as pool:
        warnings: list[str] = []
        # An install into this environment that was killed after its backup left it half-changed: put
        # back what that install replaced before anything else (the lock says it is not running).
        interrupted = find_interrupted(cache.root / "backups", env_dir)
        if interrupted:
            failed = _recover(interrupted, ctx, steps, log, warnings, variant, dist)
            if failed is not None:
                return failed
        # Reading the target (a subprocess) overlaps the fetch; nothing is changed before both are done.
        f_state = _usable_early_state(ctx.early_state)
        if f_state is None:
            f_state = pool.submit(read_state, ctx.python, ctx.environ, (dist,))
        try:
            art = fetch_for_plan(plan, ctx)
            if art.info.name != dist:
                raise DownloadError(f"{plan.wheel.filename} is a wheel of {art.info.name}, not of {dist}")
        except DownloadError as exc:
            steps.add("fetch", False, exc.message)
            return InstallResult(
                "download-failed",
                variant,
                dist,
                exc.message,
                wheel=plan.wheel,
                steps=tuple(steps.done),
                warnings=tuple(warnings),
                error=exc.message,
                hint=exc.hint,
                log=None,
            )
        steps.add("fetch", True, f"{art.origin}: {art.url}" + (" (resumed)" if art.resumed else ""))
        if art.sha256_from == "computed":
            warnings.append(
                f"the index publishes no sha256 for {plan.wheel.filename}; computed from the verified download: {art.sha256}"
            )
        base = dict(
            variant=variant,
            dist=dist,
            wheel=plan.wheel,
            origin=art.origin,
            sha256=art.sha256,
            sha256_from=art.sha256_from,
            verification=art.verification.to_json(),
            log=str(log) if log else None,
        )
        state = f_state.result()
        before = state.dist(dist)
        previous = before.version if before else None
        installer = choose_installer(state, ctx.environ, ctx.python)
        base.update(previous=previous, installer=installer.describe())
        conflict = "; ".join(dependency_problems(art.info, state.torch, state.markers, ctx.fetch.policy))
        if conflict:
            steps.add("torch guard", False, conflict)
            return InstallResult(
                "refused",
                message=conflict,
                installed=previous,
                steps=tuple(steps.done),
                warnings=tuple(warnings),
                hint="pick a wheel built for this torch (flashdoctor install --dry-run lists them) or build from source",
                **base,  # type: ignore[arg-type]
            )
        if before is not None and not before.has_record:
            msg = (
                f"the installed {dist} {previous} has no RECORD file, so it cannot be backed up and restored"
            )
            steps.add("backup", False, msg)
            return InstallResult(
                "refused",
                message=msg,
                installed=previous,
                steps=tuple(steps.done),
                warnings=tuple(warnings),
                hint=f"remove it with the tool that installed it ({before.installer or 'unknown'}), then run flashdoctor again",
                **base,  # type: ignore[arg-type]
            )
        steps.add("torch guard", True, f"torch {state.torch} stays")
        backup = make_backup(state, dist, art.info, cache.backup_dir(), environment=env_dir)
        steps.add("backup", True, f"{len(backup.files)} files of {dist} {previous or '(none)'}")
        try:
            added, smoke, more_warnings = _install_and_verify(art, state, installer, ctx, steps, log)
            warnings.extend(more_warnings)
        except BaseException as exc:  # Ctrl-C too: restore, then let it propagate
            return _roll_back(exc, backup, state, installer, ctx, steps, log, base, warnings)
        discard(backup)
        after = art.info.version
        return InstallResult(
            "installed",
            message=f"{dist} {after} installed and verified",
            installed=after,
            steps=tuple(steps.done),
            added=added,
            warnings=tuple(warnings),
            smoke=smoke,
            **base,  # type: ignore[arg-type]
        )


def _recover(
    found: list[Backup],
    ctx: InstallContext,
    steps: _Steps,
    log: Path | None,
    warnings: list[str],
    variant: Variant,
    dist: str,
) -> InstallResult | None:
    """Restore what interrupted installs replaced (newest first); an InstallResult when that fails."""
    for b in reversed(found):
        who = f"an earlier install into this environment (pid {b.pid}, backup {b.root.name})"
        state = read_state(ctx.python, ctx.environ, (b.dist,))
        now = state.dist(b.dist)
        now_v = now.version if now else None
        if not any(same_version(now_v, v) for v in (b.installing, b.version)):
            # Someone changed the distribution since (neither what was there nor what was coming): putting
            # the old files back would undo their change. The backup is stale.
            discard(b)
            warnings.append(
                f"{who} was interrupted, but {b.dist} has changed since ({now_v or 'not installed'}); "
                "its backup was left unused and removed"
            )
            continue
        installer = choose_installer(state, ctx.environ, ctx.python)
        rr = restore(b, installer, ctx.environ, log=log)
        if not rr.ok:
            problems = "; ".join(rr.problems)
            steps.add("recover", False, problems)
            return InstallResult(
                "restore-failed",
                variant,
                dist,
                f"{who} was interrupted, and restoring what it replaced failed: {problems}",
                steps=tuple(steps.done),
                warnings=tuple(warnings),
                error=problems,
                hint=f"its backup is kept in {b.root} (manifest.json lists every file with its sha256)",
                log=str(log) if log else None,
            )
        discard(b)
        steps.add("recover", True, f"{b.dist} {b.version or '(none)'} restored from {b.root.name}")
        since = sorted(set(state.dists) - set(b.dists_before) - {canonicalize_name(b.dist)})
        warnings.append(
            f"{who} was interrupted after its backup; what it replaced was restored first "
            f"({b.dist} {b.version or 'not installed'})"
            + (f"; installed since that backup and left in place: {', '.join(since)}" if since else "")
        )
    return None


def _usable_early_state(early: Future[TargetState] | None) -> Future[TargetState] | None:
    """The state read ahead, if it read without error and nothing was installed or removed since."""
    if early is None:
        return None
    try:
        state = early.result()
    except Exception:  # read again under the lock, where an error is reported as usual
        return None
    return early if state.is_current() else None


def _install_and_verify(
    art: Artifact,
    state: TargetState,
    installer: Installer,
    ctx: InstallContext,
    steps: _Steps,
    log: Path | None,
) -> tuple[tuple[str, ...], SmokeOutcome | None, list[str]]:
    from flashdoctor.probe import import_test

    dist = art.info.name
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="flashdoctor-") as td:
        cons = Path(td) / "constraints.txt"
        cons.write_text(constraints_text(state), encoding="utf-8")
        cmd = installer.install_cmd([str(art.path)], cons, no_deps=True, reinstall=True)
        rc, out = run_installer(cmd, ctx.environ, log)
        if rc != 0:
            steps.add("install", False, f"{installer.describe()} exited {rc}")
            raise _Failed(f"{installer.describe()} install failed (exit {rc})", out)
        steps.add("install", True, f"{installer.describe()} install --no-deps {art.info.filename}")
        added: tuple[str, ...] = ()
        mid: TargetState | None = None  # the state read after the dependencies step, if it ran
        missing = missing_requirements(art.info, state.dists, state.markers)
        if missing and ctx.install_deps:
            cons.write_text(constraints_text(state, everything=True, exclude=(dist,)), encoding="utf-8")
            wh = ctx.fetch.wheelhouse
            cmd = installer.install_cmd(
                missing,
                cons,
                no_deps=False,
                reinstall=False,
                find_links=[str(wh.root)] if wh is not None and wh.root.is_dir() else [],
                index_url=ctx.fetch.index_url,
            )
            rc, out = run_installer(cmd, ctx.environ, log)
            mid = read_state(ctx.python, ctx.environ, (dist,))
            added = tuple(sorted(set(mid.dists) - set(state.dists) - {dist}))
            if rc != 0:
                warnings.append(
                    f"could not add the missing dependencies {', '.join(missing)} (exit {rc}; offline?); "
                    "the import check decides whether the install stands"
                )
                steps.add("dependencies", False, f"missing: {', '.join(missing)}")
            else:
                steps.add("dependencies", True, f"added {', '.join(added) or 'nothing'}")
        elif missing:
            warnings.append(f"not installed (dependencies of {dist}): {', '.join(missing)}")
    with ThreadPoolExecutor(max_workers=1) as pool:  # the import check runs alongside the version read-back
        f_import = pool.submit(import_test, ctx.python, dist, ctx.environ)
        # Nothing has changed the environment since a read after the dependencies step.
        after = mid if mid is not None else read_state(ctx.python, ctx.environ, (dist,))
        res = f_import.result()
    now = after.dist(dist)
    if now is None or not same_version(now.version, art.info.version):
        steps.add("verify version", False, f"{dist} is {now.version if now else 'missing'}")
        raise _Failed(
            f"after the install {dist} is {now.version if now else 'not installed'}, not {art.info.version}",
            "",
        )
    if after.torch != state.torch:
        steps.add("verify torch", False, f"torch {state.torch} -> {after.torch}")
        raise _Failed(f"torch changed from {state.torch} to {after.torch} during the install", "")
    steps.add("verify version", True, f"{dist} {now.version}, torch {after.torch} unchanged")
    if not res.ok:
        steps.add(
            "import check", False, (res.error or "").strip().splitlines()[-1:][0] if res.error else "failed"
        )
        raise _Failed(
            f"importing the new {dist} {art.info.version} failed"
            + (" (the interpreter crashed)" if res.crashed else ""),
            res.error or "",
        )
    steps.add("import check", True, f"import {dist} in a fresh interpreter")
    smoke: SmokeOutcome | None = None
    if ctx.env.gpus and ctx.smoke is not None:
        smoke = ctx.smoke(ctx.python, ctx.environ, ctx_variant(art))
        steps.add("smoke test", smoke.ok, smoke.summary)
        if not smoke.ok:
            raise _Failed(
                f"the smoke test of {dist} {art.info.version} failed: {smoke.summary}", smoke.summary
            )
    elif ctx.env.gpus:
        steps.add("smoke test", True, "skipped: not requested")
    else:
        steps.add("smoke test", True, "skipped: no GPU")
    return added, smoke, warnings


def ctx_variant(art: Artifact) -> Variant:
    from flashdoctor.knowledge.variants import DIST_VARIANT

    return DIST_VARIANT[art.info.name]


def _roll_back(
    exc: BaseException,
    backup: Backup,
    state: TargetState,
    installer: Installer,
    ctx: InstallContext,
    steps: _Steps,
    log: Path | None,
    base: dict[str, Any],
    warnings: list[str],
) -> InstallResult:
    interrupted = not isinstance(exc, Exception)
    if isinstance(exc, _Failed):
        what, output, hint = exc.what, exc.output, exc.hint
    elif isinstance(exc, FlashdoctorError):
        what, output, hint = exc.message, "", exc.hint
    elif interrupted:
        what, output, hint = "interrupted", "", None
    else:
        what, output, hint = f"{type(exc).__name__}: {exc}", "", None
    # Dependencies added before the failure: whatever is new since the backup, besides the dist itself.
    added: tuple[str, ...] = ()
    with contextlib.suppress(FlashdoctorError):
        now = read_state(ctx.python, ctx.environ, ())
        added = tuple(sorted(set(now.dists) - set(state.dists) - {backup.dist}))
    rr = restore(backup, installer, ctx.environ, added=added, log=log)
    env = ctx.env
    from flashdoctor.decide.explain import (
        explain_text,  # the failure path only: its signatures take a while to load
    )

    diagnoses = tuple(explain_text(output, env)) if output else ()
    if rr.ok:
        steps.add("rollback", True, f"{backup.dist} {backup.version or '(none)'} restored and checked")
        discard(backup)
        status: Status = "rolled-back"
        message = (
            f"{what}; the previous state ({backup.dist} {backup.version or 'not installed'}) was restored"
        )
    else:
        steps.add("rollback", False, "; ".join(rr.problems))
        status = "restore-failed"
        message = (
            f"{what}; RESTORING THE PREVIOUS STATE FAILED: {'; '.join(rr.problems)}. "
            f"The saved files and manifest.json are in {backup.root}"
        )
    if interrupted:
        raise exc
    return InstallResult(
        status,
        message=message,
        installed=rr.version,
        steps=tuple(steps.done),
        diagnoses=diagnoses,
        warnings=tuple(warnings),
        error=output[-4000:] if output else what,
        hint=hint,
        added=added,
        **base,
    )


__all__ = ["InstallContext", "InstallError", "InstallResult", "SmokeHook", "SmokeOutcome", "Step", "execute"]
