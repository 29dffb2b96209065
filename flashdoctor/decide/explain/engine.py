"""The matcher: a failure log in, diagnoses out (best first). Never raises on any input.

Reading the log (normalisation, the keyword scan, wrapped lines, contexts) is flashdoctor.decide.explain.
scan; whose machine the log is from, origin; the fix templates, tailor.

Ranking: per code the strongest signature wins; a code that "yields to" another found code (a
consequence, e.g. network-unreachable after setup.py's wheel download failed) is ranked after it;
symptoms (build-failed, ...) come after causes and say which cause they follow from; fallbacks
(build-slow, ...) appear only when nothing else was found; with the log's machine at hand, a bare build
failure also gets the machine's own build blockers (gcc too new for nvcc, no ninja, ...).

This machine (the probed Environment or --target) decides matching and fixes only for a log from this
machine (``here``, or the log's facts agree: see origin); a log from elsewhere is explained as
`--no-probe` would, with fixes tailored from the facts it shows and saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from flashdoctor.decide.explain.keylines import KeyLine, find_key_lines, line_number
from flashdoctor.decide.explain.origin import LogMachine, Origin, decide_origin, read_machine
from flashdoctor.decide.explain.resemble import Resemblance, resemble
from flashdoctor.decide.explain.scan import (
    KEYWORD_LINE_BUDGET,
    MACHINE_WINDOW,
    PROSE_MAX,
    Hit,
    LogContexts,
    Scan,
    match_naive,
    normalise,
    scan,
    scan_unwrapped,
)
from flashdoctor.decide.explain.tailor import CONDITIONS, Tailor, WheelFinder, env_matches, env_matches_any
from flashdoctor.knowledge.signatures import Signature, knowledge
from flashdoctor.knowledge.variants import DEFAULT_VARIANT, VARIANTS, Variant
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.fields import FieldsJson

__all__ = [
    "KEYWORD_LINE_BUDGET",
    "Diagnosis",
    "Explanation",
    "KeyLine",
    "LogReading",
    "explain_bytes",
    "explain_text",
    "find_key_lines",
    "match_naive",
    "normalise",
    "read_log",
]

EVIDENCE_MAX = 400  # characters of evidence kept around the match
MACHINE_CONFIDENCE = 0.55  # a machine-derived cause of a bare build failure
VERSIONS_CONFIDENCE = 0.6  # a bare build failure of a flash-attn release far older than the log's torch
SKEW_MINORS = 2  # how many torch minor versions past a release's newest make its sources "far older"
FLASH_ATTN_FACT, TORCH_FACT = "flash_attn_log", "torch_log"
VERSIONS_SOURCE = (
    "the wheel index: the wheels each flash-attn release's own publishers made (its release page)"
)
# flash-attn release (its base version) -> the newest torch (major, minor) its publishers made wheels for
Releases = Mapping[Version, tuple[int, int]]
# Loads that table at its first use (reading the wheel index costs ~0.25 s: only a bare build failure needs it)
ReleaseTable = Callable[[], Releases | None]
YIELD_MARGIN = 0.05  # a consequence ranks at least this far below the code it yields to


@dataclass(frozen=True)
class Diagnosis(FieldsJson):
    """One cause (or consequence) found in a log. ``code`` is public interface (README "Failure codes").

    ``basis`` is "log" when the evidence is a log line (``line`` is its 1-based number), "machine" when
    the log only shows a failure and the cause comes from the probed machine or --target, "versions"
    when the log only shows a failed build and the cause comes from the versions it names (a flash-attn
    release far older than its torch), "resemblance" when no signature matched and the log's words only
    resemble this cause (decide.explain.resemble).
    ``consequence_of`` names the code this one follows from, when it does.
    """

    code: str
    confidence: float
    evidence: str
    message: str
    fix: str
    line: int | None = None
    basis: str = "log"
    consequence_of: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Skipped(FieldsJson):
    """The middle of a log too long to read whole (actions.inputs.read_log reads its head and its tail):
    ``bytes`` not read after line ``after_line`` (the head ends on a whole line), holding ``lines`` line
    breaks. The lines after it are numbered as in the whole log."""

    after_line: int
    lines: int
    bytes: int

    def renumber(self, line: int) -> int:
        """A line number of the head and tail as read -> its number in the whole log."""
        return line + self.lines if line > self.after_line else line


def _recognised(diagnoses: Iterable[Diagnosis]) -> bool:
    return any(d.basis != "resemblance" for d in diagnoses)


@dataclass(frozen=True)
class Explanation:
    """The whole answer for one log: diagnoses best first; when none, the lines most likely to matter.

    ``origin`` says whether this machine's facts tailored the fixes and why; ``machine`` describes the
    machine the fixes are for ("this machine", "the machine in this log (torch 2.1.2, cp310)", or ""
    when the fixes are general)."""

    diagnoses: tuple[Diagnosis, ...]
    key_lines: tuple[KeyLine, ...]
    lines: int
    size: int
    variant: Variant  # the variant the fixes refer to (from the log: FA3's hopper/, FA4's cute; else fa2)
    contexts: frozenset[str] = field(default_factory=frozenset)  # contexts looked at that hold
    origin: Origin = field(default_factory=lambda: Origin(False, "no machine"))
    machine: str = ""
    skipped: Skipped | None = None  # the middle of a long log, not read

    @property
    def recognised(self) -> bool:
        """A known failure was found (a resemblance alone is a guess, not a recognition)."""
        return _recognised(self.diagnoses)

    def to_json(self) -> dict[str, Any]:
        return {
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "recognised": self.recognised,
            "key_lines": [k.to_json() for k in self.key_lines],
            "log": {
                "bytes": self.size,
                "lines": self.lines,
                "skipped": None if self.skipped is None else self.skipped.to_json(),
            },
        }

    def machine_json(self) -> dict[str, Any]:
        """Which machine the fixes are for (for the `explain --json` document once its schema has it)."""
        return {**self.origin.to_json(), "fixes_for": self.machine}


# -- evidence -----------------------------------------------------------------------------------
def _evidence(line: str, m: re.Match[str]) -> str:
    text = line.strip()
    if len(text) <= EVIDENCE_MAX:
        return text
    offset = len(line) - len(line.lstrip())
    s, e = m.start() - offset, m.end() - offset
    lo = max(0, min(s - EVIDENCE_MAX // 3, len(text) - EVIDENCE_MAX))
    hi = min(len(text), max(lo + EVIDENCE_MAX, e))
    return ("…" if lo > 0 else "") + text[lo:hi] + ("…" if hi < len(text) else "")


# -- ranking ------------------------------------------------------------------------------------------
@dataclass
class _Cand:
    sig: Signature
    hit: Hit | None
    confidence: float
    basis: str = "log"
    consequence_of: str | None = None
    evidence: str | None = None
    message: str | None = None
    fix: str | None = None
    line: int | None = None  # the evidence's line when there is no hit (a resemblance)
    source: str | None = None  # where the cause is documented, when not the signature's source


def _qualifies(sig: Signature, contexts: LogContexts, env: Environment | None) -> bool:
    if any(c not in contexts for c in sig.contexts):
        return False
    if any(c in contexts for c in sig.contexts_unless):
        return False
    if sig.env_if and not env_matches(env, sig.env_if):
        return False
    return not (sig.env_unless and env_matches_any(env, sig.env_unless))


def _variant(contexts: LogContexts) -> Variant:
    """The variant a log concerns: the first of the registry's variants (other than the default) whose
    log context (signatures.json ``contexts``, named after the variant) the log has; else the default."""
    return next((v for v in VARIANTS if v != DEFAULT_VARIANT and v in contexts), DEFAULT_VARIANT)


# Check finding code -> diagnosis code, for the machine's own build blockers.
_MACHINE_CODES = {
    "host-compiler-unsupported": "host-compiler-unsupported",
    "nvcc-too-old": "nvcc-too-old",
    "nvcc-torch-mismatch": "nvcc-torch-mismatch",
    "nvcc-missing": "nvcc-missing",
    "cuda-home-mismatch": "cuda-home-missing",
    "ninja-missing": "ninja-missing",
    "build-memory-low": "build-oom",
    "disk-low": "disk-full",
}


def _machine_causes(env: Environment, variant: Variant) -> list[tuple[str, str, str | None]]:
    """(code, message, fix) for each build blocker the machine itself shows (from flashdoctor.decide.checks)."""
    from flashdoctor.decide import checks
    from flashdoctor.model.findings import Status

    findings = [
        *checks.check_host_compiler(env),
        *checks.check_nvcc(env),
        *checks.check_cuda_home(env),
        *checks.check_ninja(env),
        *checks.check_resources(env),
    ]
    out = []
    for f in findings:
        if f.status not in (Status.WARN, Status.FAIL) or f.code not in _MACHINE_CODES:
            continue
        if f.variant is not None and f.variant != variant:
            continue
        if f.code == "build-memory-low" and (
            env.memory_gb is None or env.memory_gb >= checks.BUILD_GB_PER_JOB
        ):
            continue  # "only N jobs" makes a build slow, not killed
        out.append((_MACHINE_CODES[f.code], f.message, f.fix))
    return out


def _may_resemble(code: str, contexts: LogContexts) -> bool:
    """Whether a log no signature matched may be offered ``code`` by resemblance: one of the code's
    resembles_when contexts holds (a build-only cause needs a log that shows or talks about a build)."""
    need = knowledge().codes[code].resembles_when
    return not need or any(c in contexts for c in need)


def _resembling(r: Resemblance) -> _Cand:
    """A candidate for a known cause the log only resembles (nothing matched): said so, and offered
    with the cause's own general fix. Not the fix of the signature its words are closest to: that one is
    written for the message the signature matches (a diffusers mask, a GPU arch the log names), and a
    guess has neither that message nor its captures."""
    info = knowledge().codes[r.code]
    return _Cand(
        sig=r.signature,
        hit=None,
        confidence=r.confidence,
        basis="resemblance",
        evidence=r.text[:EVIDENCE_MAX],
        message=(
            f"{info.title.rstrip('.')} (by resemblance {r.score:.2f}: no known failure matched; the log's "
            f"wording is close to this cause's). {info.cause}"
        ),
        fix=info.fix,
        line=r.line,
    )


def version_skew(
    fa_text: str | None, torch_text: str | None, releases: Releases
) -> tuple[str, str, str] | None:
    """(evidence, message, fix) when the flash-attn release a build log names is far older than its torch:
    the release's wheels stop ``SKEW_MINORS`` or more torch minor versions before it, and a newer release
    made wheels for that torch. None otherwise (unknown versions, the newest releases, a near miss)."""
    fa, torch = parse_version(fa_text or ""), major_minor(torch_text or "")
    if fa is None or torch is None:
        return None
    base = Version(fa.base_version)
    top = releases.get(base)
    if top is None or torch[0] != top[0] or torch[1] < top[1] + SKEW_MINORS:
        return None
    newer = [r for r, t in releases.items() if r > base and t >= torch]
    if not newer:
        return None
    want = f"{torch[0]}.{torch[1]}"
    return (
        f"flash-attn {fa_text} and torch {torch_text} in the log",
        f"flash-attn {base} is far older than torch {want}: its release made wheels up to torch "
        f"{top[0]}.{top[1]}, and its sources are not written for a torch {torch[1] - top[1]} minor versions "
        "newer (the log shows only that the build failed)",
        f"Use a flash-attn release made for torch {want}: flash-attn=={max(newer)} (flashdoctor install --fa2 "
        f"picks its wheel), or keep flash-attn {base} with torch {top[0]}.{top[1]}.",
    )


@dataclass(frozen=True)
class LogReading:
    """What a log says whichever machine reads it (read_log): its normalised bytes, the keyword scan and
    the machine the log shows. Read-only once made: explain_bytes copies what it changes."""

    data: bytes
    low: bytes
    found: Scan
    shown: LogMachine


def read_log(data: bytes) -> LogReading:
    """The machine-independent part of explain_bytes (most of its cost: the keyword scan)."""
    data = normalise(bytes(data))
    low = data.lower()  # ASCII-only lower-casing: offsets stay valid
    kb = knowledge()
    found = scan(data, low, kb)
    if len(data) <= PROSE_MAX:  # a report someone pasted (a build log is not reflowed)
        found = scan_unwrapped(data, kb, found)
    # What the log says about its own machine: contexts read from the log alone (from its head and
    # tail: a machine's paths and names show there, and a 10 MB log is not searched once per keyword).
    head_tail = (
        low if len(low) <= 2 * MACHINE_WINDOW else low[:MACHINE_WINDOW] + b"\n" + low[-MACHINE_WINDOW:]
    )
    return LogReading(
        data, low, found, read_machine(found.facts, LogContexts(head_tail, head_tail, kb, None))
    )


def explain_bytes(
    data: bytes | LogReading,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    key_lines: bool | None = None,
    fields: Mapping[str, str] | None = None,
    *,
    here: bool = False,
    releases: ReleaseTable | None = None,
    skipped: Skipped | None = None,
) -> Explanation:
    """Explain a log given as bytes (any encoding; undecodable bytes become U+FFFD).

    ``env`` is this machine (probed, or a --target). ``here``: the log comes from it - the caller ran
    the failing command on it (flashdoctor's check/install/build/smoke) or the user says so (`explain
    --here`). Otherwise ``env`` is used only when the log's own facts agree with it (origin.decide_origin);
    a log from elsewhere gets fixes for the machine it shows.

    ``fields``: fix-template values the caller knows and the machine does not (the build passes
    ``jobs_used`` and ``fewer_jobs``: see flashdoctor.decide.explain.tailor.CALLER_FIELDS).

    ``releases``: loads the newest torch each flash-attn release has wheels for from its own publishers
    (the wheel index's decide.wheels.index.release_torch), called only for a bare build failure; with it,
    one of a release far older than the log's torch is named as such (basis "versions").

    ``skipped``: ``data`` is the head and the tail of a longer log; its lines are numbered as in that log.

    ``data`` may be a log already read (read_log): one reading explained for several machines gives what
    its bytes give for each."""
    reading = data if isinstance(data, LogReading) else read_log(data)
    data, low, found, shown = reading.data, reading.low, reading.found, reading.shown
    kb = knowledge()
    origin = decide_origin(env, shown, low, here)
    machine = env if origin.use_machine else None
    contexts = LogContexts(data, low, kb, machine)

    hits = dict(found.hits)
    for sid, candidates in found.conditional.items():
        sig = next(s for s in kb.signatures if s.id == sid)
        for hit in candidates:
            if sig.condition and CONDITIONS[sig.condition](hit.match.groupdict(), machine):
                hits[sid] = hit
                break

    # Best signature per code, by role. A symptom never reuses a line that already gave a cause (the
    # OOM line "'cicc' died due to signal 9" is not also "the compiler error to look at").
    qualified = [
        (sig, hits[sig.id]) for sig in kb.signatures if sig.id in hits and _qualifies(sig, contexts, machine)
    ]
    variant = _variant(contexts) if qualified else "fa2"
    log_env = None if machine is not None else shown.environment()
    tailor = Tailor(
        env=machine or log_env,
        variant=variant,
        facts=found.facts,
        contexts=contexts,
        wheel_finder=wheel_finder if machine is not None else None,
        fields=dict(fields or {}),
        log_machine=shown.label() if log_env is not None else "",
    )
    cause_offsets = {hit.offset for sig, hit in qualified if sig.role == "cause"}
    best: dict[str, _Cand] = {}
    fallbacks: dict[str, _Cand] = {}
    for sig, hit in qualified:
        if sig.role == "symptom" and hit.offset in cause_offsets:
            continue
        pool = fallbacks if sig.role == "fallback" else best
        cur = pool.get(sig.code)
        if cur is None or (sig.confidence, -hit.offset) > (
            cur.confidence,
            -(cur.hit.offset if cur.hit else 0),
        ):
            pool[sig.code] = _Cand(sig=sig, hit=hit, confidence=sig.confidence)
    has_cause = any(c.sig.role == "cause" for c in best.values())
    chosen = dict(best)
    if not best:
        succeeded = "success" in contexts
        if not succeeded:
            chosen.update(fallbacks)

    # Consequences rank after what they follow from (only log evidence dominates, and a symptom
    # dominates nothing: it ranks after the causes anyway).
    log_codes = {code for code, c in chosen.items() if c.basis == "log" and c.sig.role != "symptom"}
    for _ in range(len(chosen)):
        changed = False
        for code, cand in chosen.items():
            doms = [d for d in kb.codes[code].yields_to if d in log_codes and d != code]
            if not doms:
                continue
            top = max(doms, key=lambda d: chosen[d].confidence)
            cap = round(chosen[top].confidence - YIELD_MARGIN, 4)
            if cand.confidence > cap:
                cand.confidence = max(0.01, cap)
                changed = True
            cand.consequence_of = top
        if not changed:
            break

    cands = list(chosen.values())
    # A bare build failure (the log shows only that a build failed): add what this machine would break a
    # build with, and a flash-attn release far older than the log's torch.
    bare_build = not has_cause and any(c.sig.role == "symptom" for c in best.values()) and "build" in contexts
    if machine is not None and bare_build:
        for code, message, fix in _machine_causes(machine, variant):
            if code in chosen or code not in kb.codes:
                continue
            sig = next(s for s in kb.signatures if s.code == code)
            cands.append(
                _Cand(
                    sig=sig,
                    hit=None,
                    confidence=MACHINE_CONFIDENCE,
                    basis="machine",
                    evidence=f"this machine: {message}",
                    message=f"{message} (found on this machine; the log shows only that the build failed)",
                    fix=fix or tailor.choose_fix(sig.fix, {}),
                )
            )
            chosen[code] = cands[-1]

    code = "source-toolchain-mismatch"
    fa_text = found.facts.get(FLASH_ATTN_FACT)
    if releases and fa_text and code not in chosen and bare_build:
        torch = found.facts.get(TORCH_FACT) or (machine.torch if machine is not None else None)
        table = releases()
        skew = version_skew(fa_text, torch, table) if table else None
        if skew is not None:
            evidence, message, fix = skew
            sig = next(s for s in kb.signatures if s.code == code and s.role == "cause")
            cands.append(
                _Cand(
                    sig=sig,
                    hit=None,
                    confidence=VERSIONS_CONFIDENCE,
                    basis="versions",
                    evidence=evidence,
                    message=message,
                    fix=fix,
                    source=VERSIONS_SOURCE,
                )
            )
            chosen[code] = cands[-1]

    if not cands and "success" not in contexts:
        text = data.decode("utf-8", errors="replace")
        cands = [_resembling(r) for r in resemble(text, lambda code: _may_resemble(code, contexts))]

    causes = [c for c in cands if c.sig.role != "symptom"]
    causes.sort(key=lambda c: (-c.confidence, c.hit.offset if c.hit else -1))
    symptoms = [c for c in cands if c.sig.role == "symptom"]
    symptoms.sort(key=lambda c: (-c.confidence, c.hit.offset if c.hit else -1))
    top_cause = next((c.sig.code for c in causes if c.basis == "log"), None) or (
        causes[0].sig.code if causes else None
    )
    ordered = causes + symptoms

    diagnoses = []
    for c in ordered:
        captures: dict[str, str | None] = c.hit.match.groupdict() if c.hit else {}
        if c.sig.role == "symptom" and top_cause and c.consequence_of is None:
            c.consequence_of = top_cause
        message = c.message or tailor.render(c.sig.message, captures) or c.sig.message
        fix = c.fix or tailor.choose_fix(c.sig.fix, captures)
        confidence = c.confidence
        if c.sig.role == "symptom" and causes:
            confidence = min(confidence, causes[-1].confidence - YIELD_MARGIN)
        diagnoses.append(
            Diagnosis(
                code=c.sig.code,
                confidence=round(max(0.01, confidence), 2),
                evidence=c.evidence or (_evidence(c.hit.line, c.hit.match) if c.hit else ""),
                message=message,
                fix=fix,
                line=_renumber(line_number(data, c.hit.offset) if c.hit else c.line, skipped),
                basis=c.basis,
                consequence_of=c.consequence_of,
                source=c.source or c.sig.source,
            )
        )
    want_key_lines = (not _recognised(diagnoses)) if key_lines is None else key_lines
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return Explanation(
        diagnoses=tuple(diagnoses),
        key_lines=tuple(
            KeyLine(skipped.renumber(k.line), k.text) if skipped else k for k in find_key_lines(data, low)
        )
        if want_key_lines
        else (),
        lines=skipped.renumber(lines) if skipped else lines,
        size=len(data),
        variant=variant,
        contexts=contexts.true(),
        origin=origin,
        machine="this machine" if machine is not None else tailor.log_machine_phrase(),
        skipped=skipped,
    )


def _renumber(line: int | None, skipped: Skipped | None) -> int | None:
    return line if line is None or skipped is None else skipped.renumber(line)


def explain_text(
    text: str,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    fields: Mapping[str, str] | None = None,
    *,
    here: bool = False,
) -> list[Diagnosis]:
    """Diagnoses for a log, best first (empty when nothing is recognised: the callers — install, build,
    smoke, check — report a cause, and a resemblance is only a guess). Never raises on any text.
    ``here``: the log comes from ``env``'s machine (see explain_bytes)."""
    data = text.encode("utf-8", errors="replace")
    expl = explain_bytes(data, env, wheel_finder, key_lines=False, fields=fields, here=here)
    return list(expl.diagnoses) if expl.recognised else []
