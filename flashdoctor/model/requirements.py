"""What installed distributions require of FlashAttention, as it applies to one Environment: each
``Dependent``'s Requires-Dist line parsed, its marker decided on the environment's own facts (a target may be
another machine), kept where it names a version range. The wheel selector rejects versions outside them
(``required-by-installed``) and ``check`` names them where no wheel fits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import Dependent, Environment


@dataclass(frozen=True)
class Required:
    """A version range an installed distribution requires of a FlashAttention distribution (its
    Requires-Dist line, whose marker applies to this environment)."""

    dist: str  # canonical FlashAttention distribution, "flash-attn"
    by: Dependent
    spec: SpecifierSet

    def allows(self, dist: str, version: Version) -> bool:
        return dist != self.dist or self.spec.contains(version, prereleases=True)

    @property
    def text(self) -> str:
        if self.by.checked == "run-time":
            return (
                f"{self.by.label} (installed) accepts only {self.dist}{self.spec} (it checks when it loads)"
            )
        return f"{self.by.label} (installed) requires {self.dist}{self.spec}"


_OS_MARKERS = {  # os -> (sys_platform, platform_system, os_name)
    "linux": ("linux", "Linux", "posix"),
    "windows": ("win32", "Windows", "nt"),
    "macos": ("darwin", "Darwin", "posix"),
}


def marker_environment(env: Environment) -> dict[str, str]:
    """The PEP 508 marker values of the target, from its facts (not from the Python flashdoctor runs in:
    the target may be another machine). ``extra`` is empty: an installed distribution does not record
    which extras were asked for, so a requirement behind an extra is not counted. Only the minor of
    Python is known: python_full_version is taken as its first release."""
    sys_platform, system, os_name = _OS_MARKERS.get(env.os or "", ("", "", ""))
    machine = {"amd64": "AMD64"}.get(env.machine or "", env.machine or "")
    cpython = (env.python_abi or "cp").startswith("cp")
    return {
        "python_version": env.python or "",
        "python_full_version": f"{env.python}.0" if env.python else "",
        "sys_platform": sys_platform,
        "platform_system": system,
        "os_name": os_name,
        "platform_machine": machine,
        "implementation_name": "cpython" if cpython else "",
        "platform_python_implementation": "CPython" if cpython else "",
        "extra": "",
    }


def required_of(env: Environment) -> tuple[Required, ...]:
    """The version ranges installed distributions require of FlashAttention here. A requirement that does
    not parse is passed over (the installer could not read it either); one whose marker cannot be
    decided on the target's facts counts. Without dependents (the common case) nothing is parsed or
    cached: check and the selector ask for every variant."""
    return _required_of(env) if env.dependents else ()


@lru_cache(maxsize=256)
def _required_of(env: Environment) -> tuple[Required, ...]:
    out = []
    markers: dict[str, str] | None = None
    for dep in env.dependents:
        try:
            req = Requirement(dep.requires)
        except InvalidRequirement:
            continue
        if not req.specifier:
            continue  # any version will do
        if req.marker is not None:
            markers = markers if markers is not None else marker_environment(env)
            try:
                if not req.marker.evaluate(markers):
                    continue
            except (ValueError, KeyError):  # undecidable here (packaging's marker errors)
                pass
        out.append(Required(str(canonicalize_name(req.name)), dep, req.specifier))
    return tuple(out)


def of_dist(required: Iterable[Required], dist: str) -> tuple[Required, ...]:
    """Those of ``required`` that are requirements on ``dist`` (any spelling)."""
    canon = canonicalize_name(dist)
    return tuple(r for r in required if r.dist == canon)


def ruled_out(required: Iterable[Required], dist: str, version: str | None) -> tuple[Required, ...]:
    """The requirements on ``dist`` that ``version`` (an installed one; its local label ignored) falls outside."""
    v = parse_version(version)
    if v is None:
        return ()
    public = Version(v.public)
    return tuple(r for r in of_dist(required, dist) if not r.allows(r.dist, public))


def required_text(required: Iterable[Required]) -> str:
    """ "transformer-engine 1.4.0 (installed) requires flash-attn<=2.4.2,>=2.0.6; …"."""
    return "; ".join(dict.fromkeys(r.text for r in required))
