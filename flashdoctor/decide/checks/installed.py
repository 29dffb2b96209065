"""The installed FlashAttention builds: missing, failing to import (explained by the failure-log engine
through an ImportDiagnoser), lacking code for a GPU, or colliding with another variant's files."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable

from packaging.utils import canonicalize_name
from packaging.version import Version

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import finding, gpu_groups
from flashdoctor.knowledge.archs import runs_on, sort_archs
from flashdoctor.knowledge.variants import DIST_VARIANT, VARIANTS
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import Environment, FlashInstall
from flashdoctor.model.findings import Finding, Status
from flashdoctor.model.requirements import required_of, required_text, ruled_out

ImportDiagnoser = Callable[[str, Environment], "tuple[str, str] | None"]


def check_installed(env: Environment, diagnose: ImportDiagnoser | None = None) -> list[Finding]:
    if not env.known("installed"):
        return []
    out: list[Finding] = []
    for variant in VARIANTS:
        info = knowledge.variant_info(variant)
        inst = env.installed_variant(variant)
        if inst is None:
            out.append(
                finding(
                    "flash-attn-missing",
                    Status.WARN,
                    f"{info.title} ({info.dist}) is not installed",
                    variant=variant,
                    fix=f"flashdoctor install {info.cli_flag}",
                )
            )
            continue
        out.extend(_check_one_install(env, inst, diagnose))
    for variant in VARIANTS:
        mine = env.installed_variant(variant)
        for c in knowledge.variant_info(variant).conflicts:
            other = env.installed_variant(c.variant)
            public = parse_version(other.version) if other is not None else None
            if mine is None or other is None or public is None:
                continue
            if c.versions.contains(Version(public.public), prereleases=True):
                out.append(
                    finding(
                        "flash-attn-conflict",
                        Status.WARN,
                        f"{knowledge.variant_info(c.variant).dist} {other.version} {c.why}",
                        variant=variant,
                        fix=c.fix,
                    )
                )
    return out


def _check_one_install(
    env: Environment, inst: FlashInstall, diagnose: ImportDiagnoser | None
) -> list[Finding]:
    variant = inst.variant
    flag = knowledge.variant_info(variant).cli_flag
    label = f"{inst.dist} {inst.version or '?'}"
    if inst.local_label and inst.local_label.startswith("fd."):
        label += f" (flashdoctor build profile {inst.local_label[3:]})"
    dup = _duplicate_metadata(inst, label, flag)  # said first, whatever else is found
    out: list[Finding] = []
    if inst.import_ok is False:
        err = (inst.import_error or "").strip()
        last = err.splitlines()[-1] if err else "no output"
        cause = diagnose(err, env) if err and diagnose else None
        msg = f"{label} is installed but does not import"
        if inst.import_crashed:
            msg = f"{label} crashed the interpreter on import"
        fix = None
        if cause:
            msg += f": {cause[0]}"
            fix = cause[1]
        out.append(
            finding(
                "flash-attn-import-error",
                Status.FAIL,
                msg,
                evidence=last,
                variant=variant,
                fix=fix or f"flashdoctor install {flag}",  # replaces it with a build that matches this torch
            )
        )
        return dup + out
    out.extend(_torch_api(env, inst, label, flag))
    out.extend(_outside_required(env, inst, label, flag))
    if inst.archs is not None and env.known("gpus"):
        for g, glabel, _n in gpu_groups(env.gpus):
            if g.sm is None or g.cc is None:
                continue
            if knowledge.variant_info(variant).gpu_fit(g.cc) == "unsupported":
                continue  # no build has code for it (check_gpu_support's gpu-unsupported says so)
            r = runs_on(inst.archs, g.sm)
            have = ", ".join(sort_archs(inst.archs)) or "none"
            if r in ("no", "ptx-jit"):
                out.append(
                    finding(
                        "flash-attn-arch-missing" if r == "no" else "flash-attn-ptx-jit",
                        Status.FAIL if r == "no" else Status.WARN,
                        f"{label} has no code for {g.name} (sm_{g.sm})"
                        if r == "no"
                        else f"{label} runs on {g.name} (sm_{g.sm}) only by JIT-compiling PTX (slow first call)",
                        evidence=f"compiled for: {have}",
                        variant=variant,
                        subject=glabel,
                        fix=f"flashdoctor install {flag} --from-source --arch {g.sm}",
                    )
                )
    if not out:
        how = "imports" if inst.import_ok else "import not tested"
        archs = f"; code for {', '.join(sort_archs(inst.archs))}" if inst.archs else ""
        out.append(
            finding(
                "flash-attn-ok",
                Status.OK,
                f"{label} {how}{archs}",
                variant=variant,
                evidence=inst.extension_path,
            )
        )
    return dup + out


def install_interrupted(
    dist: str, previous: str | None, installing: str | None, backup: str, now: str | None
) -> Finding:
    """An install of ``dist`` into the checked environment killed after its backup (in ``backup``) and
    before it verified ``installing`` or restored ``previous``; ``now``: the version installed now (None:
    none). Killed during pip, the old version, none or a part may be there: the message says which is;
    the next install restores ``previous`` first."""
    variant = DIST_VARIANT.get(canonicalize_name(dist))
    flag = knowledge.variant_info(variant).cli_flag if variant else ""
    was = f"{dist} {previous}" if previous else f"{dist} not installed"
    new = parse_version(installing)
    if new is not None and parse_version(now) == new:
        state = f"{installing} is in place unverified"
    else:
        state = f"{dist} {now} is installed now" if now else f"{dist} is not installed now"
    of = f"{dist} {installing}" if installing else dist
    return finding(
        "install-interrupted",
        Status.WARN,
        f"an install of {of} into this environment was killed before it was verified: {state} ({was} before it)",
        evidence=backup,
        variant=variant,
        fix=f"flashdoctor install {flag}".rstrip() + f": it restores the previous version first ({was})",
    )


def _duplicate_metadata(inst: FlashInstall, label: str, flag: str) -> list[Finding]:
    """Two or more metadata folders of one distribution in one directory (an upgrade or uninstall cut
    short): pip reports one of them and uninstalls by its RECORD. The stale ones are those whose version
    is not the package's own ``__version__``; without one that matches, all of them go, then a reinstall."""
    if len(inst.metadata_dirs) < 2:
        return []

    def version_of(path: str) -> str:
        return (
            os.path.basename(path)
            .removesuffix(".dist-info")
            .removesuffix(".egg-info")
            .partition("-")[2]
            .split("-")[0]
        )

    names = ", ".join(os.path.basename(d) for d in inst.metadata_dirs)
    where = os.path.dirname(inst.metadata_dirs[0])
    keep = [d for d in inst.metadata_dirs if version_of(d) == inst.module_version]
    if len(keep) == 1:
        stale = [d for d in inst.metadata_dirs if d not in keep]
        fix = f"rm -r {' '.join(shlex.quote(d) for d in stale)} (its files are {inst.module_version}'s)"
    else:
        quoted = " ".join(shlex.quote(d) for d in inst.metadata_dirs)
        fix = f"rm -r {quoted}, then flashdoctor install {flag} (which of them its files are is unknown)"
    return [
        finding(
            "flash-attn-duplicate-metadata",
            Status.WARN,
            f"{label}: {len(inst.metadata_dirs)} metadata folders in {where} ({names}), left by an upgrade or"
            " uninstall cut short; pip reports one of them",
            variant=inst.variant,
            fix=fix,
        )
    ]


def _outside_required(env: Environment, inst: FlashInstall, label: str, flag: str) -> list[Finding]:
    """An installed version that an installed package's requirement rules out (pip installs it anyway)."""
    broken = ruled_out(required_of(env), inst.dist, inst.version)
    if not broken:
        return []
    return [
        finding(
            "flash-attn-outside-required",
            Status.WARN,
            f"{label} is installed, but {required_text(broken)}",
            variant=inst.variant,
            fix=f"flashdoctor install {flag} (it picks a version inside what installed packages require)",
        )
    ]


def _torch_api(env: Environment, inst: FlashInstall, label: str, flag: str) -> list[Finding]:
    """A release that imports but calls, in part of its Python code, a torch API this torch lacks."""
    version = parse_version(inst.version)
    torch_mm = env.torch_mm
    if version is None or torch_mm is None:
        return []
    floor = knowledge.variant_info(inst.variant).torch_api_floor(Version(version.public), torch_mm)
    if floor is None:
        return []
    need = f"{floor.torch[0]}.{floor.torch[1]}"
    specs = list(floor.versions)
    older = f" --version '<{specs[0].version}'" if len(specs) == 1 and specs[0].operator == ">=" else ""
    return [
        finding(
            "flash-attn-torch-api",
            Status.WARN,
            f"{label} needs torch >= {need} for part of its Python code, this torch is "
            f"{torch_mm[0]}.{torch_mm[1]}: {floor.what}",
            evidence=floor.source,
            variant=inst.variant,
            fix=f"upgrade torch to >= {need}, or install a release that runs whole on this torch: "
            f"flashdoctor install {flag}{older}",
        )
    ]
