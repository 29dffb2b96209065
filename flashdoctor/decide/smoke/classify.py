"""How the smoke reads what a backend did: error texts to skips and errors, kernel names to proof, a
build's profile to the cases it does not cover, a dead runner to a reason. Pure functions of values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.backends import backend, smoke_facts
from flashdoctor.knowledge.profiles import build_coverage
from flashdoctor.knowledge.variants import variant_info
from flashdoctor.model.cases import Case, backend_info, backend_kind, backend_title
from flashdoctor.model.smoke import CaseStatus, GpuInfo, Tolerance


def tolerance_for(dtype: str) -> Tolerance:
    t = load_data("smoke")["tolerances"]["dtypes"][dtype]
    return Tolerance(out=float(t["out"]), grad=float(t["grad"]))


@dataclass(frozen=True)
class Classified:
    category: (
        str  # no_kernel | unsupported_gpu | no_kernel_image | oom | not_compiled | unsupported_input | error
    )
    status: CaseStatus
    reason: str


def _signature_category(text: str) -> str | None:
    for sig in load_data("smoke")["errors"]["signatures"]:
        if re.search(sig["pattern"], text, re.IGNORECASE):
            return str(sig["category"])
    return None


def _head_dim_documented(backend: str, head_dim: int) -> tuple[bool, int]:
    hd = smoke_facts(backend).get("head_dims", {"max": 256, "multiple_of": 8})
    return head_dim <= int(hd["max"]) and head_dim % int(hd["multiple_of"]) == 0, int(hd["max"])


def classify_error(
    error: str,
    backend: str,
    case: Case,
    gpu: GpuInfo | None = None,
    warnings: Sequence[str] = (),
) -> Classified:
    """What an exception from ``backend`` on ``case`` means: a skip with a reason, or an error.

    An ahead-of-time build (FA2, FA3) that refuses a head dim or dtype inside its documented range was
    built without it ("not compiled in this build", e.g. a minimal build with only head dim 128); the
    same refusal outside the range, or from the JIT-compiled FA4, is an unsupported input.
    """
    title = backend_title(backend)
    where = gpu.label if gpu is not None else "this device"
    why = "; ".join(w for w in warnings if w)[:300]
    cat = _signature_category(error)
    short = error[:200]
    if backend_kind(backend) == "sdpa":
        if cat == "no_kernel":
            return Classified(
                "no_kernel",
                CaseStatus.SKIP,
                f"no {title} kernel for this input here" + (f" ({why})" if why else ""),
            )
        if cat == "oom":
            return Classified("oom", CaseStatus.SKIP, "out of memory at this shape")
        if case.dtype == "fp32" and cat == "dtype":
            return Classified("unsupported_input", CaseStatus.SKIP, f"{title} takes fp16/bf16 only")
        return Classified("error", CaseStatus.ERROR, f"raised {short}")
    aot = bool(backend_info(backend).get("aot", False))
    if cat == "unsupported_gpu":
        return Classified("unsupported_gpu", CaseStatus.SKIP, f"cannot run on {where}")
    if cat == "no_kernel_image":
        return Classified("no_kernel_image", CaseStatus.ERROR, f"the binary has no code for {where}")
    if cat == "oom":
        return Classified("oom", CaseStatus.SKIP, "out of memory at this shape")
    if cat == "not_compiled":
        if aot:
            what = re.search(r"build does not support ([^.\n]+)", error)
            return Classified(
                "not_compiled",
                CaseStatus.SKIP,
                f"not compiled in this build: {what.group(1).strip()}"
                if what
                else f"head dim {case.head_dim} / {case.dtype} not compiled in this build",
            )
        return Classified("unsupported_input", CaseStatus.SKIP, "does not take this input here")
    if cat == "dtype" or (cat == "head_dim" and case.dtype == "fp32"):
        if case.dtype == "fp32":
            return Classified("unsupported_input", CaseStatus.SKIP, "takes fp16/bf16 only, not fp32")
        if aot:
            return Classified("not_compiled", CaseStatus.SKIP, f"{case.dtype} not compiled in this build")
        return Classified("unsupported_input", CaseStatus.SKIP, f"does not take {case.dtype} here")
    if cat == "head_dim":
        documented, hd_max = _head_dim_documented(backend, case.head_dim)
        if documented and aot:
            return Classified(
                "not_compiled", CaseStatus.SKIP, f"head dim {case.head_dim} not compiled in this build"
            )
        if not documented:
            return Classified(
                "unsupported_input",
                CaseStatus.SKIP,
                f"head dim {case.head_dim} is beyond what it takes (≤ {hd_max}, a multiple of 8)",
            )
        return Classified(
            "unsupported_input", CaseStatus.SKIP, f"does not take head dim {case.head_dim} here"
        )
    return Classified("error", CaseStatus.ERROR, f"raised {short}")


def proof_kernel(backend: str, names: Iterable[str]) -> str | None:
    """The first of ``names`` that is one of the backend's own kernels (flashdoctor/data/smoke.json
    kernel_pattern / kernel_exclude), or None."""
    info = backend_info(backend)
    inc = re.compile(info["kernel_pattern"], re.IGNORECASE)
    exc = re.compile(info["kernel_exclude"], re.IGNORECASE) if info.get("kernel_exclude") else None
    for n in names:
        if inc.search(n) and not (exc and exc.search(n)):
            return n
    return None


# -- what a build covers -----------------------------------------------------------------------------
def not_compiled(
    backends: Iterable[str], cases: Iterable[Case], versions: Mapping[str, str | None]
) -> dict[str, dict[str, str]]:
    """backend -> {case: reason} for every case an installed build does not cover, read from its version's
    local label (knowledge.profiles.build_coverage): a minimal FA2 (2.7.x, 2.8.x) or FA3 build. These
    are never called: an FA3 build without fp16 kernels can crash the interpreter when given fp16.
    Dtypes the variant never takes (fp32) are left to the kernel's own check (a clear exception)."""
    out: dict[str, dict[str, str]] = {}
    cases = tuple(cases)
    for b in backends:
        variant = backend(b).variant
        coverage = None if variant is None else build_coverage(variant, versions.get(b))
        if variant is None or coverage is None:
            continue
        dtypes = variant_info(variant).dtypes
        for case in cases:
            missing = coverage.missing(case.head_dim, case.dtype) if case.dtype in dtypes else None
            if missing is None and case.varlen is not None and "varlen" in coverage.disabled:
                missing = "varlen"  # FA3 --no-varlen
            if missing:
                out.setdefault(b, {})[case.name] = f"not compiled in this build: {missing}"
    return out


def covered_dtypes(name: str, version: str | None) -> tuple[str, ...] | None:
    """The half dtypes an installed build has kernels for; None when it has them all (no profile)."""
    variant = backend(name).variant
    coverage = None if variant is None else build_coverage(variant, version)
    if coverage is None or coverage.dtypes is None:
        return None
    return tuple(d for d in ("bf16", "fp16") if d in coverage.dtypes)


def covered_head_dim(name: str, version: str | None) -> int | None:
    """A head dim an installed build has a kernel for, to feed it wrong input at (its input checks): the
    smallest compiled kernel of a minimal build; None when it has them all (no profile). An FA3 build
    without head dim 64 can crash when called at 64, whatever the dtype (measured on an H100)."""
    variant = backend(name).variant
    coverage = None if variant is None else build_coverage(variant, version)
    if coverage is None or coverage.head_dims is None:
        return None
    return min(coverage.head_dims)


def skips_input_checks(name: str, version: str | None) -> bool:
    """Whether the installed build of ``name`` is not fed input it must refuse: a minimal build of a
    variant whose registry entry says ``minimal_input_checks: false`` (it dies instead of refusing)."""
    if covered_dtypes(name, version) is None:  # not a minimal build (or not a variant)
        return False
    return smoke_facts(name).get("minimal_input_checks", True) is False


def version_label(name: str, version: str | None) -> tuple[str, str | None]:
    """How a report names an installed build: a short label and, for a flashdoctor minimal build, its
    profile in words. The local label of such a build (3.0.0+fd.sm90.hd128.bf16.nosplit…) is too long
    for a table or a sentence: "3.0.0 hd128 bf16" and "flashdoctor build with head dim 128, bf16 only"
    instead (the full version stays in the JSON). Other versions are returned as they are."""
    if not version:
        return "", None
    variant = backend(name).variant
    coverage = None if variant is None else build_coverage(variant, version)
    if coverage is None:
        return version, None
    public = version.split("+", 1)[0]
    halves = None if coverage.dtypes is None else "/".join(d for d in coverage.dtypes if d != "fp8")
    dims = None if coverage.head_dims is None else "/".join(map(str, coverage.head_dims))
    short = [f"hd{dims}"] if dims else []
    words = [f"head dim {dims}"] if dims else []
    if halves:
        short.append(halves)
        words.append(halves)
    profile = "flashdoctor build with " + (", ".join(words) + " only" if words else "every kernel")
    return " ".join([public, *short]), profile


EVIDENCE_CHARS = 1500  # of a dead process's stderr, kept as a finding's evidence


def crash_evidence(event: Mapping[str, Any]) -> str | None:
    """A dead process's stderr as evidence: from faulthandler's "Fatal Python error" header when it shows
    one (the error and the stack come first, the loaded-module list last), else its last characters."""
    text = str(event.get("stderr_tail") or "").strip()
    at = text.rfind("Fatal Python error")
    return (text[at : at + EVIDENCE_CHARS] if at >= 0 else text[-EVIDENCE_CHARS:]) or None


def crash_reason(crash: Mapping[str, Any]) -> str:
    """One line for a crash or a timeout event of the orchestrator."""
    if crash["event"] == "timeout":
        limit, budget = crash.get("timeout_s"), crash.get("budget_s")
        if crash.get("stalled"):
            return f"made no progress for {limit if limit is not None else '?'} s (killed)"
        if limit is not None and budget is not None and float(limit) < float(budget) - 0.5:
            # A restarted runner gets what is left of the budget, not the whole.
            return (
                f"did not finish before the {float(budget):g} s limit ran out "
                f"(killed after {float(limit):g} s in runner process {int(crash.get('attempt') or 0) + 1})"
            )
        return f"did not finish within the {limit if limit is not None else '?'} s limit (killed)"
    sig = crash.get("signal") or f"exit {crash.get('rc')}"
    return f"the interpreter died ({sig})"


def _template(text: str) -> tuple[str, list[str]]:
    """ "a::b<X, c<Y>>" -> ("a::b", ["X", "c<Y>"]); no template: (text, [])."""
    i = text.find("<")
    if i < 0:
        return text.strip(), []
    args: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text[i:]:
        if ch == "<":
            depth += 1
            if depth == 1:
                continue
        elif ch == ">":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                break
        elif ch == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    return text[:i].strip(), args


def kernel_label(name: str, limit: int = 60) -> str:
    """A kernel's name as a table can show it in ``limit`` characters: no return type, argument list
    or launch wrapper (data/smoke.json kernel_wrappers), nested template arguments elided ("<…>"); the
    longest of these forms that fits, else the bare name cut with "…"."""
    text = re.sub(r"\(anonymous namespace\)::", "", name.strip())
    text = re.sub(r"^void\s+", "", text)
    depth = 0
    for i, ch in enumerate(text):  # the argument list: the first "(" outside the template arguments
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            text = text[:i]
            break
    wrappers = set(load_data("smoke")["kernel_wrappers"]["names"])
    head, args = _template(text)
    while args and head.split("::")[-1] in wrappers:
        head, args = _template(args[0])
    bare = head.split("::")[-1]
    inner = ", ".join(a if "<" not in a else _template(a)[0] + "<…>" for a in args)
    forms = [f"{head}<{inner}>" if args else head, f"{head}<…>" if args else head]
    forms += [f"{bare}<…>" if args else bare, bare]
    for form in forms:
        if len(form) <= limit:
            return form
    return bare[: max(1, limit - 1)] + "…"
