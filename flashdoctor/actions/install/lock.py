"""`flashdoctor lock`: a pip requirements file that reproduces the install without flashdoctor.

    flash-attn @ https://github.com/.../flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl \\
        --hash=sha256:<64 hex>

`pip install --require-hashes -r FILE` then installs exactly that file or fails. Where the wheel index has no
sha256 for the wheel, the digest is recorded from the download (the file is fetched into the cache and checked
to be a wheel of the right distribution) and the file says so: "sha256 recorded (no published digest)", never
"verified" (flashdoctor.model.install.digest_wording).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashdoctor import __version__
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.install import digest_published, digest_wording
from flashdoctor.model.plan import WheelRef


@dataclass(frozen=True)
class LockEntry:
    variant: Variant
    wheel: WheelRef  # with the URL pip must fetch (a mirror's when --index-url was given)
    sha256: str
    sha256_from: str  # "index" | "computed"

    @property
    def dist(self) -> str:
        return VARIANT_DIST[self.variant]

    def line(self) -> str:
        return f"{self.dist} @ {self.wheel.url} \\\n    --hash=sha256:{self.sha256}"

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "dist": self.dist,
            "filename": self.wheel.filename,
            "url": self.wheel.url,
            "sha256": self.sha256,
            "sha256_from": self.sha256_from,
            "sha256_check": digest_wording(self.sha256_from),
            "requirement": f"{self.dist} @ {self.wheel.url} --hash=sha256:{self.sha256}",
        }


def lock_text(entries: list[LockEntry], env: Environment, source: str) -> str:
    """The requirements file: a header saying what it is for, then one hashed line per wheel."""
    torch = env.torch or "none"
    lines = [
        f"# Written by flashdoctor {__version__} for Python {env.python or '?'} ({env.platform or '?'}), "
        f"torch {torch}{'' if env.torch_cuda is None else ' (CUDA ' + env.torch_cuda + ')'} [{source}].",
        "# Reproduce without flashdoctor:  pip install --require-hashes -r THIS_FILE",
        "# (flashdoctor itself installs with --no-deps so that torch is never touched; add --no-deps to match it.)",
    ]
    for e in entries:
        if digest_published(e.sha256_from):
            lines.append(f"# {e.wheel.filename}: {digest_wording(e.sha256_from)}.")
        else:
            lines.append(
                f"# {e.wheel.filename}: {digest_wording(e.sha256_from)}: the wheel index publishes no sha256, "
                "so this one is the digest of the download."
            )
    lines += [e.line() for e in entries]
    return "\n".join(lines) + "\n"
