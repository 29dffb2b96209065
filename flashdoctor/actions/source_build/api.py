"""The source build as one action: plan -> preflight -> wheelhouse lookup -> sources -> edit -> run ->
store. Returns a BuildOutcome value (flashdoctor.model.build); renderers print it, the CLI turns it into an
exit code. Progress goes out as events (model.build.BuildProgress); this module draws nothing.

`flashdoctor install --from-source` calls :func:`build` and hands ``outcome.wheel.path`` to the
installer (see README "Source builds").
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from flashdoctor.actions.cache import cache_root, default_wheelhouse
from flashdoctor.actions.source_build import edit as edit_mod
from flashdoctor.actions.source_build import source as src_mod
from flashdoctor.actions.source_build.runner import run_build
from flashdoctor.actions.wheelhouse import (
    Fingerprint,
    FingerprintError,
    find,
    fingerprint,
    store,
)
from flashdoctor.decide.source_build.hopper import MAX_TEXT, Fa3SetupFacts, fa3_setup_facts
from flashdoctor.decide.source_build.plan import (
    BuildPlan,
    BuildRequest,
    build_command,
    build_data,
    fa2_layout,
    make_plan,
)
from flashdoctor.decide.source_build.preflight import blocking, preflight
from flashdoctor.errors import InstallError, UsageError
from flashdoctor.model.build import BuildOutcome, BuildProgress, Status
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding
from flashdoctor.model.tools import BuildTools

__all__ = ["BuildOptions", "BuildOutcome", "build", "plan_build"]  # BuildOutcome: flashdoctor.model.build


@dataclass(frozen=True)
class BuildOptions:
    request: BuildRequest
    source: str | None = None  # FA2: sdist archive or directory; FA3: checkout or git URL
    version: str | None = None  # FA2 sdist version to fetch (default: newest flashdoctor knows)
    ref: str | None = None  # FA3 git tag/branch
    wheelhouse: Path | None = None
    log: Path | None = None
    work_dir: Path | None = None
    keep_work: bool = False
    rebuild: bool = False
    ignore_preflight: bool = False
    index_url: str = src_mod.PYPI_SIMPLE
    allow_http: bool = False  # --allow-http: a plain-http --index-url (a trusted mirror)


def peek_fa2_version(source: str) -> str | None:
    """The version of an FA2 sdist archive or tree without unpacking it all."""
    path = Path(source).expanduser()
    if path.is_dir():
        return src_mod.read_version(path / "flash_attn" / "__init__.py")
    try:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                parts = m.name.split("/")
                if len(parts) == 3 and parts[1:] == ["flash_attn", "__init__.py"]:
                    fh = tar.extractfile(m)
                    if fh is None:
                        return None
                    text = fh.read().decode("utf-8", "replace")
                    found = src_mod._VERSION_RE.search(text)
                    return found.group(1) if found else None
    except (tarfile.TarError, OSError):
        return None
    return None


def with_torch_facts(env: Environment, tools: BuildTools | None) -> Environment:
    """The environment with torch's facts as the imported torch reports them (authoritative)."""
    if tools is None or not tools.torch_ok:
        return env
    unknown = set(env.unknown) - {"torch", "torch_cuda", "cxx11abi"}
    return env.replace(
        torch=tools.torch_version or env.torch,
        torch_cuda=tools.torch_cuda,
        cxx11abi=tools.cxx11abi if tools.cxx11abi is not None else env.cxx11abi,
        unknown=frozenset(unknown),
    )


def resolve_version(opts: BuildOptions) -> str:
    req = opts.request
    if req.variant == "fa2":
        if opts.source:
            if not Path(opts.source).expanduser().exists():
                raise UsageError(f"--source {opts.source}: no such file or directory")
            v = peek_fa2_version(opts.source)
            if v is None:
                raise UsageError(
                    f"--source {opts.source}: not an FA2 sdist or source tree (no flash_attn/__init__.py version)"
                )
            if opts.version and opts.version != v:
                raise UsageError(
                    f"--flash-version {opts.version} but --source {opts.source} is flash-attn {v}"
                )
            return v
        return opts.version or str(build_data()["fa2"]["newest_known"])
    if opts.source and not src_mod.is_git_url(opts.source):
        p = Path(opts.source).expanduser()
        for cand in (p / "hopper" / "__init__.py", p / "__init__.py"):
            v = src_mod.read_version(cand)
            if v:
                return v
    return opts.ref or "unknown"


def read_setup_text(path: Path) -> str:
    """A checkout's hopper/setup.py, read bounded and never through a link flashdoctor did not make."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="a symbolic link is not followed: point --source at the checkout itself",
        ) from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_TEXT + 1).decode("utf-8", "replace")


def local_fa3_checkout(opts: BuildOptions) -> tuple[src_mod.SourceTree, Fa3SetupFacts] | None:
    """An FA3 --source that is a directory: the checkout (checked) and what its hopper/setup.py does.
    None for a git URL (read once it is cloned) or no --source."""
    if opts.request.variant != "fa3" or not opts.source or src_mod.is_git_url(opts.source):
        return None
    tree = src_mod.resolve_fa3(opts.source, opts.ref, cache_root())  # a directory: nothing is fetched
    return tree, fa3_setup_facts(read_setup_text(tree.setup_dir / "setup.py"))


def _prepare(
    env: Environment, opts: BuildOptions, tools: BuildTools | None, hopper: Fa3SetupFacts | None = None
) -> tuple[Environment, str, BuildPlan, tuple[Finding, ...]]:
    """What the dry run and the build both start from: the environment with the torch facts the build
    tools probe read, the flash-attn version, the plan and its preflight findings (FA3: with what the
    checkout's hopper/setup.py does, when one was read)."""
    env = with_torch_facts(env, tools)
    version = resolve_version(opts)
    plan = make_plan(env, opts.request, version, hopper)
    return env, version, plan, preflight(env, plan, tools, hopper)


def plan_build(env: Environment, opts: BuildOptions, tools: BuildTools | None = None) -> BuildOutcome:
    """The dry run: the plan, preflight findings and fingerprint; nothing is downloaded or built. An FA3
    checkout directory is read (its hopper/setup.py); a git URL is not cloned."""
    checkout = local_fa3_checkout(opts)
    env, version, plan, findings = _prepare(env, opts, tools, checkout[1] if checkout else None)
    notes: list[str] = []
    fp = None
    try:
        fp = fingerprint(env, plan.variant, version, plan.profile)
    except FingerprintError as exc:
        notes.append(str(exc))
    status: Status = "blocked" if blocking(findings) else "planned"
    cmd = tuple(build_command("<python>", "<sources>", "<dist>"))
    return BuildOutcome(status, plan, findings, fp, command=cmd, notes=tuple(notes))


def build(
    env: Environment,
    opts: BuildOptions,
    python: str,
    tools: BuildTools | None,
    environ: Mapping[str, str] | None = None,
    progress: BuildProgress | None = None,
    say: Callable[[str], Any] = lambda s: None,
) -> BuildOutcome:
    """Build a wheel (or find one already built for this fingerprint). ``progress`` receives the build's
    events; ``say`` one-line messages (the sources, the log)."""
    environ = dict(os.environ if environ is None else environ)
    checkout = local_fa3_checkout(opts)
    env, version, plan, findings = _prepare(env, opts, tools, checkout[1] if checkout else None)
    notes: list[str] = []
    if blocking(findings) and not opts.ignore_preflight:
        return BuildOutcome("blocked", plan, findings)
    try:
        fp: Fingerprint | None = fingerprint(env, plan.variant, version, plan.profile)
    except FingerprintError as exc:
        if not opts.ignore_preflight:
            raise UsageError(str(exc), hint="flashdoctor check shows what is missing") from None
        fp = None
        notes.append(f"{exc}: the wheel is not stored in a wheelhouse")
    cache = cache_root(environ)
    houses = [opts.wheelhouse] if opts.wheelhouse else []
    houses.append(default_wheelhouse(environ))
    if fp is not None and not opts.rebuild:
        hit = find(houses, fp)
        if hit is not None:
            return BuildOutcome("cached", plan, findings, fp, hit, notes=(f"already built: {hit.path}",))

    work = opts.work_dir or Path(tempfile.mkdtemp(prefix="flashdoctor-build-"))
    work.mkdir(parents=True, exist_ok=True)
    log = opts.log or (cache / "logs" / f"build-{plan.variant}-{plan.label}.log")
    if plan.variant == "fa2":
        say(
            f"sources: {'flash-attn ' + version + ' from ' + opts.index_url if not opts.source else opts.source}"
        )
        tree = src_mod.resolve_fa2(opts.source, version, work, cache, opts.index_url, opts.allow_http)
        if tree.verification is not None:
            notes.append(f"{tree.origin}: {tree.verification.describe()}")
        layout = fa2_layout(version)
        if plan.edit_sources and layout is not None:
            res = edit_mod.edit_fa2_tree(tree.root, layout, plan.profile)
            notes.extend(res.notes)
    elif checkout is not None:
        tree = checkout[0]
    else:  # a git URL: the plan and preflight are made again from the clone's hopper/setup.py
        tree = src_mod.resolve_fa3(opts.source, opts.ref, cache, environ, opts.allow_http)
        facts = fa3_setup_facts(read_setup_text(tree.setup_dir / "setup.py"))
        env, version, plan, findings = _prepare(env, opts, tools, facts)
        if blocking(findings) and not opts.ignore_preflight:
            return BuildOutcome("blocked", plan, findings, fp, source=tree.origin, work_dir=work)
    # A directory of this build's own: a --work-dir used again still holds the last build's wheel.
    dist = Path(tempfile.mkdtemp(prefix="dist-", dir=work))
    cmd = build_command(python, str(tree.setup_dir), str(dist))
    run_env = {**environ, **plan.env}
    # What only the build knows, for the fixes of its failure (explain.tailor.CALLER_FIELDS): the MAX_JOBS
    # it ran with and, when there is one, a smaller value to try after an OOM kill.
    diag_fields = {"jobs_used": str(plan.jobs.max_jobs)}
    if plan.jobs.max_jobs > 1:
        diag_fields["fewer_jobs"] = str(plan.jobs.max_jobs // 2)
    steps = f"{plan.edges} compile steps" if plan.edges else "the sources as they are"
    say(f"building {steps} with MAX_JOBS={plan.jobs.max_jobs}; log: {log}")
    result = run_build(
        cmd,
        run_env,
        tree.setup_dir,
        log,
        progress,
        diag_env=env,
        diag_fields=diag_fields,
        expected_steps=plan.edges or None,
    )
    if not result.ok:
        return BuildOutcome(
            "failed", plan, findings, fp, run=result, source=tree.origin, command=tuple(cmd), log_path=log,
            work_dir=work, notes=(*notes, f"the sources and objects are kept in {work}"),
            verification=tree.verification,
        )  # fmt: skip
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise UsageError(f"the build succeeded but left {len(wheels)} wheel(s) in {dist}")
    wheel = wheels[0]
    _, wv, _, _ = parse_wheel_filename(wheel.name)
    if wv.local != plan.label:
        notes.append(
            f"the wheel's local version is {wv.local!r}, not {plan.label!r}: setup.py ignored FLASH_ATTN_LOCAL_VERSION"
        )
    info = {
        "plan": {k: v for k, v in plan.to_json().items() if k not in ("targets", "jobs_reasons")},
        "source": tree.origin,
        "seconds": round(result.seconds, 1),
        "steps": result.steps_total,
    }
    if fp is not None:
        house = opts.wheelhouse or default_wheelhouse(environ)
        try:
            built = store(house, wheel, fp, info)
        except OSError as exc:  # a full disk, a read-only share, a broken entry: the wheel stays here
            raise InstallError(
                f"the build succeeded but its wheel cannot be stored in {house}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else ""),
                hint=f"the wheel is kept: {wheel} (the sources in {work})",
            ) from None
        shutil.rmtree(dist, ignore_errors=True)  # the wheel is in the wheelhouse now
    else:
        built = None
        notes.append(f"wheel: {wheel}")
    if not opts.keep_work and built is not None and opts.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
        work_kept = None
    else:
        work_kept = work
    return BuildOutcome(
        "built", plan, findings, fp, built, result, tree.origin, tuple(cmd), log, work_kept, tuple(notes),
        verification=tree.verification,
    )  # fmt: skip
