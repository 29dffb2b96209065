"""`flashdoctor lock`: the planned wheel, pinned by URL and sha256, in the forms users install from.

    flash-attn @ https://github.com/.../flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl \\
        --hash=sha256:<64 hex>

`pip install --no-deps --require-hashes -r FILE` then installs exactly that file or fails. The same pin also comes as

- ``uv``: a pyproject.toml dependency, ``"flash-attn @ URL#sha256=<64 hex>"``. uv refuses a fragment in a
  ``[tool.uv.sources]`` url (so a source entry cannot carry the digest), and takes the PEP 508 direct
  reference with its ``#sha256=``: ``uv lock`` records it in uv.lock and ``uv sync`` refuses other bytes
  (observed with uv 0.13, whose ``uv add`` drops the fragment: the snippet says to paste the line;
  tests/cli/test_cli_lock_exports.py replays it when uv is on PATH);
- ``dockerfile``: ``RUN python3 -m pip install --no-deps --require-hashes 'flash-attn @ URL#sha256=...'``
  (pip checks a direct URL's ``#sha256=`` and counts it as the hash --require-hashes asks for).

Where the wheel index has no
sha256 for the wheel, the digest is recorded from the download (the file is fetched into the cache and checked
to be a wheel of the right distribution) and the file says so: "sha256 recorded (no published digest)", never
"verified" (flashdoctor.model.install.digest_wording).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flashdoctor import __version__
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.install import LOCK_FORMS, digest_published, digest_wording
from flashdoctor.model.plan import WheelRef


@dataclass(frozen=True)
class LockEntry:
    variant: Variant
    wheel: WheelRef  # with the URL pip must fetch (a mirror's when --index-url was given)
    sha256: str
    sha256_from: str  # "index" | "computed"
    verification: dict[str, Any] | None = None  # how the digest was checked (fetch.Artifact), when fetched
    credentials_removed: str | None = None  # the host whose user:password was taken out of the URL
    digest_from: str | None = None  # where the digest came from (a key of model.verification.DIGEST_SOURCES)

    @property
    def dist(self) -> str:
        return VARIANT_DIST[self.variant]

    def line(self) -> str:
        return f"{self.dist} @ {self.wheel.url} \\\n    --hash=sha256:{self.sha256}"

    @property
    def pinned_url(self) -> str:
        """The wheel's URL with its digest as the fragment (``#sha256=``), which pip and uv check."""
        parts = urlsplit(self.wheel.url)
        return urlunsplit(parts._replace(fragment=f"sha256={self.sha256}"))

    def direct_reference(self) -> str:
        """PEP 508: ``flash-attn @ URL#sha256=...`` (a pyproject dependency, a pip argument)."""
        return f"{self.dist} @ {self.pinned_url}"

    @property
    def sha256_check(self) -> str:
        """The wording for the digest (model.install.digest_wording): "sha256 matches the published
        digest", "sha256 matches flashdoctor's record of the build", "sha256 recorded (no published digest)"."""
        return digest_wording(self.sha256_from, self.digest_from) or ""

    def digest_note(self) -> str:
        """The wording for the digest, and why when none was published."""
        if digest_published(self.sha256_from):
            return f"{self.wheel.filename}: {self.sha256_check}."
        return (
            f"{self.wheel.filename}: {self.sha256_check}: the wheel index publishes no sha256, "
            "so this one is the digest of the download."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "dist": self.dist,
            "filename": self.wheel.filename,
            "url": self.wheel.url,
            "sha256": self.sha256,
            "sha256_from": self.sha256_from,
            "sha256_check": self.sha256_check,
            "verification": self.verification,
            "requirement": f"{self.dist} @ {self.wheel.url} --hash=sha256:{self.sha256}",
            "direct_reference": self.direct_reference(),
            "credentials_removed": self.credentials_removed is not None,
        }


def credentials_note(hosts: list[str]) -> str | None:
    """The one line that says credentials were taken out of the locked URLs, and how pip gets them."""
    if not hosts:
        return None
    names = ", ".join(dict.fromkeys(hosts))
    return (
        f"The credentials for {names} were removed from the URLs (never written down); pip finds them in "
        "~/.netrc or a keyring (keyring), or in PIP_INDEX_URL=https://user:password@host/... when the files "
        "lie under that index."
    )


def _head(entries: list[LockEntry], env: Environment, source: str, *how: str) -> list[str]:
    """The comment every form starts with: the machine it was written for, how to use it, and each
    wheel's digest wording."""
    torch = env.torch or "none"
    cuda = "" if env.torch_cuda is None else f" (CUDA {env.torch_cuda})"
    note = credentials_note([e.credentials_removed for e in entries if e.credentials_removed])
    return [
        f"# Written by flashdoctor {__version__} for Python {env.python or '?'} ({env.platform or '?'}), "
        f"torch {torch}{cuda} [{source}].",
        *(f"# {line}" for line in how),
        *(f"# {e.digest_note()}" for e in entries),
        *([f"# {note}"] if note else []),
    ]


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's: quotes, backslashes, \\uXXXX)."""
    return json.dumps(text)


def _requirements_body(entries: list[LockEntry]) -> list[str]:
    """One hashed line per wheel."""
    return [e.line() for e in entries]


def _uv_body(entries: list[LockEntry]) -> list[str]:
    """The wheel as a direct reference with its #sha256=, which uv records in uv.lock and checks on
    every install (a [tool.uv.sources] url cannot carry a digest)."""
    return [
        "[project]",
        "dependencies = [",
        *(f"    {_toml_string(e.direct_reference())}," for e in entries),
        "]",
    ]


def _dockerfile_body(entries: list[LockEntry]) -> list[str]:
    """One RUN that installs the wheel by URL, pip checking its #sha256."""
    refs = " \\\n    ".join(shlex.quote(e.direct_reference()) for e in entries)
    return [f"RUN python3 -m pip install --no-deps --require-hashes \\\n    {refs}"]


@dataclass(frozen=True)
class LockForm:
    """One form the lock is written in (--format): the head every form starts with (:func:`_head`),
    its own lines there on how to use it, then its body."""

    suffix: str  # the file name suffix `--format all -o BASE` gives it
    how: tuple[str, ...]
    body: Callable[[list[LockEntry]], list[str]]

    def text(self, entries: list[LockEntry], env: Environment, source: str) -> str:
        return "\n".join([*_head(entries, env, source, *self.how), *self.body(entries)]) + "\n"


# --format: name -> its form
FORMATS: dict[str, LockForm] = {
    # a pip requirements file
    "requirements": LockForm(
        ".txt",
        (
            "Reproduce without flashdoctor:  pip install --no-deps --require-hashes -r THIS_FILE",
            "(--no-deps, as flashdoctor installs: torch is never touched, and pip would refuse the wheel's other",
            "dependencies, which carry no hash here; install missing ones, e.g. einops, before.)",
        ),
        _requirements_body,
    ),
    # a pyproject.toml fragment for uv
    "uv": LockForm(
        ".pyproject.toml",
        (
            "For uv: paste this dependency into your pyproject.toml's [project] dependencies as it is; uv records",
            "the #sha256 in uv.lock and refuses other bytes on `uv sync`. (`uv add` with it drops the #sha256.)",
            "uv resolves the wheel's own dependencies (torch) with your project: keep your torch source as it is.",
        ),
        _uv_body,
    ),
    # a Dockerfile snippet
    "dockerfile": LockForm(
        ".Dockerfile",
        (
            "For a Dockerfile (an image whose Python already has this torch): pip checks the #sha256 of the",
            "download (--require-hashes); --no-deps leaves torch and the wheel's other dependencies as the",
            "image has them (install missing ones, e.g. einops, before).",
        ),
        _dockerfile_body,
    ),
}
if tuple(FORMATS) != LOCK_FORMS:  # pragma: no cover - the names are model.install's, the writers here
    raise AssertionError(f"lock forms {tuple(FORMATS)} are not model.install.LOCK_FORMS {LOCK_FORMS}")


def lock_text(entries: list[LockEntry], env: Environment, source: str) -> str:
    """The requirements file (the form `lock` reports in every case): the head, then one hashed line
    per wheel."""
    return FORMATS["requirements"].text(entries, env, source)
