"""The matcher: a failure log in, diagnoses out (best first). Never raises on any input.

How a log is read (designed for 10 MB in well under a second, see scripts/bench_explain.py):

1. Bytes are normalised once: UTF-16 (a PowerShell redirect) is re-encoded, ANSI colours and carriage
   returns are removed; nothing else is decoded up front.
2. One combined regex of every keyword in the signature data (a trie, so the regex engine walks it in
   C) finds candidate lines in the ASCII-lower-cased bytes. Only those lines are decoded
   (errors="replace") and only the signatures owning a keyword present in the line run their
   patterns. A keyword that keeps hitting is retired after a budget, so a log with 100 000 "error"
   lines costs a bounded amount.
3. Facts (the torch version setup.py printed) are read by the same scan. Contexts (is this a build?
   Windows? ROCm? FA3?) are decided on first use with bytes.find: a signature may require a context
   anywhere in the log, a fix may depend on one, and most logs need only a few.
4. Ranking: per code the strongest signature wins; a code that "yields to" another found code (a
   consequence, e.g. network-unreachable after setup.py's wheel download failed) is ranked after it;
   symptoms (build-failed, ...) come after causes and say which cause they follow from; fallbacks
   (build-slow, ...) appear only when nothing else was found; with a machine at hand, a bare build
   failure also gets the machine's own build blockers (gcc too new for nvcc, no ninja, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flashdoctor.decide.explain.tailor import CONDITIONS, Tailor, WheelFinder, env_matches, env_matches_any
from flashdoctor.knowledge.signatures import Knowledge, Signature, knowledge
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.environment import Environment

KEYWORD_LINE_BUDGET = 300  # candidate lines one keyword may contribute before it is retired
LONG_LINE = 64 * 1024  # a "line" longer than this (a log without line breaks) is read in windows
LONG_LINE_WINDOW = 4096  # bytes kept on each side of a keyword inside such a line
DEAD_HITS_BEFORE_REBUILD = 64  # candidate lines holding only retired keywords before the regex is rebuilt
EVIDENCE_MAX = 400  # characters of evidence kept around the match
MACHINE_CONFIDENCE = 0.55  # a machine-derived cause of a bare build failure
YIELD_MARGIN = 0.05  # a consequence ranks at least this far below the code it yields to


@dataclass(frozen=True)
class Diagnosis:
    """One cause (or consequence) found in a log. ``code`` is public interface (README "Failure codes").

    ``basis`` is "log" when the evidence is a log line (``line`` is its 1-based number), "machine" when
    the log only shows a failure and the cause comes from the probed machine or --target.
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

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "message": self.message,
            "fix": self.fix,
            "line": self.line,
            "basis": self.basis,
            "consequence_of": self.consequence_of,
            "source": self.source,
        }


@dataclass(frozen=True)
class KeyLine:
    line: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text}


@dataclass(frozen=True)
class Explanation:
    """The whole answer for one log: diagnoses best first; when none, the lines most likely to matter."""

    diagnoses: tuple[Diagnosis, ...]
    key_lines: tuple[KeyLine, ...]
    lines: int
    size: int
    variant: Variant  # the variant the fixes refer to (from the log: FA3's hopper/, FA4's cute; else fa2)
    contexts: frozenset[str] = field(default_factory=frozenset)  # contexts looked at that hold

    @property
    def recognised(self) -> bool:
        return bool(self.diagnoses)

    def to_json(self) -> dict[str, Any]:
        return {
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "recognised": self.recognised,
            "key_lines": [k.to_json() for k in self.key_lines],
            "log": {"bytes": self.size, "lines": self.lines},
        }


# -- input normalisation --------------------------------------------------------------------------
_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def normalise(data: bytes) -> bytes:
    """UTF-16 -> UTF-8, no ANSI escapes, "\\n" line ends. Other bytes are left for errors="replace"."""
    head = data[:4096]
    # UTF-16 (mostly ASCII, so about every other byte is NUL): with a BOM, or little-endian without one.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and head[2:].count(0) >= 0.2 * len(head[2:]):
        data = data.decode("utf-16", errors="replace").encode("utf-8")
    elif (
        len(head) >= 64
        and head[1::2].count(0) > 0.4 * len(head[1::2])
        and head[0::2].count(0) < 0.1 * len(head[0::2])
    ):
        data = data.decode("utf-16-le", errors="replace").encode("utf-8")
    if b"\x1b" in data:
        data = _ANSI.sub(b"", data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # A log pasted as a JSON/Python string literal has escaped line breaks and (almost) no real ones.
    if len(data) > 1024 and data.count(b"\n") * 4096 < len(data) and data.count(b"\\n") > 8:
        data = data.replace(b"\\r\\n", b"\n").replace(b"\\n", b"\n").replace(b'\\"', b'"')
    return data


# -- the keyword scan ---------------------------------------------------------------------------------
def _trie_regex(words: Iterable[bytes]) -> re.Pattern[bytes]:
    trie: dict[bytes, Any] = {}
    for w in words:
        node = trie
        for b in w:
            node = node.setdefault(bytes([b]), {})
        node[b""] = {}

    def build(node: dict[bytes, Any]) -> bytes:
        branches = [re.escape(k) + build(v) for k, v in sorted(node.items()) if k]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if b"" in node else body

    return re.compile(build(trie) or b"(?!)")


@dataclass
class _Hit:
    offset: int  # byte offset of the line start in the normalised log
    line: str  # the decoded line
    match: re.Match[str]


@dataclass
class _Scan:
    hits: dict[str, _Hit]  # signature id -> first qualifying match
    facts: dict[str, str]


class LogContexts:
    """Whether the log shows a context (a build, Windows, ROCm, FA3, ...), decided on first use.

    Contexts are read lazily with bytes.find rather than in the keyword scan: most logs need only a
    few of them, and an absent context's keywords would otherwise cost the scan on every position.
    """

    def __init__(self, data: bytes, low: bytes, kb: Knowledge, env: Environment | None) -> None:
        self._data, self._low, self._kb, self._env = data, low, kb, env
        self._known: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or name not in self._kb.contexts:
            return False
        if name not in self._known:
            self._known[name] = self._evaluate(name)
        return self._known[name]

    def true(self) -> frozenset[str]:
        """The contexts evaluated so far that hold."""
        return frozenset(n for n, v in self._known.items() if v)

    def _evaluate(self, name: str) -> bool:
        ctx = self._kb.contexts[name]
        if ctx.env and env_matches(self._env, ctx.env):
            return True
        low = self._low
        for kw in ctx.keywords:
            pos = low.find(kw)
            if pos < 0:
                continue
            if ctx.pattern is None:
                return True
            for _ in range(KEYWORD_LINE_BUDGET):
                start = low.rfind(b"\n", 0, pos) + 1
                end = low.find(b"\n", pos)
                end = len(low) if end < 0 else end
                if ctx.pattern.search(_decode(self._data[start:end])):
                    return True
                pos = low.find(kw, end)
                if pos < 0:
                    break
        return False


_CONTROLS = {c: "\ufffd" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]}


def _decode(raw: bytes) -> str:
    """A log line as text: undecodable bytes and control characters (a lone ESC could still steer a
    terminal) become U+FFFD."""
    return raw.decode("utf-8", errors="replace").translate(_CONTROLS)


def _scan(data: bytes, low: bytes, kb: Knowledge, env: Environment | None) -> _Scan:
    by_kw: dict[bytes, list[Signature]] = {}
    for sig in kb.signatures:
        for kw in sig.keywords:
            by_kw.setdefault(kw, []).append(sig)
    fact_by_kw: dict[bytes, list[str]] = {}
    for fact in kb.facts.values():
        for kw in fact.keywords:
            fact_by_kw.setdefault(kw, []).append(fact.name)

    hits: dict[str, _Hit] = {}
    facts: dict[str, str] = {}
    budget = dict.fromkeys([*by_kw, *fact_by_kw], KEYWORD_LINE_BUDGET)

    def alive(kw: bytes) -> bool:
        if budget.get(kw, 0) <= 0:
            return False
        if any(s.id not in hits for s in by_kw.get(kw, ())):
            return True
        return any(f not in facts for f in fact_by_kw.get(kw, ()))

    live = [kw for kw in budget if alive(kw)]
    rx = _trie_regex(live)
    dead_hits = 0
    pos = 0
    size = len(low)
    while live:
        m = rx.search(low, pos)
        if m is None:
            break
        start = low.rfind(b"\n", 0, m.start()) + 1
        end = low.find(b"\n", m.end())
        if end < 0:
            end = size
        pos = end + 1
        if end - start > LONG_LINE:  # no line breaks to speak of: look around this keyword only
            start = max(start, m.start() - LONG_LINE_WINDOW)
            end = min(end, m.end() + LONG_LINE_WINDOW)
            pos = m.end()
        seg = low[start:end]
        present = [kw for kw in live if kw in seg and alive(kw)]
        if not present:
            dead_hits += 1
        else:
            line: str | None = None
            for kw in present:
                budget[kw] -= 1
            done: set[str] = set()
            for kw in present:
                for sig in by_kw.get(kw, ()):
                    if sig.id in hits or sig.id in done:
                        continue
                    done.add(sig.id)
                    if line is None:
                        line = _decode(data[start:end])
                    sm = sig.search(line)
                    if sm is None:
                        continue
                    if sig.condition and not CONDITIONS[sig.condition](sm.groupdict(), env):
                        continue
                    hits[sig.id] = _Hit(start, line, sm)
                for name in fact_by_kw.get(kw, ()):
                    if name in facts:
                        continue
                    if line is None:
                        line = _decode(data[start:end])
                    fm = kb.facts[name].pattern.search(line)
                    if fm is not None:
                        facts[name] = fm.group("v")
        if pos >= size:
            break
        # Retire keywords with nothing left to find. Rebuilding the regex costs ~5 ms and a wasted
        # candidate line ~10 us, so rebuild only once retired keywords keep costing lines.
        if dead_hits >= DEAD_HITS_BEFORE_REBUILD:
            live = [kw for kw in live if alive(kw)]
            rx = _trie_regex(live)
            dead_hits = 0
    return _Scan(hits=hits, facts=facts)


def match_naive(text: str) -> dict[str, int]:
    """Reference matcher: every signature's patterns over every line, no prefilter, no conditions.

    Returns signature id -> 1-based line of its first match. Tests compare it with the fast scan;
    scripts/bench_explain.py uses it as the baseline.
    """
    out: dict[str, int] = {}
    lines = normalise(text.encode("utf-8", errors="replace")).split(b"\n")
    for sig in knowledge().signatures:
        for i, raw in enumerate(lines):
            if sig.search(_decode(raw)):
                out[sig.id] = i + 1
                break
    return out


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
    hit: _Hit | None
    confidence: float
    basis: str = "log"
    consequence_of: str | None = None
    evidence: str | None = None
    message: str | None = None
    fix: str | None = None


def _qualifies(sig: Signature, contexts: LogContexts, env: Environment | None) -> bool:
    if any(c not in contexts for c in sig.contexts):
        return False
    if any(c in contexts for c in sig.contexts_unless):
        return False
    if sig.env_if and not env_matches(env, sig.env_if):
        return False
    return not (sig.env_unless and env_matches_any(env, sig.env_unless))


def _variant(contexts: LogContexts) -> Variant:
    if "fa3" in contexts:
        return "fa3"
    if "fa4" in contexts:
        return "fa4"
    return "fa2"


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


def _line_number(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def explain_bytes(
    data: bytes,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    key_lines: bool | None = None,
    fields: Mapping[str, str] | None = None,
) -> Explanation:
    """Explain a log given as bytes (any encoding; undecodable bytes become U+FFFD).

    ``fields``: fix-template values the caller knows and the machine does not (the build passes
    ``jobs_used`` and ``fewer_jobs``: see flashdoctor.decide.explain.tailor.CALLER_FIELDS)."""
    data = normalise(bytes(data))
    low = data.lower()  # ASCII-only lower-casing: offsets stay valid
    kb = knowledge()
    scan = _scan(data, low, kb, env)
    contexts = LogContexts(data, low, kb, env)

    # Best signature per code, by role. A symptom never reuses a line that already gave a cause (the
    # OOM line "'cicc' died due to signal 9" is not also "the compiler error to look at").
    qualified = [
        (sig, scan.hits[sig.id])
        for sig in kb.signatures
        if sig.id in scan.hits and _qualifies(sig, contexts, env)
    ]
    variant = _variant(contexts) if qualified else "fa2"
    tailor = Tailor(
        env=env,
        variant=variant,
        facts=scan.facts,
        contexts=contexts,
        wheel_finder=wheel_finder,
        fields=dict(fields or {}),
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

    # Consequences rank after what they follow from (only log evidence dominates).
    log_codes = {code for code, c in chosen.items() if c.basis == "log"}
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
    # A bare build failure: add what this machine would break a build with.
    has_symptom = any(c.sig.role == "symptom" for c in best.values())
    if env is not None and not has_cause and has_symptom and "build" in contexts:
        for code, message, fix in _machine_causes(env, variant):
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
                line=_line_number(data, c.hit.offset) if c.hit else None,
                basis=c.basis,
                consequence_of=c.consequence_of,
                source=c.sig.source,
            )
        )
    want_key_lines = (not diagnoses) if key_lines is None else key_lines
    return Explanation(
        diagnoses=tuple(diagnoses),
        key_lines=tuple(find_key_lines(data, low)) if want_key_lines else (),
        lines=data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0),
        size=len(data),
        variant=variant,
        contexts=contexts.true(),
    )


def explain_text(
    text: str,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    fields: Mapping[str, str] | None = None,
) -> list[Diagnosis]:
    """Diagnoses for a log, best first (empty when nothing is recognised). Never raises on any text."""
    data = text.encode("utf-8", errors="replace")
    return list(explain_bytes(data, env, wheel_finder, key_lines=False, fields=fields).diagnoses)


# -- the lines most likely to matter (when nothing is recognised) --------------------------------
_KEY_WORDS = (
    b"error",
    b"fail",
    b"fatal",
    b"traceback",
    b"exception",
    b"killed",
    b"denied",
    b"not found",
    b"cannot",
    b"unable",
    b"abort",
)
_KEY_RX = _trie_regex(_KEY_WORDS)
_EXC_LINE = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt)\b(?::|$)")
_ERRORISH = re.compile(r"\berror\b|\bfatal\b|\bFAILED\b|\bfailed\b", re.IGNORECASE)
_WARNINGISH = re.compile(
    r"warn(?:ings?)?\b|deprecat|\b0 errors?\b|-Werror|error[-_]?(?:handl|check)", re.IGNORECASE
)
KEY_LINES_MAX = 8
KEY_LINE_BUDGET = 2000


def find_key_lines(data: bytes, low: bytes | None = None, limit: int = KEY_LINES_MAX) -> list[KeyLine]:
    """The lines most likely to matter: errors and final exceptions, not warnings. Never empty for a
    non-empty log (falls back to its last lines)."""
    low = data.lower() if low is None else low
    scored: list[tuple[int, int, str]] = []  # (score, line start offset, text)
    pos, seen, size = 0, 0, len(low)
    while seen < KEY_LINE_BUDGET:
        m = _KEY_RX.search(low, pos)
        if m is None:
            break
        start = low.rfind(b"\n", 0, m.start()) + 1
        end = low.find(b"\n", m.end())
        end = size if end < 0 else end
        pos = end + 1
        seen += 1
        text = _decode(data[start:end]).strip()
        if not text or _WARNINGISH.search(text):
            continue
        score = 1
        if _EXC_LINE.search(text):
            score += 4
        if _ERRORISH.search(text):
            score += 3
        if text.lower().startswith("traceback"):
            score -= 1
        scored.append((score, start, text[:EVIDENCE_MAX]))
        if pos >= size:
            break
    if scored:
        last_exc = max((s for s in scored if s[0] >= 5), key=lambda s: s[1], default=None)
        top = sorted(scored, key=lambda s: (-s[0], s[1]))[:limit]
        if last_exc is not None and last_exc not in top:
            top = [*top[: limit - 1], last_exc]
        top.sort(key=lambda s: s[1])
        return [KeyLine(_line_number(data, s), t) for _sc, s, t in top]
    # Nothing error-like: the end of the log is where a failure usually is (warnings left out).
    lines = data.rstrip(b"\n").split(b"\n")
    first = max(0, len(lines) - 200)
    tail = [
        (i, t)
        for i, t in ((i, _decode(raw).strip()) for i, raw in enumerate(lines[first:], start=first))
        if t
    ]
    quiet = [(i, t) for i, t in tail if not _WARNINGISH.search(t)]
    return [KeyLine(i + 1, t[:EVIDENCE_MAX]) for i, t in (quiet or tail)[-5:]]
