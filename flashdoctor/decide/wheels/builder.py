"""Build wheels_index.json: from the stored listing files, or from what the live sources return.

Both paths produce *listing-shaped rows* (the fields of the wheel dataset's files: ``source``,
``filename``, ``url``, ``release_tag``, ``sha256``, ``evidence``, and what is known about the build)
and run them through one function, :func:`entry_from_row`, so that the committed index and a live one
apply the same rules (flashdoctor.decide.wheels.derive). :func:`refresh` replaces the entries of some
sources in an existing index and keeps every other entry as it is.

Nothing here touches the network: the wheel source kinds (flashdoctor.actions.net.sources, one module
per kind) fetch and turn what their publishers answer into rows; this module shapes the index.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flashdoctor import knowledge
from flashdoctor.decide.wheels import digests
from flashdoctor.decide.wheels.derive import (
    FA3_ARCHS,
    derive_abi,
    fa2_archs,
    is_claim,
    never_built,
    official_cuda_build,
    official_glibc,
    torch_build_of,
)
from flashdoctor.decide.wheels.index import INDEX_SCHEMA_ID, index_from_document, render_url
from flashdoctor.decide.wheels.parse import WheelNameError, parse_wheel_name
from flashdoctor.model.verification import is_sha256

LISTING_FILES = ("wheels_official.json", "wheels_pytorch_index.json", "wheels_community.json")


class ListingError(ValueError):
    """A listing file that cannot be read."""


def wheel_sources() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = knowledge.load_data("wheel_sources")["sources"]
    return data


def _cuda_from_token(token: str | None) -> str | None:
    """ "126" -> "12.6"; "12" -> None (major only says nothing about the toolkit's minor)."""
    if not token or len(token) < 3 or not token.isdigit():
        return None
    return f"{token[:-1]}.{token[-1]}"


def _cuda_from_index_tag(tag: str | None) -> str | None:
    """ "cu126" -> "12.6" (the torch wheel index a build used)."""
    if not tag or not tag.startswith("cu"):
        return None
    return _cuda_from_token(tag[2:])


def entry_from_row(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One index entry from a listing-shaped row; None for a file that is not a FlashAttention wheel."""
    try:
        name = parse_wheel_name(row["filename"])
    except WheelNameError:
        return None
    source = row["source"]
    entry: dict[str, Any] = {
        "filename": name.filename,
        "source": source,
        "evidence": row["evidence"],
        "sha256": row.get("sha256") or None,
    }
    if row.get("release_tag"):
        entry["tag"] = row["release_tag"]
    if row.get("url"):
        entry["url"] = row["url"]  # dropped again by assemble() when the source's template gives it
    inferred: list[str] = []
    cuda: str | None
    if name.variant == "fa4":
        cuda = None
    elif source == "official":
        cuda, inf = official_cuda_build(name, row.get("cuda_build"))
        if inf:
            inferred.append("cuda")
    elif source == "pytorch-index":
        cuda = row.get("cuda_version") or _cuda_from_token(row.get("cuda"))
    else:
        cuda = row.get("cuda_build") or row.get("cuda_version") or _cuda_from_token(row.get("cuda"))
    if cuda:
        entry["cuda"] = cuda

    # C++ ABI
    torch_cuda = _cuda_from_index_tag(row.get("torch_cuda_index_used")) if source == "official" else cuda
    abi, abi_inferred = derive_abi(name, source, torch_cuda, row.get("cxx11abi_inferred"))
    if abi is not None:
        entry["abi"] = abi
        if abi_inferred:
            inferred.append("abi")

    # glibc: official linux_* wheels need the glibc of the runner that built them.
    if source == "official" and any(p.startswith("linux_") for p in name.platforms):
        glibc, g_inf = official_glibc(
            name.public_version, row.get("built_on"), row.get("in_tag_matrix") is False
        )
        entry["glibc"] = glibc
        if g_inf:
            inferred.append("glibc")

    # GPU code
    if name.variant == "fa2":
        major = name.cuda[0] if name.cuda else None
        archs, a_inf = fa2_archs(name.public_version, cuda, major)
        entry["archs"] = list(archs)
        # inferred when the CUDA it follows from is, and always for community builds (their arch lists are
        # not published: the default is assumed)
        if a_inf or "cuda" in inferred or source != "official":
            inferred.append("archs")
    elif name.variant == "fa3":
        entry["archs"] = list(FA3_ARCHS)
        inferred.append("archs")

    # torch range of wheels whose name has none (FA3 on the LibTorch stable ABI)
    if name.variant == "fa3" and name.torch is None:
        stable = knowledge.variant_info("fa3").raw["stable_abi_torch"]
        entry["torch"] = f">={stable}"
    if row.get("requires_python"):
        entry["requires_python"] = row["requires_python"]
    if row.get("yanked"):
        entry["yanked"] = True
    if row.get("confidence") in ("high", "medium", "low"):
        entry["confidence"] = row["confidence"]
    if inferred:
        entry["inferred"] = inferred
    if row.get("alt_release_tags"):
        entry["alt_tags"] = list(row["alt_release_tags"])
    # the torch it was compiled against (decide.wheels.torchbuild), for wheels built against one
    built = torch_build_of(name, row.get("torch_build_version")) if name.torch is not None else None
    if built:
        entry["torch_build"] = built
    if is_claim(row):
        entry["claim"] = True
        if row.get("release_superseded_within_24h_by"):
            entry["superseded_by"] = row["release_superseded_within_24h_by"]
    return entry


# -- the listing files ------------------------------------------------------------------------------
def rows_from_listings(
    directory: str | Path, extra: Sequence[str | Path] = (), as_of: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, inputs) from the dataset's listing files in ``directory`` and the ``extra`` listing files
    (the same row shape). ``as_of``: the day the listings' data were gathered (each input's
    ``fetched``, from which the index's age is told)."""
    d = Path(directory)
    if not d.is_dir():
        raise ListingError(f"{d} is not a directory")
    rows: list[dict[str, Any]] = []
    inputs = []
    found = False
    for p in [*(d / f for f in LISTING_FILES), *(Path(x) for x in extra)]:
        in_dir = p.parent == d and p.name in LISTING_FILES
        if not p.is_file():
            if not in_dir:
                raise ListingError(f"{p} is not a file")
            continue
        found = found or in_dir
        data = p.read_bytes()
        try:
            listing = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ListingError(f"{p} is not valid JSON: {exc}") from None
        if not isinstance(listing, list):
            raise ListingError(f"{p}: expected a list of wheel rows")
        for i, row in enumerate(listing):
            missing = [
                k for k in ("source", "filename", "evidence") if not isinstance(row, dict) or k not in row
            ]
            if missing:
                raise ListingError(f"{p}: row {i} lacks {', '.join(missing)}")
        rows.extend(listing)
        record: dict[str, Any] = {
            "name": p.name,
            "entries": len(listing),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if as_of:
            record["fetched"] = as_of
        record["sources"] = sorted({str(r["source"]) for r in listing})
        inputs.append(record)
    if not found:
        raise ListingError(f"{d} holds none of {', '.join(LISTING_FILES)}")
    return rows, inputs


# -- a release asset listing ------------------------------------------------------------------------
def apply_release_assets(
    rows: Iterable[Mapping[str, Any]], listing: Mapping[str, Any], dropped: dict[str, int]
) -> list[dict[str, Any]]:
    """``rows`` checked against what each release carried on ``listing["as_of"]`` (a listing made from
    the Releases API: ``{"source", "cite", "as_of", "releases": {tag: [filename, ...]}}``). A row of the
    listing's source whose release was tagged by then is seen published when its file is listed (the
    citation joins its evidence); a claimed row (derived from the build matrix only) whose file the
    release did not carry was never published: left out and counted by release in ``dropped``. Rows of
    other sources and of later releases pass unchanged."""
    releases: Mapping[str, Sequence[str]] = listing["releases"]
    as_of = str(listing["as_of"])
    cite = f"seen_listed:{listing['cite']} ({as_of})"
    listed = {tag: {f.lower() for f in files} for tag, files in releases.items()}
    out: list[dict[str, Any]] = []
    for row in rows:
        tag = row.get("release_tag")
        tagged = str(row.get("tag_date") or "")[:10]
        if row.get("source") != listing["source"] or tag not in listed or not tagged or tagged > as_of:
            out.append(dict(row))
            continue
        if str(row["filename"]).lower() in listed[tag]:
            seen = dict(row)
            seen["evidence"] = f"{row['evidence']}; {cite}"
            seen["evidence_all"] = [*(row.get("evidence_all") or [row["evidence"]]), cite]
            kind = str(row.get("evidence_kind") or "")
            if is_claim(row):
                seen["evidence_kind"] = f"{kind}+seen_listed"
            out.append(seen)
        elif is_claim(row):
            dropped[str(tag)] = dropped.get(str(tag), 0) + 1
        else:
            out.append(dict(row))  # seen elsewhere (added to the release later, or another copy)
    return out


# -- assembling -------------------------------------------------------------------------------------
def _sort_key(e: Mapping[str, Any]) -> tuple[Any, ...]:
    name = parse_wheel_name(e["filename"])
    return (
        name.dist,
        e["source"] != "official",
        e["source"],
        name.public_version,
        e.get("tag") or "",
        e["filename"],
        e.get("cuda") or "",
    )


def _check_published(entry: Mapping[str, Any]) -> None:
    """The fields a publisher's page or document fills with its own text (the file's URL and digest), as
    the index's schema takes them; else ListingError naming the file and where it was read (its
    evidence), so that a bad link or digest is the publisher's, not "entry N" of an index."""
    url, sha = entry.get("url"), entry["sha256"]
    bad = None
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        bad = f"the URL {str(url)[:200]!r} is not http(s)"
    elif sha is not None and not (isinstance(sha, str) and is_sha256(sha)):
        bad = f"the digest {str(sha)[:80]!r} is not a sha256 (64 hex digits)"
    if bad:
        raise ListingError(f"{entry['evidence']}: {entry['filename']}: {bad}")


def _entries(
    rows: Iterable[Mapping[str, Any]],
    srcs: Mapping[str, Mapping[str, Any]],
    dropped: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Entries made from ``rows``: URLs left out where the source's template rebuilds them, duplicates
    dropped (a copy with a digest gives it to one without; two different digests for one file raise
    DigestConflict, listing them all), claimed wheels whose release's CI could not have run left out (counted by release in
    ``dropped``); not sorted."""
    wheels: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    twice: list[str] = []
    for row in rows:
        if row["source"] not in srcs:
            raise ListingError(f"row {row.get('filename')!r}: unknown source {row['source']!r}")
        if never_built(row) is not None:
            if dropped is not None:
                dropped[str(row.get("release_tag"))] = dropped.get(str(row.get("release_tag")), 0) + 1
            continue
        entry = entry_from_row(row)
        if entry is None:
            continue
        _check_published(entry)
        template = srcs[entry["source"]].get("url")
        if template and "tag" in entry and "url" in entry:
            fn = entry["filename"]
            if render_url(template, entry["tag"], fn) == entry["url"]:
                del entry["url"]
        if "url" not in entry and not (template and "tag" in entry):
            raise ListingError(f"row {entry['filename']!r}: no url and no release tag to build one")
        key = (entry["source"], entry["filename"], entry.get("url") or entry.get("tag") or "")
        first = seen.get(key)
        if first is not None:
            if first["sha256"] and entry["sha256"] and first["sha256"] != entry["sha256"]:
                where = entry.get("url") or f"{entry['filename']} of {entry.get('tag')}"
                twice.append(f"{where} ({entry['source']}): {first['sha256']} and {entry['sha256']}")
            elif entry["sha256"] and not first["sha256"]:
                first["sha256"], first["evidence"] = entry["sha256"], entry["evidence"]
            continue
        seen[key] = entry
        wheels.append(entry)
    if twice:
        raise digests.DigestConflict(
            f"{len(twice)} file(s) listed twice with different digests (the index never guesses between "
            "them):\n  " + "\n  ".join(twice)
        )
    return wheels


def assemble(
    rows: Iterable[Mapping[str, Any]],
    built_from: str,
    inputs: list[dict[str, Any]],
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    published: Mapping[str, digests.Published] | None = None,
    generated: str | None = None,
    stats: digests.DigestStats | None = None,
    assets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The index document: entries made from ``rows`` (and, with ``published``, from the files of
    configured sources only the published digests list), URLs left out where the source's template
    rebuilds them, duplicates dropped, claimed wheels never published left out (their release's CI could
    not have run, or, with ``assets``, a release asset listing shows the release did not carry them),
    published digests attached by URL, sorted, dated ``generated`` (default: today) and validated by
    loading it."""
    srcs = dict(sources or wheel_sources())
    dropped: dict[str, int] = {}
    kept = [dict(r) for r in rows] if assets is None else apply_release_assets(rows, assets, dropped)
    stats = stats if stats is not None else digests.DigestStats()
    if published is not None:
        kept += digests.digest_rows(published, kept, srcs, stats)
    wheels = _entries(kept, srcs, dropped)
    if published is not None:
        digests.attach(wheels, published, srcs, stats)
    wheels.sort(key=_sort_key)
    doc = {
        "schema": INDEX_SCHEMA_ID,
        "about": "Prebuilt FlashAttention wheels and where each fact about them comes from. Generated by "
        "scripts/update_wheels_index.py; do not edit by hand. Field meanings: README 'Wheel index'.",
        "built_from": built_from,
        "generated": generated or today(),
        "inputs": inputs,
        "sources": srcs,
        "wheels": wheels,
    }
    if dropped:
        doc["dropped"] = dict(sorted(dropped.items()))
    index_from_document(doc, origin="generated index")  # refuse to write an index the loader rejects
    return doc


def refresh(
    doc: Mapping[str, Any],
    names: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    inputs: list[dict[str, Any]],
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    generated: str | None = None,
) -> dict[str, Any]:
    """``doc`` with the entries of the sources ``names`` replaced by entries made from ``rows`` (their
    live listing), which keep what ``doc`` knew of the same files (digests, build torch:
    digests.carry_known); every other entry, and the order of the entries kept, stay exactly as they are.
    The refreshed sources' configuration is taken from ``sources`` (default: data/wheel_sources.json);
    an input of the same name is replaced."""
    current = dict(sources or wheel_sources())
    unknown = [n for n in names if n not in current]
    if unknown:
        raise ListingError(f"unknown source(s) {', '.join(unknown)} (known: {', '.join(current)})")
    srcs = dict(doc.get("sources") or {})
    for n in names:
        srcs[n] = current[n]
    rows = list(rows)
    stray = sorted({str(r.get("source")) for r in rows} - set(names))
    if stray:
        raise ListingError(f"rows of source(s) {', '.join(stray)} given to refresh {', '.join(names)}")
    kept = [w for w in doc.get("wheels") or () if w.get("source") not in names]
    fresh_wheels = _entries(rows, srcs)
    digests.carry_known(fresh_wheels, doc, srcs)
    wheels = kept + fresh_wheels
    wheels.sort(key=_sort_key)  # stable: the kept entries were in this order already
    fresh = {i["name"] for i in inputs}
    retired = set(names)  # an input all of whose sources were read again is history
    out = dict(doc)
    out["inputs"] = [
        i
        for i in doc.get("inputs") or ()
        if i.get("name") not in fresh and not (i.get("sources") and set(i["sources"]) <= retired)
    ] + list(inputs)
    out["sources"] = srcs
    out["wheels"] = wheels
    out["generated"] = generated or today()
    index_from_document(out, origin="refreshed index")
    return out


def dump_index(doc: Mapping[str, Any]) -> str:
    """Compact and diff-friendly: the header indented, one wheel per line."""
    head = {k: v for k, v in doc.items() if k != "wheels"}
    text = json.dumps(head, indent=1, ensure_ascii=False)
    assert text.endswith("}")
    lines = [json.dumps(w, separators=(",", ":"), ensure_ascii=False) for w in doc["wheels"]]
    body = ",\n".join(lines)
    return text[:-1].rstrip() + ',\n "wheels": [\n' + body + "\n ]\n}\n"


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


__all__ = [
    "LISTING_FILES",
    "ListingError",
    "assemble",
    "dump_index",
    "entry_from_row",
    "refresh",
    "rows_from_listings",
    "wheel_sources",
]
