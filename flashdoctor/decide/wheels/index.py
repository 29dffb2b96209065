"""The wheel index: load wheels_index.json, validate it, and turn each entry into a typed value.

Where the index comes from: location.py (an explicit path, $FLASHDOCTOR_WHEELS_INDEX, a refreshed index
newer than the bundled one, the bundled one).

A bad index is a user error (exit 2) whose message names the entry at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# re-exported: the index's public names stay where they were (location.py holds them now)
from flashdoctor.decide.wheels.location import ENV_VAR as ENV_VAR
from flashdoctor.decide.wheels.location import INDEX_FILENAME as INDEX_FILENAME
from flashdoctor.decide.wheels.location import MAX_INDEX_BYTES as MAX_INDEX_BYTES
from flashdoctor.decide.wheels.location import WheelIndexError as WheelIndexError
from flashdoctor.decide.wheels.location import default_index_path as default_index_path
from flashdoctor.decide.wheels.location import document_date
from flashdoctor.decide.wheels.parse import WheelName, WheelNameError, parse_wheel_name
from flashdoctor.knowledge.data import read_capped
from flashdoctor.knowledge.schemas import first_error
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.plan import WheelRef

Keep = Callable[[str], bool]  # a test on an entry's filename (hashable: it keys the load cache)

INDEX_SCHEMA_ID = "flashdoctor/wheels-index/1"


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    rank: int
    community: bool
    url: str | None  # URL template for entries without their own url
    title: str | None = None
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class IndexEntry:
    """One wheel of the index, with what its name says (``name``) and what the index adds."""

    name: WheelName
    source: str
    evidence: str
    sha256: str | None
    url_or_template: str  # the entry's url, or its source's template (see ``url``)
    tag: str | None
    cuda: str | None  # CUDA the wheel was built with (or its PyTorch index's CUDA); None = the name's token
    abi: bool | None  # CXX11 ABI it needs; None = not applicable / unknown
    glibc: tuple[int, int] | None  # glibc it needs (from the builder's OS, or its manylinux tag)
    archs: tuple[str, ...] | None  # GPU code it carries; None = unknown or JIT (FA4)
    torch_spec: SpecifierSet | None  # torch versions it serves, when the name has no torch
    requires_python: SpecifierSet | None
    yanked: bool
    confidence: str | None
    inferred: frozenset[str]
    torch_build: str | None  # the torch it was compiled against ("2.3.0", "2.2.0.dev20231106"); None: unknown
    claim: bool  # derived from a build matrix only: no file was seen published
    superseded_by: str | None  # a release that replaced this one within a day (its CI may not have finished)
    alt_tags: tuple[str, ...]
    rank: int
    community: bool
    # a community build of a version newer than every release of its package (a snapshot of unreleased
    # code): the newest release's version, else None
    unreleased: Version | None
    # precomputed for the selector
    version: Version  # public version
    release: Version | None  # the release tag as a version (tie-break: newer release first)
    cuda_mm: tuple[int, int | None] | None  # (major, minor or None)

    @property
    def filename(self) -> str:
        return self.name.filename

    @property
    def variant(self) -> Variant | None:
        return self.name.variant

    @property
    def url(self) -> str:
        return render_url(self.url_or_template, self.tag, self.filename)

    def alt_urls(self) -> tuple[str, ...]:
        """Older rebuilds of the same file (community repositories), newest first."""
        if "{" not in self.url_or_template:
            return ()
        return tuple(render_url(self.url_or_template, t, self.filename) for t in self.alt_tags)

    def ref(self) -> WheelRef:
        return WheelRef(
            filename=self.filename,
            url=self.url,
            sha256=self.sha256,
            source=self.source,
            version=str(self.version),
        )

    @property
    def label(self) -> str:
        """The filename, plus the CUDA index where several entries share one filename (FA3)."""
        if self.source == "pytorch-index" and self.cuda:
            return f"{self.filename} (cu{self.cuda.replace('.', '')})"
        return self.filename


TEMPLATE_FIELDS = ("tag", "filename", "filename_quoted")


def render_url(template: str, tag: str | None, filename: str) -> str:
    """A URL from a template checked by ``check_template`` (only {tag}, {filename}, {filename_quoted})."""
    if "{" not in template:
        return template
    return template.format(tag=tag, filename=filename, filename_quoted=quote(filename))


def check_template(template: str, where: str, tag: str | None = None, has_tag: bool = True) -> None:
    """Refuse a URL template that ``render_url`` could not fill: an unknown field ({nope}, {0},
    {tag.__class__}), a conversion or format spec, unbalanced braces, or {tag} where there is no tag."""
    shown = template if len(template) <= 200 else template[:200] + "…"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise WheelIndexError(f"{where}: URL template {shown!r} is malformed ({exc})") from None
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise WheelIndexError(
                f"{where}: URL template {shown!r} uses {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; a template may use only {known}"
            )
        if field == "tag" and not has_tag and tag is None:
            raise WheelIndexError(f"{where}: URL template {shown!r} needs a 'tag', and the entry has none")


@dataclass(frozen=True, eq=False)  # identity equality: an index is compared and cached by object
class WheelIndex:
    origin: str
    sources: Mapping[str, SourceInfo]
    entries: tuple[IndexEntry, ...]
    built_from: str | None = None
    generated: str | None = None  # YYYY-MM-DD the index was written
    inputs: tuple[Mapping[str, Any], ...] = ()
    subset: bool = False  # only the entries a filename filter kept (index_from_document's ``keep``)

    @property
    def data_date(self) -> str | None:
        """How old its knowledge is (location.document_date)."""
        sources = {n: s.raw or {} for n, s in self.sources.items()}
        return document_date({"inputs": list(self.inputs), "generated": self.generated, "sources": sources})

    def for_variant(self, variant: Variant) -> tuple[IndexEntry, ...]:
        return _by_variant(self)[variant]


@lru_cache(maxsize=8)
def _by_variant(index: WheelIndex) -> dict[Variant, tuple[IndexEntry, ...]]:
    out: dict[Variant, list[IndexEntry]] = {v: [] for v in VARIANTS}
    for e in index.entries:
        if e.variant is not None:
            out[e.variant].append(e)
    return {v: tuple(es) for v, es in out.items()}


# -- loading ----------------------------------------------------------------------------------------
SCHEMA = "wheels-index.schema.json"


def load_index(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    keep: Keep | None = None,
) -> WheelIndex:
    """Load and validate a wheel index (cached per file, modification time and ``keep``)."""
    p = Path(path) if path is not None else default_index_path(environ)
    return _load_cached(*_cache_key(p), keep)


def read_index_document(path: str | os.PathLike[str]) -> tuple[bytes, Any]:
    """The bytes and parsed JSON of the index at ``path`` (cached per file and modification time, so
    that reading it ahead of its use, while a probe runs, serves the load_index that follows)."""
    return _document(*_cache_key(path))


def _cache_key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """What the load caches are keyed on: the path, its modification time and size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise WheelIndexError(f"cannot read wheel index {path}: {exc.strerror or exc}") from None
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: int, _size: int, keep: Keep | None) -> WheelIndex:
    data, doc = _document(path, _mtime, _size)
    return index_from_bytes(data, doc, origin=path, keep=keep)


@lru_cache(maxsize=2)
def _document(path: str, _mtime: int, _size: int) -> tuple[bytes, Any]:
    data = read_capped(path, MAX_INDEX_BYTES, "wheel index", WheelIndexError)
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise WheelIndexError(f"wheel index {path} is not valid JSON{where}: {exc}") from None
    except RecursionError:
        raise WheelIndexError(f"wheel index {path} is nested too deeply to be a wheel index") from None
    return data, doc


def index_from_bytes(data: bytes, doc: Any, origin: str, keep: Keep | None = None) -> WheelIndex:
    """The typed index of ``doc``, parsed from ``data`` by the caller (a user's index is read with
    bounds by flashdoctor.actions.inputs). Content that passed the whole parse once (the schema and
    every entry) is not validated again, and of it only the entries ``keep`` keeps are parsed; content
    not seen before is parsed whole (``keep`` then changes nothing a selection finds)."""
    marker = _validated_marker(data)
    if marker is not None and marker.exists():
        return index_from_document(doc, origin=origin, validate=False, keep=keep)
    index = index_from_document(doc, origin=origin)
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # a read-only cache only costs the next run another validation
    return index


def _validated_marker(data: bytes) -> Path | None:
    """A file whose existence says "this exact index passed the whole parse of this exact code": its
    key hashes the content, the schema and the two modules that check entries (this one and parse.py),
    so an upgrade validates again. Validating ~5000 entries takes ~0.5 s; content that passed once is not
    validated again, and a selection may then parse only the entries it can use."""
    try:
        from platformdirs import user_cache_dir

        pkg = resources.files("flashdoctor")
        code = hashlib.sha256(pkg.joinpath("schemas", SCHEMA).read_bytes())
        for module in ("index.py", "parse.py"):
            code.update(pkg.joinpath("decide", "wheels", module).read_bytes())
        key = hashlib.sha256(data).hexdigest()[:32] + "-" + code.hexdigest()[:16]
        return Path(user_cache_dir("flashdoctor", appauthor=False)) / "validated" / f"wheels-index-{key}"
    except OSError:
        return None


def validate_document(doc: Any, origin: str = "wheel index") -> None:
    """JSON Schema validation (knowledge.schemas.first_error). Raises WheelIndexError naming the first bad
    entry."""
    try:
        error = first_error(SCHEMA, doc)
        if error is None:
            return
        message = error.message  # the instance's repr: deep for nested input, long for a long string
    except RecursionError:
        raise WheelIndexError(f"{origin}: nested too deeply to be a wheel index") from None
    if len(message) > 300:
        message = message[:300] + "…"
    path = list(error.absolute_path)
    raise WheelIndexError(f"{origin}: {_where(doc, path)}: {message}")


def _where(doc: Any, path: list[Any]) -> str:
    if len(path) >= 2 and path[0] == "wheels" and isinstance(path[1], int):
        entry = doc["wheels"][path[1]]
        fn = entry.get("filename") if isinstance(entry, dict) else None
        rest = ".".join(str(p) for p in path[2:])
        return (
            f"entry {path[1]}"
            + (f" ({fn})" if isinstance(fn, str) else "")
            + (f", field {rest!r}" if rest else "")
        )
    return "top level" if not path else "field " + ".".join(str(p) for p in path)


def index_from_document(
    doc: Any, origin: str = "wheel index", validate: bool = True, keep: Keep | None = None
) -> WheelIndex:
    """The typed index of a parsed document. ``validate=False`` skips the JSON Schema pass (for content
    that passed it before); the per-entry checks (filename, source, url, cuda) run on every entry
    parsed. ``keep`` (only with ``validate=False``: content known whole and sound) parses just the
    entries whose filename it keeps, e.g. target.TagFilter; the index is then a ``subset``."""
    if validate:
        if keep is not None:
            raise ValueError("keep= is for content validated before (validate=False)")
        validate_document(doc, origin)
    for name, raw in doc["sources"].items():
        if raw.get("url") is not None:
            check_template(raw["url"], f"{origin}: source {name!r}")
    sources = {
        name: SourceInfo(
            name=name,
            kind=raw["kind"],
            rank=int(raw["rank"]),
            community=bool(raw["community"]),
            url=raw.get("url"),
            title=raw.get("title"),
            raw=raw,
        )
        for name, raw in doc["sources"].items()
    }
    entries = []
    seen: set[tuple[str, str, str]] = set()
    newest = newest_releases(doc["wheels"], sources)  # of the whole document, also for a subset
    for i, raw in enumerate(doc["wheels"]):
        if keep is not None and not keep(raw["filename"]):
            continue
        entry = _entry(raw, sources, lambda: f"{origin}: entry {i} ({raw['filename']})", newest)  # noqa: B023
        key = (  # one repository's tag is not another's: kingbri1 and bdashore3 both have a v2.8.3
            entry.source,
            entry.filename,
            entry.url_or_template if entry.tag is None else f"{entry.tag}/{entry.filename}",
        )
        if key in seen:
            raise WheelIndexError(
                f"{origin}: entry {i} ({entry.filename}): duplicate of an earlier entry ({entry.url})"
            )
        seen.add(key)
        entries.append(entry)
    return WheelIndex(
        origin=origin,
        sources=sources,
        entries=tuple(entries),
        built_from=doc.get("built_from"),
        generated=doc.get("generated"),
        inputs=tuple(doc.get("inputs") or ()),
        subset=keep is not None,
    )


def entry_for(index: WheelIndex, ref: WheelRef) -> IndexEntry:
    """The index's entry for a planned wheel (the same URL, else the same file name); for a wheel the index
    does not list (a local build, a plan made with another index) one that holds only what its name says,
    so that the selector's rules judge it by that alone."""
    same = [e for e in index.entries if e.filename == ref.filename]
    found = next((e for e in same if e.url == ref.url), same[0] if same else None)
    if found is not None:
        return found
    src = SourceInfo(ref.source, "plan", 0, ref.source.startswith("community:"), None)
    url = ref.url.replace("{", "%7B").replace("}", "%7D")  # a URL, not a template
    raw = {"filename": ref.filename, "source": src.name, "evidence": "", "sha256": ref.sha256, "url": url}
    return _entry(raw, {src.name: src}, lambda: f"wheel {ref.filename}", {})


def _spec(raw: dict[str, Any], key: str, where: str) -> SpecifierSet | None:
    if key not in raw:
        return None
    try:
        return SpecifierSet(raw[key])
    except InvalidSpecifier:
        raise WheelIndexError(f"{where}: field {key!r}: {raw[key]!r} is not a version specifier") from None


@cache
def _public_version(text: str) -> Version:
    return Version(text)


def _unreleased(
    version: Version, filename: str, src: SourceInfo, newest: Mapping[tuple[str, int], Version]
) -> Version | None:
    if not src.community or not newest:
        return None
    released = newest.get((_dist_key(filename), version.major))
    return released if released is not None and version > released else None


@cache
def _release(tag: str) -> Version | None:
    try:
        return Version(tag.lstrip("v").split("-")[0])
    except InvalidVersion:
        return None


@cache
def _mm(text: str) -> tuple[int, int] | None:
    return major_minor(text)


def _dist_key(filename: str) -> str:
    """A wheel's distribution as newest_releases and _unreleased key it: the filename's first field."""
    return filename.partition("-")[0].lower()


def newest_releases(
    wheels: Iterable[Mapping[str, Any]], sources: Mapping[str, SourceInfo]
) -> dict[tuple[str, int], Version]:
    """The newest version each package's own publishers (the sources that are not community ones) have
    wheels of, by the filename's distribution name. A community build of a newer version is a snapshot of
    code no release has (wildminder's "2.8.4+d20260328" while flash-attention's newest is 2.8.3.post1)."""
    texts: set[tuple[str, str]] = set()
    for raw in wheels:
        src = sources.get(raw["source"])
        if src is None or src.community:
            continue
        rest = raw["filename"].partition("-")[2]
        texts.add((_dist_key(raw["filename"]), rest.partition("-")[0].partition("+")[0]))
    out: dict[tuple[str, int], Version] = {}
    for dist, text in texts:
        v = parse_version(text)
        if v is not None:  # per major version: flash_attn 3.0.0b1 (an FA3 name) is no newer FA2
            key = (dist, v.major)
            out[key] = max(v, out.get(key, v))
    return out


def release_torch(doc: Any) -> dict[Version, tuple[int, int]]:
    """The newest torch (major, minor) each FlashAttention-2 release has wheels for from its own publishers
    (the sources of ``doc`` that are not community rebuilds: its release page, as its build matrix claims
    or as listed), by release (its .postN rebuilds count as it: 2.7.4.post1 is 2.7.4). A community build of
    an old release for a newer torch says nothing of which torch the release's sources were written for.
    ``doc`` is a parsed index document (the bundled, refreshed or a user's), read here without validation:
    what is not an entry is skipped."""
    sources = doc.get("sources") if isinstance(doc, Mapping) else None
    wheels = doc.get("wheels") if isinstance(doc, Mapping) else None
    if not isinstance(sources, Mapping) or not isinstance(wheels, list):
        return {}
    own = {n for n, src in sources.items() if isinstance(src, Mapping) and src.get("community") is False}
    out: dict[Version, tuple[int, int]] = {}
    for raw in wheels:
        if (
            not isinstance(raw, Mapping)
            or raw.get("source") not in own
            or not isinstance(raw.get("filename"), str)
        ):
            continue
        try:
            name = parse_wheel_name(raw["filename"])
        except WheelNameError:
            continue
        if name.variant != "fa2" or name.torch is None:
            continue
        release = Version(name.public_version.base_version)
        out[release] = max(name.torch, out.get(release, name.torch))
    return out


def _entry(
    raw: dict[str, Any],
    sources: Mapping[str, SourceInfo],
    where: Callable[[], str],
    newest: Mapping[tuple[str, int], Version],
) -> IndexEntry:
    try:
        name = parse_wheel_name(raw["filename"])
    except WheelNameError as exc:
        raise WheelIndexError(f"{where()}: {exc}") from None
    src = sources.get(raw["source"])
    if src is None:
        raise WheelIndexError(f"{where()}: source {raw['source']!r} is not in the index's 'sources' table")
    tag = raw.get("tag")
    url = raw.get("url")
    if url is None:
        if src.url is None or (tag is None and "{tag}" in src.url):
            raise WheelIndexError(
                f"{where()}: no 'url', and source {src.name!r} has no URL template to build one from"
            )
        url = src.url
    elif "{" in url or "}" in url:
        check_template(url, where(), tag, has_tag=False)
    cuda = raw.get("cuda")
    cuda_mm: tuple[int, int | None] | None = name.cuda
    if cuda is not None:
        mm = _mm(cuda)
        cuda_mm = None if mm is None else (mm[0], mm[1] if "." in cuda else None)
        if cuda_mm is not None and name.cuda is not None and name.cuda[0] != cuda_mm[0]:
            raise WheelIndexError(
                f"{where()}: field 'cuda' {cuda!r} contradicts the filename's CUDA {name.cuda_text}"
            )
    glibc = _mm(raw["glibc"]) if "glibc" in raw else name.min_glibc
    archs = raw.get("archs")
    version = _public_version(name.version.public)
    return IndexEntry(
        name=name,
        source=src.name,
        evidence=raw["evidence"],
        sha256=raw["sha256"],
        url_or_template=url,
        tag=tag,
        cuda=cuda,
        abi=raw.get("abi"),
        glibc=glibc,
        archs=None if archs is None else tuple(archs),
        torch_spec=_spec(raw, "torch", where()) if "torch" in raw else None,
        requires_python=_spec(raw, "requires_python", where()) if "requires_python" in raw else None,
        yanked=bool(raw.get("yanked", False)),
        confidence=raw.get("confidence"),
        inferred=frozenset(raw["inferred"]) if "inferred" in raw else frozenset(),
        torch_build=raw.get("torch_build"),
        claim=bool(raw.get("claim", False)),
        superseded_by=raw.get("superseded_by"),
        alt_tags=tuple(raw.get("alt_tags", ())),
        rank=src.rank,
        community=src.community,
        unreleased=_unreleased(version, raw["filename"], src, newest),
        version=version,
        release=_release(tag) if tag else None,
        cuda_mm=cuda_mm,
    )
