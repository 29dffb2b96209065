"""The `install`, `lock` and `build` services: which plan (a --plan file, the selector, a local build in a
wheelhouse, a source build), where wheels come from (cache, wheelhouses, --index-url, the https
policy), and the lock flow (hash, URL check). Values in, values out; the CLI renders them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flashdoctor.actions import inputs
from flashdoctor.errors import FlashdoctorError, PlanDoesNotHold, UsageError
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant, variant_info
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan

if TYPE_CHECKING:
    from concurrent.futures import Future

    from packaging.specifiers import SpecifierSet

    from flashdoctor.actions.fetch import FetchOptions
    from flashdoctor.actions.install.executor import InstallContext
    from flashdoctor.actions.install.lock import LockEntry
    from flashdoctor.actions.net.download import Progress
    from flashdoctor.actions.source_build.api import BuildOptions
    from flashdoctor.actions.wheelhouse import Wheelhouse
    from flashdoctor.model.build import BuildOutcome, BuildProgress
    from flashdoctor.model.install import InstallResult, SmokeHook
    from flashdoctor.probe.state import TargetState


# -- the plan --------------------------------------------------------------------------------------------
def select_plan(
    env: Environment,
    variant: Variant,
    *,
    plan_file: str | None,
    version_spec: SpecifierSet | None,
    allow_community: bool,
    index_path: str | None,
    environ: Mapping[str, str],
) -> Plan:
    """The plan: from --plan FILE (a reviewed --dry-run --json), else from the wheel selector."""
    if plan_file:
        from flashdoctor.actions.install.prepare import load_plan

        return load_plan(plan_file)
    from flashdoctor.decide.wheels import make_plan, selection_json

    index = inputs.load_wheel_index(index_path, environ)
    plan = make_plan(env, variant, index, version_spec=version_spec, allow_community=allow_community)
    made_with = selection_json(version_spec, allow_community, inputs.user_index_path(index_path, environ))
    return replace(plan, extra={**plan.extra, "selection": made_with})


def resolve_plan(
    env: Environment,
    variant: Variant,
    houses: list[Wheelhouse],
    fetch: FetchOptions,
    *,
    version_spec: str | None,
    lock: bool = False,
    machine: str = "this machine",
    variant_flag: Variant | None = None,
    **selection: Any,
) -> tuple[Plan, list[str], FetchOptions]:
    """select_plan, then what is already here (prepare.resolve_local: a wheel in a wheelhouse or the
    cache, a local build that serves this machine); ``lock`` keeps the planned wheel (a reviewed plan).
    The notes say why the local builds that do not serve this machine were passed over; ``fetch`` comes
    back saying where the planned sha256 came from: a plan file's own wheel carries the file's digest
    (whatever source the file names), a local build that replaced a reviewed "build" plan its build's
    record (fetch.known_verification). ``variant_flag``: the variant flag given, which a plan file must be
    for (a usage error otherwise: its wheel is of its own variant)."""
    from flashdoctor.actions.install.prepare import resolve_local, with_local_build
    from flashdoctor.decide.wheels import parse_version_spec, replay_selection, selection_json

    spec = parse_version_spec(version_spec)
    plan = select_plan(env, variant, version_spec=spec, **selection)
    plan_file = selection["plan_file"]
    if plan_file and variant_flag is not None and plan.variant != variant_flag:
        raise UsageError(
            f"plan {plan_file} is for {plan.variant}, and --{variant_flag} was given",
            hint=f"give --{plan.variant} (or no variant flag) to carry out this plan, or plan for "
            f"{variant_flag} with `flashdoctor install --{variant_flag} --dry-run --json`",
        )
    refused: PlanDoesNotHold | None = None
    if plan_file:  # a reviewed plan: its wheel, or what it found, must hold here
        community = bool(selection.get("allow_community"))
        replayed: tuple[str, ...] = ()
        if plan.wheel is None:  # what it found is found again as it was made, unless given otherwise
            index_here = inputs.user_index_path(selection["index_path"], selection["environ"])
            recorded = plan.extra.get("selection") or {}
            spec, community, replayed = replay_selection(recorded, spec, community, index_here)
            made_with = selection_json(spec, community, index_here)
            plan = replace(plan, extra={**plan.extra, "selection": made_with})
        try:
            plan = fit_here(
                env,
                plan,
                plan_file,
                selection["index_path"],
                selection["environ"],
                lock=lock,
                machine=machine,
                version_spec=spec,
                allow_community=community,
                notes=replayed,
            )
        except PlanDoesNotHold as exc:
            if plan.action != "build":
                raise
            # A reviewed "build" stands where a wheelhouse holds a build that serves this machine (within
            # --version): what the plan asked for is there (built here, say), whatever this machine's own
            # plan would be. The local resolution below decides.
            refused = exc
    if plan_file and plan.action == "wheel":  # a reviewed wheel: resolve_local keeps it, with its digest
        fetch = replace(fetch, digest_from="plan-file")
    if lock:
        plan, notes = with_local_build(plan, env, houses)
    else:
        plan, notes = resolve_local(plan, env, houses, fetch.cache, spec, reviewed=bool(plan_file))
    if refused is not None and plan.action != "wheel":
        raise refused
    return plan, notes, fetch


def fit_here(
    env: Environment,
    plan: Plan,
    plan_file: str,
    index_path: str | None,
    environ: Mapping[str, str],
    lock: bool = False,
    machine: str = "this machine",
    version_spec: SpecifierSet | None = None,
    allow_community: bool = False,
    notes: Sequence[str] = (),
) -> Plan:
    """`install --plan FILE` and `lock --plan FILE`: the reviewed wheel plan for ``env`` (this machine, or
    the --target it is planned or locked for; decide.wheels.refit_plan), with its blockers; refused before
    anything is downloaded, naming each mismatch, when its wheel does not fit there (exit 1, as for a plan
    in which no wheel fits). A wheel `flashdoctor build` made (its build.json beside the file the plan names)
    is judged by what that records, as install judges a local build (actions.wheelhouse.serves), not by
    its name, which says nothing of torch, CUDA or the GPUs it has code for. A plan that installs nothing
    (none, build, unsupported) is refused the same way when what it found does not hold there
    (decide.wheels.replay_premise: "none" made where flash-attn is installed, replayed where it is not).
    ``machine``: ``env``'s machine in words, for the message ("this machine", or the one --target
    describes); ``version_spec`` and ``allow_community``: the selection a plan that installs nothing is
    judged by (decide.wheels.replay_selection: the plan's recorded ones, unless the replay gives its own),
    and ``notes`` what that says of it (an option given here that the plan was not made with, another
    index), added to its reasons, or to the refusal."""
    from flashdoctor.actions.fetch import local_file
    from flashdoctor.actions.wheelhouse import Request, recorded_build, serves
    from flashdoctor.decide.wheels import refit_plan, replay_premise

    wheel = plan.wheel
    if wheel is None:
        index = inputs.load_wheel_index(index_path, environ)
        plan, misses = replay_premise(env, plan, index, machine, version_spec, allow_community)
        what = f"the plan does not hold on {machine}"
        if notes and misses:
            misses = (*misses[:-1], f"{misses[-1]} ({'; '.join(notes)})")
        elif notes:
            plan = replace(plan, reasons=(*plan.reasons[:1], *notes, *plan.reasons[1:]))
    else:
        index = inputs.load_wheel_index(index_path, environ, keep=wheel.filename.__eq__)
        plan, misses = refit_plan(env, plan, index)
        path, by = local_file(wheel), ""
        built = recorded_build(path) if path is not None else None
        if built is not None:
            misses = tuple(serves(built.fingerprint, Request.for_environment(env, plan.variant)))
            by = " (by its build.json)"
        what = f"{wheel.filename} does not fit {machine}{by}"
    if misses:
        raise PlanDoesNotHold(
            f"plan {plan_file}: {what}: {'; '.join(misses)}",
            hint="nothing was downloaded or installed; plan for this machine with "
            f"`flashdoctor install --{plan.variant} --dry-run --json` (a plan is replayed with the "
            "--version and --allow-community its `selection` records, unless given here)"
            if not lock
            else "nothing was downloaded or written; to lock for the machine the plan was made for, describe "
            "it with --target FILE (docs/target-spec.md) or name its interpreter with --python PATH",
        )
    return plan


# -- where wheels come from -----------------------------------------------------------------------------
def check_index_url(index_url: str | None, allow_http: bool) -> None:
    """--index-url under the download policy (install, lock and build): a usage error, with nothing sent,
    when it is refused."""
    from flashdoctor.actions.net.urls import check_url

    if index_url:
        try:
            check_url(index_url, allow_http)
        except FlashdoctorError as exc:
            raise UsageError(f"--index-url: {exc.message}", hint=exc.hint) from None


def fetch_setup(
    wheelhouse: str | None,
    index_url: str | None,
    allow_http: bool,
    environ: Mapping[str, str],
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
) -> tuple[FetchOptions, list[Wheelhouse]]:
    """The fetch options and the wheelhouses to read: --wheelhouse, then the default one that
    `flashdoctor build` fills (<cache>/wheelhouse) when it exists."""
    from flashdoctor.actions.cache import WheelCache, default_cache_root, default_wheelhouse
    from flashdoctor.actions.fetch import FetchOptions
    from flashdoctor.actions.install.prepare import wheelhouse_paths
    from flashdoctor.actions.net.download import DownloadPolicy
    from flashdoctor.actions.wheelhouse import Wheelhouse

    check_index_url(index_url, allow_http)
    houses = wheelhouse_paths((wheelhouse,) if wheelhouse else ())
    default_house = default_wheelhouse(environ)
    if default_house.is_dir() and all(h.root != default_house for h in houses):
        houses.append(Wheelhouse(default_house))
    fetch = FetchOptions(
        cache=WheelCache(default_cache_root(environ)),
        policy=DownloadPolicy(allow_http=allow_http),
        wheelhouse=houses[0] if wheelhouse else None,
        index_url=index_url,
        progress=progress,
        on_wait=on_wait,
    )
    return fetch, houses


# -- install -------------------------------------------------------------------------------------------
def install(
    plan: Plan,
    *,
    python: str,
    env: Environment,
    fetch: FetchOptions,
    smoke: bool,
    install_deps: bool,
    environ: Mapping[str, str],
    on_wait: Callable[[str], None],
    early_state: Future[TargetState] | None,
) -> InstallResult:
    """Carry out a wheel plan: verified, import-checked and smoke-tested, or rolled back."""
    from flashdoctor.actions.install.executor import execute
    from flashdoctor.actions.install.prepare import smoke_hook

    hook = smoke_hook() if smoke else None
    return execute(plan, _context(python, env, fetch, environ, on_wait, hook, install_deps, early_state))


def recover(
    variant: Variant,
    *,
    python: str,
    env: Environment,
    fetch: FetchOptions,
    environ: Mapping[str, str],
    on_wait: Callable[[str], None],
) -> tuple[InstallResult | None, list[str], list[str]]:
    """Before an install whose plan installs nothing: restore what an install into ``python``'s environment
    killed after its backup replaced (executor.recover_interrupted: the failure, the warnings, what was
    restored); nothing without a probed prefix."""
    from flashdoctor.actions.install.executor import recover_interrupted

    if env.prefix is None:
        return None, [], []
    ctx = _context(python, env, fetch, environ, on_wait, None, True, None)
    return recover_interrupted(ctx, variant, env.prefix)


def _context(
    python: str,
    env: Environment,
    fetch: FetchOptions,
    environ: Mapping[str, str],
    on_wait: Callable[[str], None],
    smoke: SmokeHook | None,
    install_deps: bool,
    early_state: Future[TargetState] | None,
) -> InstallContext:
    from flashdoctor.actions.install.executor import InstallContext

    return InstallContext(
        python=python,
        environ=environ,
        fetch=fetch,
        env=env,
        smoke=smoke,
        install_deps=install_deps,
        log_dir=fetch.cache.root.parent / "logs",
        on_wait=on_wait,
        early_state=early_state,
    )


# -- source builds (`build` and `install --from-source`) -------------------------------------------------
def local_build_for_source(
    env: Environment,
    variant: Variant,
    houses: list[Wheelhouse],
    arch: str | None,
    head_dims: str | None,
    dtypes: str | None,
    disable: Sequence[str] = (),
) -> tuple[Plan | None, list[str]]:
    """`install --from-source`: a build already in a wheelhouse that covers the request, else None."""
    from flashdoctor.actions.install import prepare

    return prepare.local_build_for_source(env, variant, houses, arch, head_dims, dtypes, disable)


def check_buildable(variant: Variant) -> None:
    if not variant_info(variant).needs_nvcc:
        raise UsageError(
            f"{variant.upper()} is pure Python: there is nothing to build",
            hint=f"flashdoctor install --{variant}",
        )


def source_build(
    env: Environment,
    opts: BuildOptions,
    python: str | None,
    *,
    plan_only: bool,
    probe_tools: bool,
    progress: BuildProgress,
    say: Callable[[str], Any],
) -> BuildOutcome:
    """The build plan (``plan_only``: nothing downloaded or built) or the build; ``probe_tools``: look at
    this machine's compilers (not for a target spec)."""
    from flashdoctor.actions.source_build.api import build, plan_build

    tools = None
    if probe_tools:
        from flashdoctor.probe.buildtools import probe_build_tools

        tools = probe_build_tools(python or sys.executable, os.environ)
    if plan_only:
        return plan_build(env, opts, tools)
    return build(env, opts, python or sys.executable, tools, progress=progress, say=say)


def plan_from_build(outcome: BuildOutcome, variant: Variant) -> Plan | None:
    """`install --from-source`: the install Plan for the wheel just built (or found built for this
    fingerprint); None when there is none."""
    from packaging.utils import parse_wheel_filename

    from flashdoctor.model.plan import WheelRef

    if outcome.status not in ("built", "cached") or outcome.wheel is None:
        return None
    w = outcome.wheel
    _, version, _, _ = parse_wheel_filename(w.filename)
    ref = WheelRef(
        filename=w.filename,
        url=w.path.resolve().as_uri(),
        sha256=w.sha256,
        source="wheelhouse",
        version=str(version),
    )
    why = (
        "built from source by flashdoctor"
        if outcome.status == "built"
        else "already built for this fingerprint"
    )
    return Plan(action="wheel", variant=variant, wheel=ref, reasons=(f"{why}: {w.path}",))


# -- lock ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LockResult:
    entry: LockEntry
    text: str  # the requirements file
    output: str | None  # -o as given: the file (one format) or the base name (several)
    exports: Mapping[str, str]  # --format name -> its text, for each asked
    outputs: Mapping[str, str]  # --format name -> the file it was written to


def lock_outputs(output: str | None, formats: Sequence[str]) -> dict[str, str]:
    """Where each format goes: -o FILE for one format; for several, -o is a base name and each gets its
    suffix (flash.txt, flash.pyproject.toml, flash.Dockerfile); nothing without -o."""
    from flashdoctor.actions.install.lock import FORMATS

    if not output:
        return {}
    if len(formats) == 1:
        return {formats[0]: output}
    return {f: output + FORMATS[f].suffix for f in formats}


def lock(
    plan: Plan,
    env: Environment,
    source: str,
    fetch: FetchOptions,
    *,
    index_url: str | None,
    output: str | None,
    environ: Mapping[str, str],
    formats: Sequence[str] = ("requirements",),
) -> LockResult:
    """The planned wheel pinned by URL and sha256, in each of ``formats`` (actions.install.lock.FORMATS:
    requirements, uv, dockerfile); written per :func:`lock_outputs` when ``output`` is given."""
    from flashdoctor.actions.fetch import known_verification, obtain
    from flashdoctor.actions.install.lock import FORMATS, LockEntry, lock_text
    from flashdoctor.actions.net.urls import parse, redact

    if plan.action != "wheel" or plan.wheel is None:
        raise FlashdoctorError(
            f"nothing to lock: the plan for {plan.variant} is {plan.action!r}",
            hint="; ".join(plan.reasons) or None,
        )
    ref, sha_from = plan.wheel, "index"
    verification = None
    digest_from = known_verification(ref, fetch).digest_from  # a build's record, the wheel index, a plan file
    if index_url or not ref.sha256:
        # No digest in the index (or a mirror whose URL we must write): fetch, verify it is the wheel, hash it.
        art = obtain(ref, fetch, environ, VARIANT_DIST[plan.variant], pin=True)
        url = art.ref.url if art.origin in ("download", "cache") else ref.url
        ref, sha_from = replace(ref, url=url, sha256=art.sha256), art.sha256_from
        verification, digest_from = art.verification.to_json(), art.verification.digest_from
    # A mirror's link resolves against the --index-url, user:password included: pip finds those in netrc
    # or a keyring; the lock (a file anyone may read, or the terminal) never carries them.
    removed = None
    if not ref.url.startswith("file:"):
        target, clean = parse(ref.url), redact(ref.url, drop_userinfo=True)
        if target.userinfo or parse_qsl(urlsplit(clean).query) != parse_qsl(urlsplit(ref.url).query):
            removed, ref = target.netloc, replace(ref, url=clean)
    assert ref.sha256 is not None
    if unquote(urlsplit(ref.url).path).rsplit("/", 1)[-1] != ref.filename:
        raise FlashdoctorError(
            f"cannot lock {ref.url}: pip reads the wheel's name from the URL, and it does not end in {ref.filename}"
        )
    if any(c.isspace() or not c.isprintable() for c in ref.url):
        raise FlashdoctorError(f"cannot lock {ref.url!r}: a URL with spaces or control characters")
    entry = LockEntry(plan.variant, ref, ref.sha256, sha_from, verification, removed, digest_from)
    exports = {f: FORMATS[f].text([entry], env, source) for f in dict.fromkeys(formats)}
    outputs = lock_outputs(output, list(exports))
    inputs.write_texts({path: exports[f] for f, path in outputs.items()})  # all of them, or none
    return LockResult(entry, lock_text([entry], env, source), output, exports, outputs)
