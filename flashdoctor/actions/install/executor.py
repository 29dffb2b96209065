"""Carry out an install plan: fetch and verify, back up, install, verify again, or put everything back.

    read the target's state; lock the target environment (flashdoctor.actions.install.envlock)
    -> restore what an install killed after its backup replaced; remove backups killed mid-way
    -> obtain the wheel as a private copy (wheelhouse -> cache -> mirror/network; the sha256 and the
       wheel's contents are checked on that copy, and pip is handed that copy, never a shared file)
    -> refuse a wheel that needs another torch, or that ships files other distributions own
       (flashdoctor.actions.install.ownership); nothing has changed yet
    -> back up what will be replaced
    -> <installer> install --no-deps --force-reinstall -c <torch pin> WHEEL
    -> add missing dependencies with every installed distribution pinned (may only add)
    -> verify: version in the target, torch unchanged, import in a subprocess, smoke test on a GPU
    -> on any failure (or Ctrl-C): restore the backup, check the restore, report with a diagnosis

The result is a value (flashdoctor.model.install.InstallResult); rendering is elsewhere. Download
failures come back as status "download-failed" (exit 4), failed-and-restored installs as "rolled-back"
(exit 5), a wheel refused before anything changed (or a backup that could not be made) as "refused".
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from flashdoctor.actions.fetch import Artifact, FetchOptions, obtain
from flashdoctor.actions.install.envlock import environment_lock
from flashdoctor.actions.install.ownership import describe, foreign_files
from flashdoctor.actions.install.pip import Installer, choose_installer, constraints_text, run_installer
from flashdoctor.actions.install.rollback import (
    Backup,
    BackupError,
    clean_incomplete,
    discard,
    find_interrupted,
    make_backup,
    restore,
    same_version,
    wheel_target_paths,
)
from flashdoctor.actions.net.download import DownloadError
from flashdoctor.actions.wheelfile import dependency_problems, missing_requirements
from flashdoctor.errors import FlashdoctorError
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.install import InstallResult, SmokeHook, SmokeOutcome, Status, Step, digest_published
from flashdoctor.model.plan import Plan
from flashdoctor.probe.state import TargetState, read_owners, read_state


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


def _log_path(ctx: InstallContext) -> Path | None:
    d = ctx.log_dir
    if d is None:
        return None
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        return d / f"install-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    return None


def fetch_for_plan(plan: Plan, ctx: InstallContext, stage: Path | None = None) -> Artifact:
    assert plan.wheel is not None
    return obtain(plan.wheel, ctx.fetch, ctx.environ, VARIANT_DIST[plan.variant], stage=stage)


def execute(plan: Plan, ctx: InstallContext) -> InstallResult:
    variant = plan.variant
    dist = VARIANT_DIST[variant]
    if plan.action != "wheel" or plan.wheel is None:
        return InstallResult(
            "nothing-to-do", variant, dist, f"the plan is {plan.action!r}: no wheel to install"
        )
    # The state names the environment (its prefix holds the lock); read ahead, it is trusted only if
    # nothing was installed or removed by the time the lock is held.
    state = _early_state(ctx.early_state) or read_state(ctx.python, ctx.environ, (dist,))
    # The private directory the wheel is copied into (0700, this process's): what pip installs.
    with (
        environment_lock(state.prefix, on_wait=_on_wait(ctx)),
        tempfile.TemporaryDirectory(prefix="flashdoctor-install-") as stage,
    ):
        if not state.is_current():
            state = read_state(ctx.python, ctx.environ, (dist,))
        return _locked(plan, ctx, state, Path(stage))


def _on_wait(ctx: InstallContext) -> Callable[[], None]:
    def on_wait() -> None:
        if ctx.on_wait is not None:
            ctx.on_wait("another flashdoctor install into this environment is running; waiting for it")

    return on_wait


def recover_interrupted(
    ctx: InstallContext, variant: Variant, prefix: str
) -> tuple[InstallResult | None, list[str], list[str]]:
    """For an install whose plan installs nothing (the variant imports, or cannot run here): restore what
    installs into the environment at ``prefix`` killed after their backup replaced, under its lock, as
    ``execute`` does first. The warnings saying what was done (none: nothing was interrupted), what was
    restored into the environment (each its ``recover`` step's detail: "flash-attn 2.8.2 restored from
    BACKUP"; none where a backup was only found stale), and the ``restore-failed`` result when a restore
    fails."""
    if not find_interrupted(ctx.fetch.cache.backups(), prefix):
        return None, [], []
    warnings: list[str] = []
    steps = _Steps()
    with environment_lock(prefix, on_wait=_on_wait(ctx)):
        found = find_interrupted(ctx.fetch.cache.backups(), prefix)  # another install may have done it
        if not found:
            return None, [], []
        failed = _recover(found, ctx, steps, _log_path(ctx), warnings, variant, VARIANT_DIST[variant])
    return failed, warnings, [s.detail for s in steps.done if s.name == "recover" and s.ok]


def _locked(plan: Plan, ctx: InstallContext, state: TargetState, stage: Path) -> InstallResult:
    assert plan.wheel is not None
    variant = plan.variant
    dist = VARIANT_DIST[variant]
    steps = _Steps()
    log = _log_path(ctx)
    cache = ctx.fetch.cache
    env_dir = state.prefix
    warnings: list[str] = []
    # An install into this environment that was killed after its backup left it half-changed: put
    # back what that install replaced before anything else (the lock says it is not running).
    interrupted = find_interrupted(cache.backups(), env_dir)
    if interrupted:
        failed = _recover(interrupted, ctx, steps, log, warnings, variant, dist)
        if failed is not None:
            return failed
        state = read_state(ctx.python, ctx.environ, (dist,))
    clean_incomplete(cache.backups(), env_dir)  # killed while backing up: nothing had changed
    try:
        art = fetch_for_plan(plan, ctx, stage)
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
    if not digest_published(art.sha256_from):
        warnings.append(
            f"no published sha256 for {plan.wheel.filename}: sha256 recorded (no published digest) "
            f"from what arrived: {art.sha256}"
        )
    base: dict[str, Any] = dict(
        variant=variant,
        dist=dist,
        wheel=plan.wheel,
        origin=art.origin,
        sha256=art.sha256,
        sha256_from=art.sha256_from,
        verification=art.verification.to_json(),
        log=str(log) if log else None,
    )
    before = state.dist(dist)
    previous = before.version if before else None
    installer = choose_installer(state, ctx.environ, ctx.python)
    base.update(previous=previous, installer=installer.describe())

    def refused(step: str, message: str, hint: str) -> InstallResult:
        steps.add(step, False, message)
        return InstallResult(
            "refused",
            message=message,
            installed=previous,
            steps=tuple(steps.done),
            warnings=tuple(warnings),
            hint=hint,
            **base,
        )

    conflict = "; ".join(dependency_problems(art.info, state.torch, state.markers, ctx.fetch.policy))
    if conflict:
        return refused(
            "torch guard",
            conflict,
            "pick a wheel built for this torch (flashdoctor install --dry-run lists them) or build from source",
        )
    clashes = foreign_files(
        dist,
        read_owners(ctx.python, ctx.environ, wheel_target_paths(art.info, state), str(stage)),
        state.purelib,
    )
    if clashes:
        return refused(
            "file guard",
            describe(dist, art.info.filename, clashes),
            "use a wheel from the official source, or one flashdoctor built; report the wheel to whoever published it",
        )
    if before is not None and not before.has_record:
        return refused(
            "backup",
            f"the installed {dist} {previous} has no RECORD file, so it cannot be backed up and restored",
            f"remove it with the tool that installed it ({before.installer or 'unknown'}), then run flashdoctor again",
        )
    steps.add("torch guard", True, f"torch {state.torch} stays; no file of another distribution replaced")
    try:
        backup = make_backup(state, dist, art.info, cache.backup_dir(), environment=env_dir)
    except BackupError as exc:
        return refused("backup", exc.message, exc.hint or "")
    steps.add("backup", True, f"{len(backup.files)} files of {dist} {previous or '(none)'}")
    try:
        added, smoke, more_warnings = _install_and_verify(art, state, installer, ctx, steps, log)
        warnings.extend(more_warnings)
    except BaseException as exc:  # Ctrl-C too: restore, then let it propagate
        return _roll_back(exc, backup, state, installer, ctx, steps, log, base, warnings)
    discard(backup)
    after = art.info.version
    checked = "import" + (" and smoke test" if smoke is not None and smoke.ok else "")
    return InstallResult(
        "installed",
        message=f"{dist} {after} installed ({checked} passed)",
        installed=after,
        steps=tuple(steps.done),
        added=added,
        warnings=tuple(warnings),
        smoke=smoke,
        **base,
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
        # Not installed at all is a state the interrupted install passes through (pip's --force-reinstall
        # takes the old version away before it writes the new one; a restore uninstalls the new one before
        # it copies the old one back): that is restored, never taken for a change by hand.
        if now_v is not None and not any(same_version(now_v, v) for v in (b.installing, b.version)):
            # Someone installed another version since (neither what was there nor what was coming):
            # putting the old files back would undo their change. The backup is stale.
            discard(b)
            warnings.append(
                f"{who} was interrupted, but {b.dist} has changed since ({now_v}); "
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


def _early_state(early: Future[TargetState] | None) -> TargetState | None:
    """The state read ahead, if it read without error (under the lock it is used only while current)."""
    if early is None:
        return None
    try:
        return early.result()
    except Exception:  # read again, where an error is reported as usual
        return None


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

    diagnoses = tuple(explain_text(output, env, here=True)) if output else ()  # pip ran on this machine
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


__all__ = ["InstallContext", "execute"]
