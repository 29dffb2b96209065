#!/usr/bin/env python3
"""Build wheels_index.json, the index of prebuilt FlashAttention wheels flashdoctor selects from.

Three ways:

  # from the live sources (GitHub Releases API, the PyTorch index, PyPI); GITHUB_TOKEN is honoured
  python scripts/update_wheels_index.py

  # from the wheel dataset's listing files (wheels_official.json, wheels_pytorch_index.json,
  # wheels_community.json in DIR) and the supplements in scripts/data/ (wheels_community_supplement.json,
  # wheels_community_opt_in.json, wheels_official_pre25.json), with the published digests of scripts/data/published_digests.json merged
  # in by URL and the release asset listing scripts/data/release_assets.json applied (claimed wheels a
  # release did not carry are left out); FA4 (not in the listings) still comes from PyPI unless --no-pypi.
  # --as-of DATE: the day the listings' data were gathered.
  python scripts/update_wheels_index.py --from-listings DIR --as-of 2026-12-05

  # refresh some sources live in an existing index (--output), keeping every other entry as it is
  python scripts/update_wheels_index.py --refresh pypi

Every source is read by its kind (flashdoctor.actions.net.sources.KINDS) through flashdoctor's one HTTP
client; an ``opt_in`` source (data/wheel_sources.json) only with --refresh NAME. The committed
wheels_index.json is built the second way. The output is validated against
flashdoctor/schemas/wheels-index.schema.json before it is written. Users refresh their own copy with
`flashdoctor wheels --refresh` (flashdoctor.actions.wheel_index), which applies the same rules.
Exit codes: 0 written, 2 bad input (a digest disagreement included), 4 a fetch failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flashdoctor.actions.cache import atomic_write_bytes
from flashdoctor.actions.net.http import TOKEN_HOSTS, Http, HttpPolicy
from flashdoctor.actions.net.sources import (
    GITHUB_API,
    PYPI,
    PYTORCH_WHL,
    SourceContext,
    live_rows,
)
from flashdoctor.actions.net.urls import host_entry
from flashdoctor.decide.wheels import builder, digests
from flashdoctor.errors import FlashdoctorError, NetworkError

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE.parent / "wheels_index.json"
# Listing rows the dataset lacks: community wheels (GitHub releases; the opt-in sources — Hugging Face
# repositories, Astral's index — in a file of their own), the official releases before v2.5.0.
SUPPLEMENTS = (
    HERE / "data" / "wheels_community_supplement.json",
    HERE / "data" / "wheels_community_opt_in.json",
    HERE / "data" / "wheels_official_pre25.json",
)
DIGESTS = HERE / "data" / "published_digests.json"
ASSETS = HERE / "data" / "release_assets.json"


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-listings", metavar="DIR", help="build from the listing files in DIR")
    ap.add_argument(
        "--refresh",
        metavar="SOURCE",
        action="append",
        default=[],
        help="re-read only this source (repeatable) and keep every other entry of --output as it is",
    )
    ap.add_argument("--no-pypi", action="store_true", help="leave FA4 (PyPI) out")
    ap.add_argument(
        "--supplement",
        metavar="FILE",
        action="append",
        default=None,
        help="another listing file read with --from-listings (repeatable; 'none' for none; default: "
        + ", ".join(p.name for p in SUPPLEMENTS)
        + ")",
    )
    ap.add_argument(
        "--digests",
        metavar="FILE",
        default=str(DIGESTS),
        help="published digests merged in by URL ('none' to skip; default: %(default)s)",
    )
    ap.add_argument(
        "--assets",
        metavar="FILE",
        default=str(ASSETS),
        help="a release asset listing: claimed wheels a release did not carry are left out ('none' to "
        "skip; default: %(default)s)",
    )
    ap.add_argument("--as-of", metavar="DATE", help="the day the listings' data were gathered (YYYY-MM-DD)")
    ap.add_argument(
        "--output", "-o", default=str(DEFAULT_OUTPUT), help="where to write (default: %(default)s)"
    )
    ap.add_argument("--github-api", default=GITHUB_API, help="GitHub API base URL (default: %(default)s)")
    ap.add_argument("--pypi", default=PYPI, help="PyPI base URL (default: %(default)s)")
    ap.add_argument(
        "--pytorch-index", default=PYTORCH_WHL, help="PyTorch index base URL (default: %(default)s)"
    )
    ap.add_argument(
        "--max-pages", type=int, default=50, help="GitHub pages of releases per repository at most"
    )
    args = ap.parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    if args.refresh and args.from_listings:
        print("update_wheels_index: error: --refresh and --from-listings exclude each other", file=sys.stderr)
        return 2
    rewrites = {GITHUB_API: args.github_api, PYPI: args.pypi, PYTORCH_WHL: args.pytorch_index}
    # The token goes to the GitHub API host (the real one, or the one --github-api names) and no other.
    policy = HttpPolicy(token_hosts=TOKEN_HOSTS | {host_entry(args.github_api)}, allow_http=False)
    http = Http(policy, env)
    ctx = SourceContext(http, {k: v for k, v in rewrites.items() if k != v}, max_pages=args.max_pages)
    stats = digests.DigestStats()
    try:
        doc = build(args, ctx, stats)
    except (builder.ListingError, ValueError) as exc:
        print(f"update_wheels_index: error: {exc}", file=sys.stderr)
        return 2
    except FlashdoctorError as exc:
        print(f"update_wheels_index: error: {http.redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.return_code
    finally:
        http.close()
    text = builder.dump_index(doc)
    out = Path(args.output)
    atomic_write_bytes(out, text.encode("utf-8"))
    counts: dict[str, int] = {}
    for w in doc["wheels"]:
        counts[w["source"]] = counts.get(w["source"], 0) + 1
    print(f"wrote {out} ({len(doc['wheels'])} wheels, {len(text.encode()) / 1e6:.2f} MB)")
    for src, n in sorted(counts.items()):
        print(f"  {src}: {n}")
    with_sha = sum(1 for w in doc["wheels"] if w.get("sha256"))
    print(f"  with a sha256: {with_sha}")
    if args.from_listings and args.digests != "none":
        print(
            f"  published digests: {stats.before} entries had a sha256 from the listings and PyPI; "
            f"{stats.added} took one, {stats.confirmed} cross-checked, {stats.new_rows} files added, "
            f"{stats.unmatched} digests of other hosts or forks left out"
        )
    for tag, n in (doc.get("dropped") or {}).items():
        print(f"  dropped {n} claimed wheels of {tag}: never published")
    return 0


def _live(ctx: SourceContext, names: list[str], fetched: str) -> tuple[list[Any], list[Any]]:
    sources = builder.wheel_sources()
    try:
        return live_rows(ctx, names, fetched, sources)
    except NetworkError as exc:
        pypi = [n for n in names if sources[n]["kind"] == "pypi-json"]
        hint = "pass --no-pypi to build without FA4" if pypi and "pypi" in exc.message.lower() else exc.hint
        raise NetworkError(exc.message, hint=hint) from None


def build(args: argparse.Namespace, ctx: SourceContext, stats: digests.DigestStats) -> dict[str, Any]:
    sources = builder.wheel_sources()
    fetched = builder.today()
    if args.refresh:
        try:
            doc = json.loads(Path(args.output).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise builder.ListingError(f"cannot read the index to refresh, {args.output}: {exc}") from None
        unknown = [n for n in args.refresh if n not in sources]
        if unknown:
            raise builder.ListingError(
                f"unknown source(s) {', '.join(unknown)} (known: {', '.join(sources)})"
            )
        rows, inputs = _live(ctx, list(args.refresh), fetched)
        return builder.refresh(doc, args.refresh, rows, inputs, sources)
    published = None
    assets = None
    if args.from_listings:
        extra = args.supplement if args.supplement is not None else [str(p) for p in SUPPLEMENTS]
        extra = [x for x in extra if x != "none"]
        rows, inputs = builder.rows_from_listings(args.from_listings, extra, args.as_of)
        built_from = "listings"
        names = [n for n, s in sources.items() if s["kind"] == "pypi-json"]  # FA4 is not in the listings
        if args.digests != "none":
            data = Path(args.digests).read_bytes()
            published = digests.published_by_url(json.loads(data))
            inputs.append(
                {
                    "name": Path(args.digests).name,
                    "entries": len(json.loads(data).get("digests") or ()),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        if args.assets != "none":
            data = Path(args.assets).read_bytes()
            assets = json.loads(data)
            inputs.append(
                {
                    "name": Path(args.assets).name,
                    "entries": sum(len(v) for v in assets["releases"].values()),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    else:
        rows, inputs = [], []
        built_from = "live"
        names = [n for n, s in sources.items() if not s.get("opt_in")]
    if args.no_pypi:
        names = [n for n in names if sources[n]["kind"] != "pypi-json"]
    more_rows, more_inputs = _live(ctx, names, fetched)
    return builder.assemble(
        rows + more_rows,
        built_from,
        inputs + more_inputs,
        sources,
        published=published,
        stats=stats,
        assets=assets,
    )


if __name__ == "__main__":
    sys.exit(main())
