"""Run one fetch in a separate process (for tests that kill it, limit its file size or run two at once).

usage: python fetch_driver.py CACHE_ROOT URL FILENAME VERSION [SHA256|-]
Prints one JSON line: {"ok": true, "origin": ..., "path": ...} or {"ok": false, "error": ..., "type": ...}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions, obtain
from flashdoctor.actions.net.download import DownloadPolicy
from flashdoctor.model.plan import WheelRef


def main() -> int:
    root, url, filename, version, sha = sys.argv[1:6]
    ref = WheelRef(
        filename=filename, url=url, sha256=None if sha == "-" else sha, source="official", version=version
    )
    opts = FetchOptions(
        cache=WheelCache(Path(root)), policy=DownloadPolicy(read_timeout=5, retries=2, backoff=0.05)
    )
    try:
        art = obtain(ref, opts, {}, "flash-attn")
    except Exception as exc:  # report, the test decides
        print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        return 4
    print(json.dumps({"ok": True, "origin": art.origin, "path": str(art.path), "sha256": art.sha256}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
