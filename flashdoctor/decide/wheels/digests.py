"""Static digests: published sha256 digests merged into the index when it is built (the document of
scripts/data/published_digests.json, ``flashdoctor/published-digests/1``), and what an index knew carried
into the next one on a refresh.

A digest belongs to a file at a URL, never to a filename: the same name on another host, release or
PyTorch index path may be another file (mjun0812 rebuilds a name in later releases; a fork re-uploads
official names). So a digest is matched by its URL (and the record's ``other_urls``): compared unquoted
and lower-case, since uv writes ``cxx11abifalse`` lower-case in uv.lock and GitHub paths ignore case.
Two sources that give different digests for one URL, or a digest that disagrees with the one an index
entry already has, stop the build with every disagreement listed: the index never guesses between them.
Each digest an entry takes names where it came from in the entry's ``evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from flashdoctor.decide.wheels.index import render_url
from flashdoctor.decide.wheels.parse import WheelNameError, parse_wheel_name
from flashdoctor.model.verification import is_sha256

DIGESTS_SCHEMA = "flashdoctor/published-digests/1"
MAX_CITED = 2  # citations written into an entry's evidence (the rest are counted)


class DigestConflict(ValueError):
    """Two sources disagree on the digest of one file."""


@dataclass
class Published:
    sha256: str
    filename: str
    url: str
    citations: list[str] = field(default_factory=list)  # "kind where"

    def cited(self) -> str:
        more = len(self.citations) - MAX_CITED
        return "; ".join(self.citations[:MAX_CITED]) + (f" (+{more} more)" if more > 0 else "")


@dataclass
class DigestStats:
    before: int = 0  # entries with a sha256 before the merge
    added: int = 0  # entries that took a published digest
    confirmed: int = 0  # entries whose digest a published one confirmed
    new_rows: int = 0  # files of configured sources that only the digests list
    unmatched: int = 0  # digests of URLs no configured source publishes (forks, mirrors, other hosts)
    after: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def url_key(url: str) -> str:
    """How two URLs of one file compare: unquoted, without fragment, lower-case."""
    return unquote(urldefrag(url)[0]).strip().lower()


def published_by_url(doc: Mapping[str, Any]) -> dict[str, Published]:
    """Every digest of the document by the URL key of each URL it was cited for. Raises DigestConflict
    (listing them all) when two records give one URL different digests."""
    if doc.get("schema") != DIGESTS_SCHEMA:
        raise DigestConflict(f"published digests: schema {doc.get('schema')!r}, expected {DIGESTS_SCHEMA!r}")
    out: dict[str, Published] = {}
    conflicts: list[str] = []
    for i, rec in enumerate(doc.get("digests") or ()):
        sha = str(rec.get("sha256") or "").lower()
        if not is_sha256(sha):
            raise DigestConflict(f"published digests: record {i} ({rec.get('filename')}): not a sha256")
        cites = [f"{s.get('kind')} {s.get('where')}" for s in rec.get("sources") or () if s.get("where")]
        for url in [rec.get("url"), *(rec.get("other_urls") or ())]:
            if not url:
                continue
            key = url_key(url)
            had = out.get(key)
            if had is None:
                out[key] = Published(sha, str(rec.get("filename")), url, list(cites))
            elif had.sha256 != sha:
                conflicts.append(f"{url}: {had.sha256} ({had.cited()}) vs {sha} ({'; '.join(cites)})")
            else:
                had.citations.extend(c for c in cites if c not in had.citations)
    if conflicts:
        raise DigestConflict(
            f"published digests disagree on {len(conflicts)} file(s):\n  " + "\n  ".join(conflicts)
        )
    return out


def _github_sources(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """owner/repo (lower-case) -> source name, for the sources whose files are GitHub release assets."""
    return {str(c["repo"]).lower(): name for name, c in sources.items() if c.get("repo")}


def release_asset(url: str) -> tuple[str, str, str] | None:
    """(owner/repo lower-case, tag, file) of a github.com release asset URL."""
    parts = urlsplit(url)
    if parts.netloc.lower() != "github.com":
        return None
    p = parts.path.split("/")
    if len(p) != 7 or p[3:5] != ["releases", "download"]:
        return None
    return f"{p[1]}/{p[2]}".lower(), unquote(p[5]), unquote(p[6])


HUGGINGFACE_REVISION = "main"  # the branch a Hugging Face source is listed and looked up on


def huggingface_file(base: str, repo: str, url: str) -> str | None:
    """The path in Hugging Face repository ``repo`` (on ``base``, e.g. https://huggingface.co) that ``url``
    downloads (``{base}/{repo}/resolve/main/{path}``), else None."""
    prefix = f"{base.rstrip('/')}/{repo}/resolve/{HUGGINGFACE_REVISION}/"
    if not url.startswith(prefix):
        return None
    path = unquote(urlsplit(url[len(prefix) :]).path)
    return path if path and ".." not in path.split("/") else None


def digest_rows(
    published: Mapping[str, Published],
    rows: Iterable[Mapping[str, Any]],
    sources: Mapping[str, Mapping[str, Any]],
    stats: DigestStats,
) -> list[dict[str, Any]]:
    """Listing rows for files that a configured source published as GitHub release assets (a digest was
    recorded for their release URL), of a distribution the source publishes, that no row lists. An older
    rebuild of a community file the rows already list under a newer release is not a new file of the
    index (its URL is an ``alt_tags`` URL)."""
    repos = _github_sources(sources)
    listed = {url_key(str(r["url"])) for r in rows if r.get("url")}
    names = {(str(r["source"]), str(r["filename"]).lower()) for r in rows}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key, p in published.items():
        asset = release_asset(p.url)
        source = repos.get(asset[0]) if asset else None
        if asset is None or source is None:
            stats.unmatched += 1
            continue
        if key in listed or key in seen:
            continue
        seen.add(key)
        if sources[source].get("community") and (source, p.filename.lower()) in names:
            continue  # an older rebuild
        try:
            dist = parse_wheel_name(p.filename).dist
        except WheelNameError:
            continue
        if dist not in (sources[source].get("packages") or (dist,)):
            continue  # e.g. an FA4 wheel on the FA2 repository's releases: PyPI is FA4's source
        out.append(
            {
                "source": source,
                "filename": p.filename,
                "url": p.url,
                "release_tag": asset[1],
                "sha256": None,  # attach() gives it, citing where it comes from
                "evidence": f"published_digest:{p.cited()}",
                "evidence_kind": "seen_listed",
            }
        )
    stats.new_rows = len(out)
    return out


def _entry_url(e: Mapping[str, Any], sources: Mapping[str, Mapping[str, Any]]) -> str | None:
    if e.get("url"):
        return str(e["url"])
    template = sources.get(str(e["source"]), {}).get("url")
    if template and e.get("tag"):
        return render_url(str(template), str(e["tag"]), str(e["filename"]))
    return None


def attach(
    wheels: list[dict[str, Any]],
    published: Mapping[str, Published],
    sources: Mapping[str, Mapping[str, Any]],
    stats: DigestStats,
) -> None:
    """Give each entry the published digest of its URL (in place), cite it in the entry's evidence, and
    mark the entry seen (a recorded digest proves the file was published). Raises DigestConflict, listing
    them all, where a published digest disagrees with the entry's own."""
    conflicts: list[str] = []
    stats.before = sum(1 for w in wheels if w.get("sha256"))
    for w in wheels:
        url = _entry_url(w, sources)
        p = published.get(url_key(url)) if url else None
        if p is None:
            continue
        if w.get("sha256") and w["sha256"] != p.sha256:
            conflicts.append(f"{url}: the listing says {w['sha256']}, {p.cited()} says {p.sha256}")
            continue
        if w.get("sha256"):
            stats.confirmed += 1
            w["evidence"] = f"{w['evidence']}; sha256 cross-checked with {p.cited()}"
        else:
            stats.added += 1
            w["sha256"] = p.sha256
            w["evidence"] = f"{w['evidence']}; sha256 from {p.cited()}"
        w.pop("claim", None)
        w.pop("superseded_by", None)
    if conflicts:
        raise DigestConflict(
            f"{len(conflicts)} published digest(s) disagree with the index:\n  " + "\n  ".join(conflicts)
        )
    stats.after = sum(1 for w in wheels if w.get("sha256"))


def carry_known(
    wheels: list[dict[str, Any]],
    previous: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, Any]],
) -> int:
    """What the previous index knew about a file that a live listing does not say, carried into the new
    entry of the same URL (in place): its sha256 (GitHub records no digest for assets uploaded before
    mid-2025; the previous index may have one from a published source) and the torch it was built
    against. Raises DigestConflict where the two indexes disagree on a digest. Returns the number of
    digests carried."""
    prev_sources = {**(previous.get("sources") or {}), **sources}
    before: dict[str, Mapping[str, Any]] = {}
    for old in previous.get("wheels") or ():
        url = _entry_url(old, prev_sources)
        if url:
            before[url_key(url)] = old
    stamp = previous.get("generated") or "an earlier date"
    carried = 0
    conflicts: list[str] = []
    for w in wheels:
        url = _entry_url(w, sources)
        old = before.get(url_key(url)) if url else None
        if old is None:
            continue
        if old.get("sha256") and w.get("sha256") and old["sha256"] != w["sha256"]:
            conflicts.append(f"{url}: the publisher now says {w['sha256']}, the index said {old['sha256']}")
        elif old.get("sha256") and not w.get("sha256"):
            w["sha256"] = old["sha256"]
            w["evidence"] = f"{w['evidence']}; sha256 carried from the index of {stamp}"
            carried += 1
        if old.get("torch_build") and not w.get("torch_build"):
            w["torch_build"] = old["torch_build"]
    if conflicts:
        raise DigestConflict(
            f"{len(conflicts)} file(s) changed digest since the index in use (refusing to refresh):\n  "
            + "\n  ".join(conflicts)
        )
    return carried
