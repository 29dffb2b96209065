#!/usr/bin/env python3
"""Build wheels_index.json, the index of prebuilt FlashAttention wheels flashdoctor selects from.

Two ways:

  # from the live sources (GitHub Releases API, the PyTorch index, PyPI); GITHUB_TOKEN is honoured
  python scripts/update_wheels_index.py

  # from the wheel dataset's listing files (wheels_official.json, wheels_pytorch_index.json,
  # wheels_community.json in DIR); FA4 (not in the listings) still comes from PyPI unless --no-pypi
  python scripts/update_wheels_index.py --from-listings DIR

The committed wheels_index.json is built the second way. The output is validated against
flashdoctor/schemas/wheels-index.schema.json before it is written.
Exit codes: 0 written, 2 bad input, 4 a fetch failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flashdoctor.actions.net.sources import GITHUB_API, PYPI, Fetcher
from flashdoctor.decide.wheels import builder
from flashdoctor.errors import FlashdoctorError, NetworkError

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "wheels_index.json"
PYTORCH_WHL = "https://download.pytorch.org/whl"


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-listings", metavar="DIR", help="build from the listing files in DIR")
    ap.add_argument("--no-pypi", action="store_true", help="leave FA4 (PyPI) out")
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
    fetcher = Fetcher(environ=env, github_api=args.github_api, max_pages=args.max_pages)
    try:
        doc = build(args, fetcher)
    except builder.ListingError as exc:
        print(f"update_wheels_index: error: {exc}", file=sys.stderr)
        return 2
    except FlashdoctorError as exc:
        print(f"update_wheels_index: error: {fetcher.redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.return_code
    text = builder.dump_index(doc)
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    counts: dict[str, int] = {}
    for w in doc["wheels"]:
        counts[w["source"]] = counts.get(w["source"], 0) + 1
    print(f"wrote {out} ({len(doc['wheels'])} wheels, {len(text.encode()) / 1e6:.2f} MB)")
    for src, n in sorted(counts.items()):
        print(f"  {src}: {n}")
    return 0


def build(args: argparse.Namespace, fetcher: Fetcher) -> dict:  # type: ignore[type-arg]
    sources = builder.wheel_sources()
    fetched = builder.today()
    rows: list[dict] = []  # type: ignore[type-arg]
    inputs: list[dict] = []  # type: ignore[type-arg]
    if args.from_listings:
        rows, inputs = builder.rows_from_listings(args.from_listings)
        built_from = "listings"
    else:
        built_from = "live"
        for name, src in sources.items():
            if src["kind"] == "github-releases":
                releases = fetcher.github_releases(src["repo"])
                got = builder.rows_from_github_releases(name, src["repo"], releases, fetched)
                rows.extend(got)
                inputs.append({"name": f"github:{src['repo']}", "entries": len(got), "fetched": fetched})
            elif src["kind"] == "simple-index":
                for cuda, url in src["indexes"].items():
                    url = url.replace(PYTORCH_WHL, args.pytorch_index.rstrip("/"), 1)
                    page, files = fetcher.simple_project(url, src["project"])
                    got = builder.rows_from_simple_index(cuda, page, files, fetched)
                    rows.extend(got)
                    inputs.append({"name": f"simple:{page}", "entries": len(got), "fetched": fetched})
    if not args.no_pypi:
        for src in sources.values():
            if src["kind"] != "pypi-json":
                continue
            try:
                files = fetcher.pypi_files(src["project"], base=args.pypi)
            except NetworkError as exc:
                raise NetworkError(exc.message, hint="pass --no-pypi to build without FA4") from None
            got = builder.rows_from_pypi(src["project"], files, fetched)
            rows.extend(got)
            inputs.append({"name": f"pypi:{src['project']}", "entries": len(got), "fetched": fetched})
    return builder.assemble(rows, built_from, inputs, sources)


if __name__ == "__main__":
    sys.exit(main())
