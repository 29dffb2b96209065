"""The build profile: which architectures, head dims, dtypes and features a source build compiles.

Pure values and parsers. The profile is recorded in the wheel's local version label
(``2.8.3.post2+fd.sm90.hd128.bf16``) so that ``flashdoctor check`` and the wheel lookup can tell
what a flashdoctor-built wheel contains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from flashdoctor.errors import UsageError
from flashdoctor.knowledge.archs import runs_on

BuildVariant = Literal["fa2", "fa3"]
DTYPES = ("fp16", "bf16")
_DTYPE_ALIASES = {
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}
# FA3 feature switches a user can turn off (--no-<name>), in label order. "fp16", "sm80" and the
# head-dim switches are driven by --dtypes / --arch / --head-dims instead.
FA3_FEATURES = (
    "backward",
    "split",
    "paged-kv",
    "append-kv",
    "local",
    "softcap",
    "pack-gqa",
    "fp8",
    "varlen",
    "cluster",
)
LABEL_PREFIX = "fd"


def parse_archs(text: str) -> tuple[int, ...]:
    """ "80,90" / "8.0;9.0" / "sm_90,sm_120" -> (80, 90, 120). Raises UsageError on junk."""
    out: list[int] = []
    for tok in re.split(r"[,;\s]+", text.strip()):
        if not tok:
            continue
        t = tok.lower().removeprefix("sm_").removeprefix("sm").removeprefix("compute_")
        t = t.rstrip("af") if re.fullmatch(r"\d+[af]", t) else t
        if re.fullmatch(r"\d+\.\d", t):
            major, minor = t.split(".")
            val = int(major) * 10 + int(minor)
        elif re.fullmatch(r"\d{2,3}", t):
            val = int(t)
        else:
            raise UsageError(f"--arch {text}: {tok!r} is not a compute capability (use e.g. 80,90 or 8.6)")
        if not 30 <= val <= 200:
            raise UsageError(f"--arch {text}: {tok!r} is not a compute capability (use e.g. 80,90 or 8.6)")
        out.append(val)
    if not out:
        raise UsageError("--arch: give at least one compute capability, e.g. --arch 90")
    return tuple(sorted(set(out)))


def parse_head_dims(text: str) -> tuple[int, ...]:
    out = []
    for tok in re.split(r"[,;\s]+", text.strip()):
        if not tok:
            continue
        if not tok.isdigit() or not 1 <= int(tok) <= 256:
            raise UsageError(f"--head-dims {text}: {tok!r} is not a head dimension between 1 and 256")
        out.append(int(tok))
    if not out:
        raise UsageError("--head-dims: give at least one head dimension, e.g. --head-dims 128")
    return tuple(sorted(set(out)))


def parse_dtypes(text: str) -> tuple[str, ...]:
    out = []
    for tok in re.split(r"[,;\s]+", text.strip().lower()):
        if not tok:
            continue
        if tok not in _DTYPE_ALIASES:
            raise UsageError(f"--dtypes {text}: {tok!r} is not one of fp16, bf16")
        out.append(_DTYPE_ALIASES[tok])
    if not out:
        raise UsageError("--dtypes: give fp16, bf16 or both")
    return tuple(d for d in DTYPES if d in out)


def head_dim_buckets(requested: Iterable[int], compiled: Iterable[int]) -> tuple[int, ...]:
    """The kernel head dims that serve the requested ones: upstream's dispatch runs a head dim d on
    the smallest compiled kernel >= d (80 -> 96). Raises UsageError for d above the largest."""
    kernels = sorted(compiled)
    out = set()
    for d in requested:
        bucket = next((k for k in kernels if d <= k), None)
        if bucket is None:
            raise UsageError(f"--head-dims: {d} is larger than the largest kernel ({kernels[-1]})")
        out.add(bucket)
    return tuple(sorted(out))


@dataclass(frozen=True)
class Profile:
    """What a build compiles. ``head_dims``/``dtypes`` None = all the version has (no narrowing)."""

    variant: BuildVariant
    archs: tuple[int, ...]  # the variant's own build archs (FA2: 80/90/100/120), sorted
    head_dims: tuple[int, ...] | None = None  # kernel buckets
    dtypes: tuple[str, ...] | None = None
    disabled: tuple[str, ...] = ()  # FA3 features turned off (FA3_FEATURES names)

    @property
    def narrowed(self) -> bool:
        return self.head_dims is not None or self.dtypes is not None

    def label(self) -> str:
        """PEP 440 local version label: fd.sm90.hd128.bf16 (segments: archs, head dims, dtypes, no<feature>)."""
        parts = [LABEL_PREFIX]
        parts += [f"sm{a}" for a in self.archs]
        if self.head_dims is not None:
            parts += [f"hd{h}" for h in self.head_dims]
        if self.dtypes is not None:
            parts += list(self.dtypes)
        parts += ["no" + f.replace("-", "") for f in FA3_FEATURES if f in self.disabled]
        return ".".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "archs": list(self.archs),
            "head_dims": None if self.head_dims is None else list(self.head_dims),
            "dtypes": None if self.dtypes is None else list(self.dtypes),
            "disabled": list(self.disabled),
            "label": self.label(),
        }


@dataclass(frozen=True)
class LabelInfo:
    archs: tuple[int, ...]
    head_dims: tuple[int, ...] | None
    dtypes: tuple[str, ...] | None
    disabled: tuple[str, ...]


def parse_label(label: str | None) -> LabelInfo | None:
    """Read a local version label written by :meth:`Profile.label`; None if it is not one."""
    if not label:
        return None
    segs = label.lower().replace("-", ".").replace("_", ".").split(".")
    if not segs or segs[0] != LABEL_PREFIX:
        return None
    archs, hds, dts, dis = [], [], [], []
    features = {f.replace("-", ""): f for f in FA3_FEATURES}
    for s in segs[1:]:
        if m := re.fullmatch(r"sm(\d+)", s):
            archs.append(int(m.group(1)))
        elif m := re.fullmatch(r"hd(\d+)", s):
            hds.append(int(m.group(1)))
        elif s in DTYPES:
            dts.append(s)
        elif s.startswith("no") and s[2:] in features:
            dis.append(features[s[2:]])
        else:
            return None
    return LabelInfo(tuple(archs), tuple(hds) or None, tuple(dts) or None, tuple(dis))


# -- what an installed build can run ----------------------------------------------------------------
# The head-dim kernels each variant compiles: a head dim d runs on the smallest kernel >= d
# (FA2: csrc/flash_attn/src/static_switch.h HEADDIM_SWITCH; FA3: hopper/ instantiations; the per-version
# lists live in data/build.json).
_FA3_DTYPES = ("fp16", "bf16", "fp8")


def head_dim_kernels(variant: BuildVariant, version: str | None) -> tuple[int, ...]:
    """The head-dim kernels a full build of ``variant`` at ``version`` has (data/build.json)."""
    from packaging.specifiers import SpecifierSet

    from flashdoctor.knowledge.data import load_data
    from flashdoctor.knowledge.versions import parse_version

    data = load_data("build")
    if variant == "fa3":
        return tuple(data["fa3"]["head_dims"])
    v = parse_version(version)
    rows = data["fa2"]["versions"]
    if v is not None:
        public = parse_version(v.public)
        for row in rows:
            if public is not None and SpecifierSet(row["versions"]).contains(public, prereleases=True):
                return tuple(row["head_dims"])
    return tuple(rows[-1]["head_dims"])


@dataclass(frozen=True)
class BuildCoverage:
    """What an installed build can run, read from its version's local label (a flashdoctor profile such
    as ``2.8.3.post2+fd.sm90.hd128.bf16``). One answer for check, smoke, bench and the runtime
    dispatcher, so that none of them calls into a kernel the build left out."""

    variant: BuildVariant
    label: str
    head_dims: tuple[int, ...] | None  # compiled kernel buckets; None = every kernel of the version
    kernels: tuple[int, ...]  # the version's head-dim kernels
    dtypes: tuple[str, ...] | None  # None = every dtype of the variant
    disabled: tuple[str, ...]
    archs: tuple[int, ...] = ()  # the label's archs (SASS only, no PTX); () = not said

    def missing(self, head_dim: int, dtype: str, sm: int | None = None) -> str | None:
        """Why this build has no kernel for (head_dim, dtype) on a GPU of compute capability `sm`, e.g.
        "fp16" or "sm_90"; None when it has one."""
        if sm is not None and self.archs and runs_on([f"sm_{a}" for a in self.archs], sm) == "no":
            return f"sm_{sm}"
        if self.dtypes is not None and dtype not in self.dtypes:
            return dtype
        if dtype == "fp8" and "fp8" in self.disabled:
            return dtype
        if self.head_dims is not None:
            bucket = next((k for k in self.kernels if head_dim <= k), None)
            if bucket not in self.head_dims:
                return f"head dim {head_dim}"
        return None

    def describe(self) -> str:
        parts = []
        if self.head_dims is not None:
            parts.append("head dim " + "/".join(map(str, self.head_dims)))
        if self.dtypes is not None:
            parts.append("/".join(self.dtypes))
        return f"{self.label}: " + (", ".join(parts) if parts else "all head dims and dtypes")


def build_coverage(variant: str, version: str | None) -> BuildCoverage | None:
    """The coverage of an installed ``variant`` build from its version; None when the version carries no
    flashdoctor profile label (an upstream wheel: everything compiled)."""
    from flashdoctor.knowledge.versions import parse_version

    if variant not in ("fa2", "fa3"):
        return None
    v = parse_version(version)
    info = parse_label(v.local if v is not None else None)
    if v is None or info is None:
        return None
    bv: BuildVariant = "fa3" if variant == "fa3" else "fa2"
    dtypes = info.dtypes
    if bv == "fa3" and dtypes is not None and "fp8" not in info.disabled:
        dtypes = (*dtypes, "fp8")  # FA3's fp8 kernels follow their own switch, not --dtypes
    return BuildCoverage(
        variant=bv,
        label=str(v.local),
        head_dims=info.head_dims,
        kernels=head_dim_kernels(bv, str(v)),
        dtypes=dtypes,
        disabled=info.disabled,
        archs=info.archs,
    )
