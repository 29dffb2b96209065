"""The last resort for a log that no signature matches: which known cause do its words resemble?

Real users paste known failures in words no signature anticipated ("the V100 is not supported", a title
and three lines of prose, another library's message for the same fact). When nothing matched, the log is
compared with what flashdoctor knows about each cause: the example lines of the code's signatures, their
messages and the code's title (flashdoctor/data/signatures.json), and the words of real logs whose cause
a thread confirmed (flashdoctor/data/resemblance.json, built by scripts/build_resemblance.py from the
tuning splits of explain's evaluation set; scaled down against the signatures' own words). Each code is
one bag of words weighted by how particular a word is to few codes (tf-idf over the codes); the log is
one bag of words (its head and tail); the score is their cosine. A code scoring at least ``THRESHOLD`` is
offered, with a runner-up within ``MARGIN`` of it; both are labelled as resemblance, not recognition
(`Diagnosis.basis == "resemblance"`, confidence at most ``CONFIDENCE_CAP``), and `explain` still exits
1 ("nothing recognised").

The constants were chosen on the tuning splits' logs that the signatures of their day did not recognise,
each split scored with a corpus that leaves its own logs out (scripts/eval_resemblance.py; docs/explain.md
gives the figures), never on the holdout splits.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from flashdoctor.knowledge.signatures import (
    Knowledge,
    ResemblanceCorpus,
    Signature,
    knowledge,
    resemblance_corpus,
)

THRESHOLD = 0.11  # cosine a code needs to be offered
MARGIN = 0.04  # a runner-up this close to the best is offered too
CONFIDENCE_CAP = 0.4  # a resemblance never claims more than this
HEAD_CHARS = 8192  # of a long log, its head and tail are compared (errors and titles live there)
TAIL_CHARS = 16384
LINES_MAX = 4000  # lines looked at for the evidence line

_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
_PLACEHOLDER = re.compile(r"\{\w+\}")
# A log (or a report in prose, or a question) needs a line that says something went wrong or asks why:
# nothing is offered for one that does not ("export CUDA_HOME=..." resembles cuda-home-missing, but is no failure).
# The CJK words: "problem", "need", "error report".
_FAILURE = re.compile(
    r"error|fail|fatal|exception|traceback|killed|\bdie[sd]?\b|freez|froze|abort|crash|segmentation|denied|invalid|"
    r"can ?not|unable|couldn't|could not|not (?:found|supported|available|compatible|work|working|installed)|"
    r"unsupported|incompatible|doesn'?t (?:work|support|run)|does not (?:work|support|run)|won'?t|"
    r"no (?:module|such|kernel|matching)|missing|undefined|out of memory|\boom\b|hang|stuck|forever|hours|"
    r"slow|support for|only support|require|need|only work|[?\uff1f]|\u95ee\u9898|\u9700\u8981|\u62a5\u9519",
    re.IGNORECASE,
)
# ... unless the line says the condition was handled ("..., padding to 64", "falling back to SDPA").
_HANDLED = re.compile(r"padding to|falling back|falls? back to|using \S+ instead|\bwarn", re.IGNORECASE)
# A deprecation notice's line as Python prints it ("...: FutureWarning: ...", DeprecationWarning): not compared.
_DEPRECATION = re.compile(r"^[^\n]*\b(?:Future|Deprecation)Warning:[^\n]*$", re.MULTILINE)
# Words that say nothing about a cause: English glue and a traceback's furniture.
_STOP_WORDS = """
the and for with this that from not are was were has have had you your but can could would should
will into when then than there their they them our out all any its also just only use used using
been being get got does did done one two more most some such very what which who why how where here
error errors failed failure fail traceback recent call last file line lines module python site
packages lib usr local home root
"""
_STOP = frozenset(_STOP_WORDS.split())


# The parts of a wheel's file name (Python, ABI and platform tags, local version labels): any log about a
# wheel has them, whatever went wrong with it.
_TAG = re.compile(r"(?:cp|py|cu)\d+\w*|(?:many)?linux\w*|win_amd64|macosx\w*|x86_64|aarch64|abi3|whl")


def words(text: str) -> list[str]:
    """The words of ``text`` that can tell causes apart (lower case, 3+ characters, no glue, no wheel
    tags)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and not _TAG.fullmatch(w)]


def _vector(bag: Mapping[str, float], idf: Mapping[str, float]) -> dict[str, float]:
    """Unit tf-idf vector of a bag of word counts (sublinear: 1 + ln n; a weight below 1, a corpus word
    scaled down, counts as itself)."""
    weights = {
        w: (1.0 + math.log(n) if n >= 1 else n) * idf[w] for w, n in bag.items() if idf.get(w, 0.0) > 0.0
    }
    norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
    return {w: x / norm for w, x in weights.items()}


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())


def _sig_texts(sig: Signature) -> Iterable[str]:
    yield from sig.examples
    yield _PLACEHOLDER.sub(" ", sig.message)


@dataclass(frozen=True)
class _Model:
    idf: Mapping[str, float]
    codes: Mapping[str, dict[str, float]]  # code -> its unit vector
    signatures: tuple[tuple[Signature, dict[str, float]], ...]  # each cause signature's own vector


def corpus_words(logs: Iterable[tuple[str, str]], min_logs: int) -> dict[str, dict[str, float]]:
    """The resemblance corpus from real logs whose cause was confirmed, ``(code, log)`` pairs: per code,
    each word's weight summed over its logs (1 + ln of its count in the log's compared window), keeping
    only words found in at least ``min_logs`` logs of any code (a word of one thread is that thread's)."""
    per_log = [(code, Counter(words(_window(log)))) for code, log in logs]
    seen: Counter[str] = Counter()
    for _code, bag in per_log:
        seen.update(bag.keys())
    out: dict[str, dict[str, float]] = {}
    for code, bag in per_log:
        mine = out.setdefault(code, {})
        for w, n in bag.items():
            if seen[w] >= min_logs:
                mine[w] = mine.get(w, 0.0) + 1.0 + math.log(n)
    return {code: {w: round(x, 3) for w, x in sorted(ws.items())} for code, ws in sorted(out.items()) if ws}


def build_model(kb: Knowledge, corpus: ResemblanceCorpus | None = None) -> _Model:
    """Each code's words (its cause signatures' examples and messages, and its title, plus the words of
    real logs of that cause from ``corpus``, scaled by its weight) as tf-idf vectors over the codes. A
    fallback's words ("Building wheel for flash-attn") are in every build log, and a symptom is never
    offered: only cause signatures count."""
    bags: dict[str, Counter[str]] = {}
    sig_bags: list[tuple[Signature, Counter[str]]] = []
    for sig in kb.signatures:
        if sig.role != "cause":
            continue
        bag = Counter(w for text in _sig_texts(sig) for w in words(text))
        sig_bags.append((sig, bag))
        bags.setdefault(sig.code, Counter()).update(bag)
    # A code whose signatures only say what the log shows (build-slow: "a build is running") is offered
    # when its data says in which logs (resembles_when): its words are its title and its real logs'.
    for code, info in kb.codes.items():
        if code not in bags and info.resembles_when:
            own = [sig for sig in kb.signatures if sig.code == code]
            if own:
                bags[code] = Counter()
                sig_bags.extend((sig, Counter(words(_PLACEHOLDER.sub(" ", sig.message)))) for sig in own)
    for code, bag in bags.items():
        bag.update(words(kb.codes[code].title))
    weighted: dict[str, dict[str, float]] = {code: dict(bag) for code, bag in bags.items()}
    if corpus is not None:
        for code, ws in corpus.codes.items():
            if code in weighted:  # a code the signatures no longer name is not offered
                mine = weighted[code]
                for w, x in ws.items():
                    mine[w] = mine.get(w, 0.0) + corpus.weight * x
    df: Counter[str] = Counter()
    for ws in weighted.values():
        df.update(ws.keys())
    n = len(weighted)
    idf = {w: math.log((1 + n) / (1 + k)) for w, k in df.items()}
    return _Model(
        idf=idf,
        codes={code: _vector(ws, idf) for code, ws in weighted.items()},
        signatures=tuple((sig, _vector(bag, idf)) for sig, bag in sig_bags),
    )


@lru_cache(maxsize=1)
def _model() -> _Model:
    return build_model(knowledge(), resemblance_corpus())


@dataclass(frozen=True)
class Resemblance:
    """A known cause the log's words are close to: ``signature`` is the code's signature they are
    closest to, ``line``/``text`` the log line most like the code (1-based)."""

    code: str
    score: float
    signature: Signature
    line: int | None
    text: str

    @property
    def confidence(self) -> float:
        return round(min(CONFIDENCE_CAP, self.score), 2)


def _window(text: str) -> str:
    """The part of the log compared: all of it, or of a long log its head and tail; without deprecation
    notices (a FutureWarning that torch.cuda.amp.autocast is deprecated is in countless logs and names no
    failure, yet its words are a cause's: "autocast" is dtype-unsupported's)."""
    if len(text) > HEAD_CHARS + TAIL_CHARS:
        text = text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]
    return _DEPRECATION.sub("", text)


def _best_line(text: str, vec: Mapping[str, float], idf: Mapping[str, float]) -> tuple[int | None, str]:
    best: tuple[float, int | None, str] = (0.0, None, "")
    for i, line in enumerate(text.split("\n", LINES_MAX)[:LINES_MAX], start=1):
        lv = _vector(Counter(words(line)), idf)
        if not lv or _DEPRECATION.match(line):
            continue
        score = _cosine(lv, vec)
        if score > best[0]:
            best = (score, i, line.strip())
    return best[1], best[2]


def resemble(
    text: str, allowed: Callable[[str], bool] = lambda code: True, model: _Model | None = None
) -> list[Resemblance]:
    """The known causes ``text`` resembles (best first; at most two, usually none). ``allowed(code)``
    says whether the code may be offered for this log (the engine checks the code's resembles_when
    contexts); a text that reports no failure gets nothing."""
    window = _window(text)
    if not any(_FAILURE.search(ln) and not _HANDLED.search(ln) for ln in window.split("\n")[:LINES_MAX]):
        return []
    model = model or _model()
    lv = _vector(Counter(words(window)), model.idf)
    if not lv:
        return []
    scored = sorted(
        ((_cosine(lv, vec), code) for code, vec in model.codes.items() if allowed(code)), reverse=True
    )
    if not scored or scored[0][0] < THRESHOLD:
        return []
    top = scored[0][0]
    chosen = [(s, code) for s, code in scored[:2] if s >= THRESHOLD and top - s <= MARGIN]
    out = []
    for score, code in chosen:
        sig = max(
            (pair for pair in model.signatures if pair[0].code == code),
            key=lambda pair: _cosine(lv, pair[1]),
        )[0]
        line, evidence = _best_line(text, model.codes[code], model.idf)
        out.append(Resemblance(code=code, score=score, signature=sig, line=line, text=evidence))
    return out
