"""The selector's English: every sentence a person reads about a wheel (why it was rejected, why it fits,
what to note about it, what would make one fit, which facts were assumed). The codes are public
(data/codes.json); these sentences are not, and live here apart from the rules that decide."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import SpecifierSet

from flashdoctor import knowledge
from flashdoctor.decide.wheels.index import IndexEntry
from flashdoctor.decide.wheels.parse import manylinux_glibc, platform_arch
from flashdoctor.decide.wheels.rules import (
    REJECTION_CODES,
    gpu_runs,
    refused_by,
    served_sms,
    torch_api_short,
    torch_fit,
    variant_driver_min,
)
from flashdoctor.decide.wheels.target import Target
from flashdoctor.decide.wheels.torchbuild import (
    EXACT,
    NIGHTLY,
    OTHER_MINOR,
    OTHER_PATCH,
    UNKNOWN,
    minor_break,
    nightly_break,
    patches_measured,
    torch_build,
)
from flashdoctor.knowledge.torch_builds import across_minors, vendor_builds
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.requirements import required_text


def reason_text(code: str, entry: IndexEntry, t: Target, spec: SpecifierSet | None = None) -> str:
    """One rejection as "code: sentence" (the code is public; the sentence is for people)."""
    n = entry.name
    if code == "no-cuda-torch":
        what = {
            "missing": "torch is not installed",
            "cpu": "torch is a CPU-only build",
            "rocm": "torch is a ROCm build",
            "xpu": "torch is an Intel XPU build",
        }
        msg = f"{what.get(t.torch_state, 'torch is unusable')}; this wheel needs a CUDA build of torch"
    elif code == "torch-mismatch":
        if n.torch is not None:
            msg = f"built for torch {n.torch_text}, this is torch {mm_text(t.torch_mm)}"
            gone = minor_break(n.variant or "", n.torch, t.torch_mm) if t.torch_mm is not None else None
            if gone is not None:
                msg += f" (it imports {gone}, which torch {mm_text(t.torch_mm)} no longer exports: measured)"
        else:
            msg = f"serves torch {entry.torch_spec} (LibTorch stable ABI), this is torch {t.torch_version}"
    elif code == "torch-build-mismatch":
        msg = build_mismatch_text(entry, t)
    elif code == "cuda-mismatch":
        msg = (
            f"built for CUDA {entry.cuda_mm[0] if entry.cuda_mm else '?'}, torch uses CUDA {mm_text(t.cuda)}"
        )
    elif code == "abi-mismatch":
        label = {True: "CXX11", False: "pre-CXX11"}
        inferred = " (inferred from how it was built)" if "abi" in entry.inferred else ""
        msg = f"built for the {label[bool(entry.abi)]} C++ ABI{inferred}, torch uses the {label[bool(t.abi)]} ABI"
    elif code == "python-mismatch":
        if entry.requires_python is not None and not (t.pairs is not None and not (n.pythons & t.pairs)):
            msg = f"requires Python {entry.requires_python}, this is Python {t.python}"
        else:
            tags = ", ".join(sorted(f"{i}-{a}" for i, a in n.pythons))
            msg = f"built for {tags}, this is Python {t.python}"
    elif code == "platform-mismatch":
        msg = f"built for {', '.join(sorted(n.platforms))}, this is {_platform_text(t)}"
    elif code == "glibc-too-old":
        need = entry.glibc or min(
            (g for p in n.platforms if (g := manylinux_glibc(p)) is not None and platform_arch(p) == t.arch),
            default=None,
        )
        why = " (built on Ubuntu 22.04)" if entry.source == "official" and need == (2, 35) else ""
        msg = f"needs glibc {mm_text(need)}{why}, this system has glibc {mm_text(t.glibc)}"
    elif code == "gpu-code-missing":
        served = served_sms(n.variant, t.sms)
        missing = [sm for sm in served if entry.archs is not None and not gpu_runs(entry.archs, sm)]
        built = f" (built with CUDA {entry.cuda})" if entry.cuda else ""
        have = ", ".join(entry.archs or ())
        msg = f"has no code for sm_{', sm_'.join(map(str, missing))}: carries {have}{built}"
    elif code == "driver-too-old":
        need_major = entry.cuda_mm[0] if entry.cuda_mm else None
        need_txt = mm_text(variant_driver_min(n.variant)) if need_major is None else f"{need_major}.x"
        drv = knowledge.driver_min_for_major(need_major) if need_major else None
        msg = (
            f"needs a driver for CUDA {need_txt}"
            + (f" (≥ {drv})" if drv else "")
            + f"; this driver supports CUDA {mm_text(t.driver_cuda)}"
        )
    elif code == "community":
        msg = f"community build ({entry.source}); rerun with --allow-community to consider it"
    elif code == "version-excluded":
        msg = f"version {entry.version} is outside --version {spec}"
    elif code == "required-by-installed":
        msg = f"version {entry.version}, but {required_text(refused_by(entry, t))}"
    elif code == "yanked":
        msg = "yanked by its publisher"
    else:  # pragma: no cover - every code above is handled
        msg = REJECTION_CODES.get(code, code)
    return f"{code}: {msg}"


def build_mismatch_text(entry: IndexEntry, t: Target) -> str:
    tb = t.torch_build
    if entry.torch_build:
        built = f"built against torch {entry.torch_build}"
    elif entry.name.torch is None and entry.torch_spec is not None:
        built = f"built on the stable ABI for torch releases {entry.torch_spec}"
    else:
        built = f"built against a torch {entry.name.torch_text} whose build is not recorded"
    if tb is None:  # pragma: no cover - the rule needs torch's build
        return built
    if not tb.is_release:
        return (
            f"{built}; this torch ({tb.text}) is {tb.kind_words}: a wheel fits it only if built against that very build "
            "(release wheels do not fit pre-release, nightly or vendor builds: build from source)"
        )
    b = torch_build(entry.torch_build)
    brk = nightly_break(b, tb) if b is not None else None
    if brk is None:  # pragma: no cover - a release torch rejects only a nightly with a recorded break
        return f"{built}: it does not load on this torch {tb.text}"
    return (
        f"{built}, a nightly from before a change in torch {mm_text(brk.minor)}'s exported symbols "
        f"({brk.why}): it imports {brk.symbol}, which this torch {tb.text} does not export"
    )


def mm_text(mm: tuple[int, int] | None) -> str:
    return "?" if mm is None else f"{mm[0]}.{mm[1]}"


def _platform_text(t: Target) -> str:
    if t.platforms is None:
        return "an unknown platform"
    if t.musl:
        return f"{t.arch} Linux with musl libc (no glibc)"
    if t.os == "linux":
        return f"linux_{t.arch}" + (f" (glibc {mm_text(t.glibc)})" if t.glibc else "")
    return ", ".join(sorted(p for p in t.platforms if p != "any"))


def fit_summary(e: IndexEntry, t: Target) -> str:
    n = e.name
    parts = []
    if n.torch is not None and t.torch_mm is not None:
        parts.append(f"torch {n.torch_text}" + (f" (built against {e.torch_build})" if e.torch_build else ""))
    elif e.torch_spec is not None:
        parts.append(f"torch {e.torch_spec} (stable ABI) ∋ {t.torch_version}")
    if e.cuda_mm is not None:
        parts.append(f"CUDA {e.cuda or e.cuda_mm[0]}")
    if e.abi is not None and t.os == "linux":
        parts.append(
            ("CXX11" if e.abi else "pre-CXX11") + " ABI" + (" (inferred)" if "abi" in e.inferred else "")
        )
    parts.append("/".join(sorted(f"{i}-{a}" for i, a in n.pythons)))
    parts.append(", ".join(sorted(n.platforms)))
    if e.glibc is not None and t.glibc is not None:
        parts.append(f"glibc {mm_text(e.glibc)} ≤ {mm_text(t.glibc)}")
    if e.archs is not None and t.sms:
        parts.append("code for " + ", ".join(f"sm_{sm}" for sm in served_sms(n.variant, t.sms)))
    return ", ".join(parts)


def entry_notes(e: IndexEntry, variant: Variant, t: Target | None = None) -> list[str]:
    out = []
    if "abi" in e.inferred and e.name.abi_label is False and e.source == "official":
        out.append(
            "its 'cxx11abiFALSE' label means 'ABI not forced': built against a CXX11-ABI torch, so it is "
            "treated as a CXX11-ABI wheel (inferred from setup.py)"
        )
    if e.name.torch is not None and t is not None and t.torch_build is not None:
        cls = torch_fit(e, t)
        if cls == EXACT and not t.torch_build.is_release:
            if e.torch_build == t.torch_build.text:
                same = ""
            else:  # a vendor build that is this nightly's code (data/torch_builds.json same_build_as)
                vendor = vendor_builds().get(t.torch_build.text)
                where = f" ({vendor.container})" if vendor is not None else ""
                same = f", the nightly that {t.torch_build.text}{where} is built from"
            out.append(
                f"built against torch {e.torch_build}{same}: a wheel built against another build of this "
                f"pre-release, nightly or vendor torch would not load"
            )
        elif cls == OTHER_PATCH:
            b = torch_build(e.torch_build)
            if b is not None and patches_measured(b, t.torch_build):
                why = "both export the same C++ symbols (measured on PyTorch's wheels), so it loads"
            else:
                why = (
                    "the patches of every torch minor measured export the same C++ symbols, so it should "
                    "load (this pair was not measured)"
                )
            out.append(
                f"built against torch {e.torch_build}, another patch than this torch {t.torch_build.text}: "
                f"{why}; no wheel built against {t.torch_build.text} fits"
            )
        elif cls == OTHER_MINOR:
            measured = across_minors().measured_versions
            hedge = []
            if e.torch_build is None:
                hedge.append(
                    f"the torch it was built against is not recorded (a {e.name.torch_text} nightly was not measured)"
                )
            if str(e.version) not in measured:
                hedge.append(
                    f"flash-attn {e.version} was not among the versions measured ({', '.join(measured)})"
                )
            out.append(
                f"built against torch {e.name.torch_text}, an earlier minor than this torch {t.torch_build.text}: "
                f"torch {mm_text(t.torch_mm)} still exports every torch symbol FlashAttention's extension built "
                f"against a {e.name.torch_text} release imports (measured on PyTorch's Linux x86_64 wheels), so it "
                + (
                    "should load, " + "; ".join(hedge) + " — the install's import check and smoke test tell"
                    if hedge
                    else "loads"
                )
                + f"; no wheel built for torch {mm_text(t.torch_mm)} fits"
            )
        elif cls == NIGHTLY:
            b = torch_build(e.torch_build)
            out.append(
                f"built against {b.what if b else e.torch_build}, not a release: it loaded on the release "
                "in one report and failed in another; no release-built wheel fits"
            )
        elif cls == UNKNOWN and e.torch_build is None and t.torch_build.patch is not None:
            out.append(
                f"the torch it was built against is not recorded (some torch {e.name.torch_text}): "
                "built against a release patch it loads; against an early nightly it may not"
            )
    short = torch_api_short(e, t) if t is not None else None
    if short is not None and t is not None and t.torch_mm is not None:
        out.append(
            f"{e.name.dist} {e.version} needs torch >= {mm_text(short.torch)} for part of its Python code: "
            f"{short.what}; this torch is {mm_text(t.torch_mm)} and no release that runs whole on it fits"
        )
    if e.claim:
        out.append(
            "derived from the release's build matrix: no published copy of this file was seen "
            "(the download will tell)"
        )
    if e.superseded_by:
        out.append(f"its release was replaced by {e.superseded_by} within a day")
    if e.unreleased is not None:
        out.append(
            f"{e.name.dist} {e.version} is newer than its newest release ({e.unreleased}): a build of unreleased "
            "code, ranked after the builds of a release"
        )
    if e.confidence in ("medium", "low"):
        out.append(f"listing confidence {e.confidence}: this exact file was not seen at its URL")
    if knowledge.variant_info(variant).pre_release_only and e.version.is_prerelease:
        out.append(f"{e.name.dist} publishes only pre-releases: pip needs --pre or this exact version")
    if e.community:
        out.append("a community build: not published by the FlashAttention authors")
    return out


def assumption_notes(t: Target) -> list[str]:
    words = {
        "glibc": "glibc unknown: assumed new enough for every wheel",
        "python": "Python unknown: the Python tag was not checked",
        "platform": "platform unknown: the platform tag was not checked",
        "torch": "torch unknown: torch version, CUDA and ABI were not checked",
        "torch_cuda": "torch's CUDA unknown: the CUDA major was not checked",
        "cxx11abi": "torch's C++ ABI unknown: the ABI was not checked",
        "gpus": "GPUs unknown: GPU code coverage was not checked",
    }
    return [words[u] for u in t.unknowns if u in words]


def hint(
    code: str, who: str, group: list[IndexEntry], example: str, t: Target, spec: SpecifierSet | None
) -> str:
    """A sentence about wheels that miss only by ``code`` (``example``: the best of them)."""
    if code == "torch-mismatch":
        torches = sorted({e.name.torch for e in group if e.name.torch is not None}, reverse=True)
        labels = [f"{a}.{b}" for a, b in torches] or sorted({str(e.torch_spec) for e in group})
        return f"{who} wheels exist for torch {', '.join(labels)} with this CUDA, ABI and Python (e.g. {example})"
    if code == "torch-build-mismatch":
        tb = t.torch_build
        builds = sorted({e.torch_build or "?" for e in group}, reverse=True)[:4]
        if tb is not None and not tb.is_release and all(e.name.torch is None for e in group):
            specs = ", ".join(sorted({str(e.torch_spec) for e in group}))
            return (
                f"{who} stable-ABI wheels exist for torch releases {specs} (e.g. {example}); "
                f"{tb.text} is {tb.kind_words}: release wheels do not fit it, build from source"
            )
        if tb is not None and not tb.is_release:
            return (
                f"{who} wheels exist for torch {mm_text(t.torch_mm)} built against other torch builds "
                f"({', '.join(builds)}; e.g. {example}); none against {tb.text}: release wheels do not "
                "fit a pre-release, nightly or vendor torch"
            )
        return (
            f"{who} wheels exist for torch {mm_text(t.torch_mm)} built against nightlies whose symbols "
            f"the release lacks ({', '.join(builds)}; e.g. {example}): pick another flash-attn release, "
            "or build"
        )
    if code == "python-mismatch":
        pys = sorted({i for e in group for i, _a in e.name.pythons}, key=lambda s: (len(s), s), reverse=True)
        return f"{who} wheels exist for {', '.join(pys)} with this torch and CUDA (e.g. {example})"
    if code == "cuda-mismatch":
        majors = sorted({e.cuda_mm[0] for e in group if e.cuda_mm is not None}, reverse=True)
        return (
            f"{who} wheels exist for CUDA {', '.join(map(str, majors))} builds of torch {mm_text(t.torch_mm)} "
            f"(e.g. {example})"
        )
    if code == "abi-mismatch":
        other = "CXX11" if t.abi is False else "pre-CXX11"
        return f"{who} wheels exist only for a {other}-ABI torch (e.g. {example})"
    if code == "glibc-too-old":
        return (
            f"{who} wheels need a newer glibc than {mm_text(t.glibc)} (e.g. {example}): use a newer OS image"
        )
    if code == "driver-too-old":
        return f"{who} wheels need a newer NVIDIA driver (e.g. {example})"
    if code == "gpu-code-missing":
        return f"{who} wheels fit except that they carry no code for this GPU (e.g. {example})"
    if code == "version-excluded":
        newest = max(e.version for e in group)
        return f"{who} wheels outside --version {spec} fit (newest {newest}, e.g. {example})"
    if code == "required-by-installed":
        newest = max(e.version for e in group)
        return (
            f"{who} wheels fit but for versions installed distributions rule out (newest {newest}, e.g. "
            f"{example}): upgrade or remove those distributions to use them"
        )
    return f"{who} wheels miss only by {code} (e.g. {example})"  # pragma: no cover


def torch_api_passed_over(best: IndexEntry, fits: Iterable[IndexEntry], t: Target) -> str | None:
    """Why newer fitting releases were ranked after ``best``: part of their Python code needs a newer torch."""
    if t.torch_mm is None or torch_api_short(best, t) is not None:
        return None
    passed = {e.version: s for e in fits if e.version > best.version and (s := torch_api_short(e, t))}
    if not passed:
        return None
    newer = sorted(passed, reverse=True)
    short = passed[newer[0]]
    return (
        f"newer releases fit too ({', '.join(str(v) for v in newer[:3])}) but need torch >= "
        f"{mm_text(short.torch)} for part of their Python code (releases {short.versions}: {short.what}); "
        f"this torch is {mm_text(t.torch_mm)}, so {best.version}, the newest release that runs whole on it, "
        "comes first (--version picks another)"
    )


def required_passed_over(
    best: IndexEntry, misses: Iterable[tuple[IndexEntry, tuple[str, ...]]], t: Target
) -> str | None:
    """Why newer wheels that fit this machine were not chosen: installed distributions rule them out."""
    if not t.required:
        return None
    newer = [e for e, codes in misses if codes == ("required-by-installed",) and e.version > best.version]
    if not newer:
        return None
    shown = ", ".join(str(v) for v in sorted({e.version for e in newer}, reverse=True)[:3])
    by = [r for e in newer for r in refused_by(e, t)]
    why = (
        "they refuse a newer one when they load"
        if all(r.by.checked == "run-time" for r in by)
        else "installing a newer one would break them"
    )
    return (
        f"newer releases fit this machine too ({shown}) but {required_text(by)}: {best.version}, the "
        f"newest release they allow, comes first ({why})"
    )


def build_allowed(variant: Variant | None) -> str:
    """How to build a version installed distributions allow (the source build makes the newest otherwise)."""
    pin = "--flash-version V" if variant == "fa2" else "--ref TAG"
    return f"build a version they allow (flashdoctor build --{variant} {pin})"
