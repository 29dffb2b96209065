"""Fixes tailored to a machine: the fields a fix template may name, computed from the Environment.

A fix in data/signatures.json is a list of alternatives. The first alternative whose fields are all
known (and whose contexts and machine predicate hold) is used, so a probed machine or a --target gets
"MAX_JOBS=2 (23 GB available)" and a bare log gets the general advice. Field values come from the
signature's own regex captures (named groups) first — captures are about the failing line — then from
the fields the caller passes (what only it knows: the build passes ``jobs_used``, the MAX_JOBS the
failed build ran with, and ``fewer_jobs``, a smaller value), then from the machine, then from facts
read in the log (setup.py prints torch.__version__).

"The machine" is this one only for a log from it (see origin). For a log from elsewhere it is the
machine the log shows (its facts as an Environment, everything else unknown, ``log_machine`` naming
it), and a fix that uses one of its facts says so: "For the machine in this log (torch 2.1.2, cp310):".

Nothing here touches the system.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

from flashdoctor import knowledge as kb
from flashdoctor.errors import FlashdoctorError
from flashdoctor.knowledge.fa2_build import fa2_build_arch as kb_fa2_build_arch
from flashdoctor.knowledge.signatures import FixAlternative
from flashdoctor.knowledge.torch_symbols import exporting_releases, measured_span
from flashdoctor.knowledge.variants import Variant
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.environment import Environment

# (env, variant) -> one wheel file name (or a short description) that fits, or None. The same shape as
# flashdoctor.decide.checks.WheelFinder: the wheel selector plugs in here.
WheelFinder = Callable[[Environment, Variant], "str | None"]

# Fields a fix template may name that only a caller knows (passed as ``fields``; unknown otherwise).
CALLER_FIELDS = {
    "jobs_used": "the MAX_JOBS the failed build ran with (flashdoctor build)",
    "fewer_jobs": "a smaller MAX_JOBS for the next build (flashdoctor build)",
}

# Fields computed from the signature's captures and knowledge (about the log, not a machine).
CAPTURE_FIELDS: dict[str, Callable[[Mapping[str, str | None]], str | None]] = {
    # the torch releases that export the missing symbol (data/torch_symbols.json)
    "symbol_torches": lambda caps: exporting_releases(caps.get("symbol") or ""),
    "torches_measured": lambda caps: measured_span(),
}

# Fields that describe a machine (a fix using one is about a particular machine).
MACHINE_FIELDS = frozenset(
    {
        "torch", "torch_mm", "torch_cuda", "cuda_major", "nvcc", "gcc_max", "wheel", "fa2_wheel_label",
        "abi", "cp", "python", "platform", "glibc", "gcc", "driver", "driver_cuda", "python_executable",
        "python_exe", "memory_gb", "disk_free_gb", "cpus", "max_jobs", "gpu", "sm", "archs",
        "pytorch_index", "cuda_home_hint",
    }
)  # fmt: skip

# A CUDA toolkit's own directory: /usr/local/cuda-12.8, /opt/cuda, or Windows' ...\\CUDA\\v12.8.
_BIN = re.compile(r"[/\\]bin[/\\]")
_TOOLKIT_DIR = re.compile(r"(?:cuda[^/\\]*|[/\\]cuda[/\\]v\d+\.\d+)$", re.IGNORECASE)

# MAX_JOBS above this much memory (at BUILD_GB_PER_JOB each) is flagged when the machine is unknown.
UNKNOWN_MACHINE_BUILD_GB = 128.0


def _gpus_sm(env: Environment | None) -> list[int]:
    if env is None or not env.known("gpus"):
        return []
    return [g.sm for g in env.gpus if g.sm is not None]


def _torch_cpu(env: Environment | None) -> bool:
    return (
        env is not None
        and bool(env.torch)
        and env.known("torch_cuda")
        and env.torch_cuda is None
        and not env.torch_hip
    )


# Named machine predicates a fix alternative may require ("env": "<name>").
ENV_PREDICATES: dict[str, Callable[[Tailor], bool]] = {
    "no_torch": lambda t: t.env is not None and t.env.known("torch") and t.env.torch is None,
    "gpu_pre_ampere": lambda t: bool(_gpus_sm(t.env)) and all(sm < 80 for sm in _gpus_sm(t.env)),
    "gpu_not_hopper": lambda t: bool(_gpus_sm(t.env)) and all(sm != 90 for sm in _gpus_sm(t.env)),
    "torch_cpu": lambda t: _torch_cpu(t.env),
    # The wheel selector ran for this machine and found no prebuilt wheel: advice must not say "install the wheel".
    "no_wheel_fits": lambda t: t.wheel_lookup == (True, None),
}


def _max_jobs_exceed_memory(captures: Mapping[str, str | None], env: Environment | None) -> bool:
    from flashdoctor.decide.checks import BUILD_GB_PER_JOB

    try:
        jobs = int(captures.get("jobs") or "")
    except ValueError:
        return False
    memory = env.memory_gb if env is not None and env.known("memory_gb") else None
    limit = memory if memory is not None else UNKNOWN_MACHINE_BUILD_GB
    return jobs * BUILD_GB_PER_JOB > limit


def _nvcc_older_than_torch(captures: Mapping[str, str | None], env: Environment | None) -> bool:
    found, built = major_minor(captures.get("nvcc_found")), major_minor(captures.get("torch_built"))
    return found is not None and built is not None and found < built


# Named conditions a signature may require of its match ("condition": "<name>").
CONDITIONS: dict[str, Callable[[Mapping[str, str | None], Environment | None], bool]] = {
    "max_jobs_exceed_memory": _max_jobs_exceed_memory,
    "nvcc_older_than_torch": _nvcc_older_than_torch,
}


def env_matches(env: Environment | None, want: Mapping[str, object]) -> bool:
    """All of ``want`` hold for ``env`` ("*" = known and not empty). No machine: nothing holds."""
    if env is None:
        return False
    for key, value in want.items():
        if key != "os" and not env.known(key):
            return False
        actual = getattr(env, key)
        if value == "*":
            if not actual:
                return False
        elif actual != value:
            return False
    return True


def env_matches_any(env: Environment | None, want: Mapping[str, object]) -> bool:
    return any(env_matches(env, {k: v}) for k, v in want.items())


def fa2_build_arch(sm: int) -> int:
    """The FLASH_ATTN_CUDA_ARCHS value that covers a GPU (the build plan's rule, knowledge.fa2_build); a GPU
    none covers is named as itself."""
    found = kb_fa2_build_arch(sm)
    return found.arch if found is not None else sm


@dataclass(frozen=True)
class Tailor:
    """Everything a fix template may use: the machine, the log's facts and contexts, the variant."""

    env: Environment | None
    variant: Variant
    facts: Mapping[str, str]
    contexts: Container[str]
    wheel_finder: WheelFinder | None = None
    # Field values the caller knows and the machine does not (e.g. the build's own MAX_JOBS); they win
    # over the computed ones. Fields only a caller supplies: CALLER_FIELDS.
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Set when ``env`` is the machine a log from elsewhere shows (not this one): its facts, e.g.
    # "torch 2.1.2, cp310". Fixes naming them say which machine they are for.
    log_machine: str = ""

    def log_machine_phrase(self) -> str:
        return f"the machine in this log ({self.log_machine})" if self.log_machine else ""

    # -- fields -------------------------------------------------------------------------------
    def _known(self, key: str) -> bool:
        return self.env is not None and self.env.known(key)

    def _torch(self) -> str | None:
        if self._known("torch") and self.env and self.env.torch:
            return self.env.torch
        return self.facts.get("torch_log")

    def _torch_cuda(self) -> str | None:
        if self._known("torch_cuda") and self.env and self.env.torch_cuda:
            return self.env.torch_cuda
        torch = self._torch()
        if torch and "+cu" in torch:
            digits = torch.split("+cu", 1)[1]
            if digits.isdigit() and len(digits) >= 3:
                return f"{digits[:-1]}.{digits[-1]}"
        return None

    def _nvcc(self) -> str | None:
        if self._known("nvcc") and self.env and self.env.nvcc:
            return self.env.nvcc
        return self.facts.get("nvcc_log")

    @cached_property
    def wheel_lookup(self) -> tuple[bool, str | None]:
        """(the selector answered, the wheel it picked). A selector that fails (no index, network)
        did not answer: that is not "no wheel fits"."""
        if self.wheel_finder is None or self.env is None or self.log_machine:
            return False, None
        try:
            return True, self.wheel_finder(self.env, self.variant)
        except (FlashdoctorError, OSError):
            return False, None

    def field(self, key: str) -> str | None:
        if key in self.fields:
            return self.fields[key]
        env = self.env
        info = kb.variant_info(self.variant)
        if key == "variant":
            return self.variant
        if key == "dist":
            return info.dist
        if key == "torch":
            return self._torch()
        if key == "torch_mm":
            mm = major_minor(self._torch())
            return None if mm is None else f"{mm[0]}.{mm[1]}"
        if key == "torch_cuda":
            return self._torch_cuda()
        if key == "cuda_major":
            mm = major_minor(self._torch_cuda())
            return None if mm is None else str(mm[0])
        if key == "nvcc":
            return self._nvcc()
        if key == "nvcc_min":
            return info.nvcc_min()
        if key == "nvcc_recommended":
            return info.nvcc_recommended
        if key == "gcc_max":
            nvcc = self._nvcc()
            mx = kb.gcc_max_for_nvcc(nvcc) if nvcc else None
            return None if mx is None else str(mx)
        if key == "wheel":
            return self.wheel_lookup[1]
        if key == "fa2_wheel_label":
            parts = [self.field(k) for k in ("cuda_major", "torch_mm", "abi", "cp", "platform")]
            if (
                self.variant != "fa2"
                or any(p is None for p in parts)
                or not (self.field("platform") or "").startswith("linux")
            ):
                return None
            cu, torch_mm, abi, cp, plat = parts
            return f"flash_attn-<version>+cu{cu}torch{torch_mm}cxx11abi{abi}-{cp}-{cp}-{plat}.whl"
        if key == "wheel_url":
            return self.facts.get("wheel_url")
        if env is None:
            return None
        if key == "abi":
            return None if not self._known("cxx11abi") or env.cxx11abi is None else str(env.cxx11abi).upper()
        if key == "cp":
            return env.python_abi if self._known("python_abi") else None
        if key in ("python", "platform", "glibc", "gcc", "driver", "driver_cuda", "python_executable"):
            return getattr(env, key) if self._known(key) else None
        if key == "python_exe":
            return env.python_executable if self._known("python_executable") else None
        if key == "memory_gb":
            return None if not self._known("memory_gb") or env.memory_gb is None else f"{env.memory_gb:.0f}"
        if key == "disk_free_gb":
            return (
                None
                if not self._known("disk_free_gb") or env.disk_free_gb is None
                else f"{env.disk_free_gb:.1f}"
            )
        if key == "cpus":
            return None if not self._known("cpus") or env.cpus is None else str(env.cpus)
        if key == "max_jobs":
            from flashdoctor.decide.checks import build_jobs

            jobs = (
                build_jobs(env.memory_gb, env.cpus)
                if self._known("memory_gb") and self._known("cpus")
                else None
            )
            return None if jobs is None else str(max(1, jobs))
        if key in ("gpu", "sm", "archs"):
            gpus = [g for g in env.gpus if g.sm is not None] if self._known("gpus") else []
            if not gpus:
                return None
            if key == "gpu":
                return gpus[0].name or f"sm_{gpus[0].sm}"
            if key == "sm":
                return str(gpus[0].sm)
            return ";".join(str(a) for a in sorted({fa2_build_arch(g.sm) for g in gpus if g.sm is not None}))
        if key == "pytorch_index":
            from flashdoctor.decide.checks import pytorch_cuda_index

            return (
                pytorch_cuda_index(env.driver_cuda)
                if self._known("driver_cuda") and env.driver_cuda
                else None
            )
        if key == "cuda_home_hint":
            # A toolkit root to export as CUDA_HOME: the probed CUDA_HOME when it has the headers, else
            # a toolkit directory among the nvccs found (the parent of nvcc on PATH may be /usr/local),
            # else the Windows toolkit the log's paths show (C:\\...\\CUDA\\v12.8).
            if self._known("cuda_home") and env.cuda_home and env.cuda_home_headers:
                return env.cuda_home
            roots = (
                [n.path[: list(_BIN.finditer(n.path))[-1].start()] for n in env.nvccs if _BIN.search(n.path)]
                if self._known("nvccs")
                else []
            )
            toolkits = [r for r in roots if _TOOLKIT_DIR.search(r) and r != env.cuda_home]
            if toolkits:
                return toolkits[0]
            logged = self.facts.get("cuda_home_log")  # a Windows path: never a Linux machine's hint
            if logged and (not self._known("platform") or (env.platform or "").startswith("win")):
                return re.sub(r"[/\\]+", r"\\", logged)  # C:/..., C:\\... (a repr): C:\...
            return None
        return None

    # -- templates ----------------------------------------------------------------------------
    def render(self, template: str, captures: Mapping[str, str | None]) -> str | None:
        """The template with every field filled, or None when one is unknown."""
        return self._render(template, captures)[0]

    def _render(self, template: str, captures: Mapping[str, str | None]) -> tuple[str | None, bool]:
        """(the filled template or None, whether a machine's fact filled it)."""
        values: dict[str, str] = {}
        machine = False
        for name in _field_names(template):
            value = captures.get(name)
            if value is None and name in CAPTURE_FIELDS:
                value = CAPTURE_FIELDS[name](captures)
            elif value is None:
                value = self.field(name)
                machine = machine or (name in MACHINE_FIELDS and name not in self.fields)
            if value is None:
                return None, False
            values[name] = value
        try:
            return template.format_map(values), machine
        except (KeyError, IndexError, ValueError):
            return None, False

    def choose_fix(self, alternatives: tuple[FixAlternative, ...], captures: Mapping[str, str | None]) -> str:
        for alt in alternatives:
            if any(c not in self.contexts for c in alt.when):
                continue
            if alt.env is not None and not ENV_PREDICATES[alt.env](self):
                continue
            text, machine = self._render(alt.text, captures)
            if text is not None:
                if machine and self.log_machine:
                    return f"For {self.log_machine_phrase()}: {text}"
                return text
        # The data tests guarantee a last alternative that needs nothing; never fail on a bad template.
        return alternatives[-1].text


def _field_names(template: str) -> Iterator[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return
    for _lit, name, _spec, _conv in parsed:
        if name:
            yield name
