"""Refuse a wheel that would overwrite files of other installed distributions (issue "Hostile inputs",
row 9), before anything changes.

The torch guard compares metadata; a flash_attn wheel that also ships ``torch/version.py`` passes it, and
pip would overwrite torch's file (uninstalling flash-attn later deletes it). So the wheel's file list
(its archive: what pip will write, mapped to the target's directories) is compared with the files that
every installed distribution's RECORD lists (read by the target-state script, bounded).

THE RULE: a file the wheel installs may already belong to
  - the variant's own distribution (the version being replaced: backed up and restored as usual), or
  - a distribution of a KNOWN OVERLAP below, for the paths listed there (backed up and restored as usual);
any other owner refuses the wheel, naming each file and its owner.

Known overlaps: flash-attn 2.8.3 ships ``flash_attn/cute/``, which is also flash-attn-4's package (both
ways: installing either over the other).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from packaging.utils import canonicalize_name

KNOWN_OVERLAPS: dict[frozenset[str], tuple[str, ...]] = {
    frozenset({"flash-attn", "flash-attn-4"}): ("flash_attn/cute/",),
}
SHOWN = 5  # files named in the message


def _allowed(dist: str, owner: str, rel: str) -> bool:
    if owner == dist:
        return True
    prefixes = KNOWN_OVERLAPS.get(frozenset({dist, owner}), ())
    return any(rel.startswith(p) for p in prefixes)


def foreign_files(dist: str, owners: Mapping[str, tuple[str, ...]], purelib: str) -> list[tuple[str, str]]:
    """(file, owner) for every file of the wheel of ``dist`` that another distribution owns outside the
    known overlaps. ``owners`` maps target paths to their owners (flashdoctor.probe.state.read_owners)."""
    dist = canonicalize_name(dist)
    out = []
    for path, who in sorted(owners.items()):
        rel = os.path.relpath(path, purelib).replace(os.sep, "/")
        for owner in who:
            if not _allowed(dist, canonicalize_name(owner), rel):
                out.append((rel if not rel.startswith("../") else path, owner))
    return out


def describe(dist: str, filename: str, clashes: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{f} (owned by {o})" for f, o in clashes[:SHOWN])
    more = f" and {len(clashes) - SHOWN} more" if len(clashes) > SHOWN else ""
    return (
        f"{filename} would overwrite files of other installed distributions: {shown}{more}; "
        f"a {dist} wheel must not, so it was refused and nothing was changed"
    )
