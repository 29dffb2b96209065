"""How a fetched file was verified: against a digest its publisher published before the download, or only
hashed and recorded (issue "say which verification happened"). A value; renderers word it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.install import DIGEST_BUILD_RECORD, DIGEST_PUBLISHED, DIGEST_RECORDED

Kind = Literal["published-digest", "recorded"]
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Where a published digest came from (``Verification.digest_from``).
DIGEST_SOURCES: dict[str, str] = {
    "wheel-index": "flashdoctor's wheel index",
    "build-record": "build.json, written by the flashdoctor build that made the wheel",
    "plan-file": "the plan file",
    "index-url": "the --index-url page",
    "pep503-page": "the index page's #sha256= fragment",
    "pep691-page": "the index page's PEP 691 hashes",
    "github-release-asset": "the GitHub release asset's digest",
    "pypi-json": "PyPI's JSON API",
    "huggingface-lfs": "the Hugging Face repository's Git LFS sha256",
}


@dataclass(frozen=True)
class Verification(FieldsJson):
    kind: Kind
    digest_from: str | None = None  # a key of DIGEST_SOURCES when kind is "published-digest"
    where: str | None = None  # the page or API document the digest was read from (redacted)
    note: str | None = None  # why there is no published digest (or what the lookup said)

    @property
    def published(self) -> bool:
        return self.kind == "published-digest"

    def describe(self) -> str:
        """One plain line: 'sha256 matches the published digest (...)' or 'sha256 recorded (...)'."""
        if self.published and self.digest_from == "build-record":
            return f"{DIGEST_BUILD_RECORD} ({DIGEST_SOURCES['build-record']}; no publisher's digest)"
        if self.published:
            src = DIGEST_SOURCES.get(self.digest_from or "", self.digest_from or "the publisher")
            return f"{DIGEST_PUBLISHED} ({src}{', ' + self.where if self.where else ''})"
        return DIGEST_RECORDED + (f": {self.note}" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "text": self.describe()}


def is_sha256(value: object) -> bool:
    """Whether ``value`` is a sha256 digest as flashdoctor writes one: 64 lower-case hex digits. A digest
    read from a publisher (an index page's ``#sha256=``, an API's JSON) is untrusted text until it is one;
    the download cache names directories by it."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def published(digest_from: str, where: str | None = None) -> Verification:
    return Verification("published-digest", digest_from, where)


def recorded(note: str | None = None) -> Verification:
    return Verification("recorded", note=note)
