"""Whose machine a log comes from, and which machine its fixes are for.

A log pasted into `flashdoctor explain` is often from another machine (a colleague's, a CI runner, an
issue thread). Tailoring its fix with this machine's facts then gives advice for the wrong machine
("no wheel fits this machine (torch 2.13.0+cpu)" to a torch 2.1 user). So the probed machine (or
--target) is used only when the log comes from it:

- the caller says so (``here``): explain run inside a flashdoctor command (check, install, build,
  smoke) on output it captured, or the user's ``--here``;
- or the log's own facts agree with the machine: the same torch version and two more facts (the build
  its label names (+cu124, +cpu), its Python, GPU, nvcc or driver; one released torch is on many machines, and
  so is one Python), or this Python environment's own directory
  in the log's paths; and no fact disagrees (another torch, Python, OS, CUDA driver, a
  GPU older than Ampere named in a log while every GPU here is Ampere or newer, a GPU the log ran on
  that no GPU here is (by architecture, then by name), or one while this machine has no NVIDIA GPU).

Otherwise the fix is tailored from what the log reveals (torch.__version__ lines, wheel names, paths,
nvcc -V, nvidia-smi) and says so: "for the machine in this log (torch 2.1.2, cp310): ...".

Nothing here touches the system: it compares values.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import lru_cache

from flashdoctor.decide.explain.scan import normalise, trie_regex
from flashdoctor.knowledge.code_pages import code_page_families
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import GPU, TARGET_KEYS, Environment
from flashdoctor.model.fields import FieldsJson

# Facts (data/signatures.json "facts") that describe the log's machine.
TORCH, TORCH_INDEX_CUDA, PYTHON, NVCC, DRIVER, DRIVER_CUDA, WHEEL_URL, GPU_CC, GPU_NAME = (
    "torch_log",
    "torch_index_cuda_log",
    "python_log",
    "nvcc_log",
    "driver_log",
    "driver_cuda_log",
    "wheel_url",
    "gpu_cc_log",
    "gpu_name_log",
)
# setup.py's guessed wheel: flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl
_GUESS = re.compile(
    r"\+cu(?P<cu>\d+)torch(?P<torch>\d+\.\d+)cxx11abi(?P<abi>TRUE|FALSE)-(?P<cp>cp3\d+)-cp3\d+t?-(?P<plat>[\w]+)\.whl",
    re.IGNORECASE,
)
# "torch 2.6.0-cu126": a local label written with a dash.
_DASH_LABEL = re.compile(r"-(cu\d+|cpu|rocm[\d.]+)$")
# python.exe in an environment's own folder (a conda environment, a python.org install on Windows).
_WINDOWS_PYTHON = re.compile(r"python[\d.]*w?\.exe", re.IGNORECASE)
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:/")
# Folders inside an installation that are not its own environment: a conda (or mamba, pyenv-virtualenv)
# root keeps its other environments in envs/NAME and the package cache every environment links from in
# pkgs/, so /home/ana/miniconda3/envs/fa/... is a log of another environment than the base's.
_NOT_ITS_OWN = rb"[/\\]+(?:envs|pkgs)(?![\w-])"
# A Python environment directory this generic says nothing about whose it is.
_GENERIC_PREFIXES = {"/usr", "/usr/local", "/opt/conda", "/root", "/opt", "/", ""}


@dataclass(frozen=True)
class LogMachine:
    """What a log reveals about the machine it comes from."""

    torch: str | None = None
    python: str | None = None  # "3.10"
    os: str | None = None  # "linux" | "windows" | "macos"
    arch: str | None = None  # "x86_64" | "aarch64"
    torch_cuda: str | None = None  # from torch's +cuXYZ label, or the PyTorch index it came from
    nvcc: str | None = None
    driver: str | None = None
    driver_cuda: str | None = None
    cxx11abi: bool | None = None
    torch_mm_only: str | None = None  # torch major.minor from setup.py's guessed wheel name
    isolated_build: bool = False  # the torch in the log may be a build-isolation download
    old_gpu: bool = False  # the log names a GPU older than Ampere (context pre_ampere_gpu)
    gpu_cc: str | None = None  # "9.0": the GPU the log ran on, where it says so (one GPU kind only)
    gpu_name: str | None = None

    @property
    def gpu(self) -> GPU | None:
        return None if self.gpu_cc is None else GPU(index=0, name=self.gpu_name, capability=self.gpu_cc)

    @property
    def cp(self) -> str | None:
        return None if self.python is None else "cp" + self.python.replace(".", "")

    @property
    def platform(self) -> str | None:
        if self.os == "windows":
            return "win_amd64"
        if self.os == "linux" and self.arch:
            return f"linux_{self.arch}"
        return None

    @property
    def known(self) -> bool:
        return any(
            (self.torch, self.torch_mm_only, self.python, self.nvcc, self.driver, self.os, self.gpu_cc)
        )

    def label(self) -> str:
        """ "torch 2.1.2, cp310, driver 535.104.05, Linux" - the facts a reader recognises the machine by."""
        parts = []
        if self.torch or self.torch_mm_only:
            parts.append(f"torch {self.torch or self.torch_mm_only}")
        if self.cp:
            parts.append(self.cp)
        if self.nvcc:
            parts.append(f"nvcc {self.nvcc}")
        if self.driver:  # a fix may name it (driver-too-old), and it may be all the log shows
            parts.append(f"driver {self.driver}")
        if self.os:
            parts.append({"linux": "Linux", "windows": "Windows", "macos": "macOS"}[self.os])
        if self.gpu is not None and self.gpu.sm is not None:
            parts.append(f"{self.gpu_name + ' ' if self.gpu_name else ''}(sm_{self.gpu.sm})")
        return ", ".join(parts)

    def environment(self) -> Environment | None:
        """The facts as an Environment, every other field unknown (None when the log reveals nothing)."""
        if not self.known:
            return None
        values: dict[str, object] = {}
        torch = self.torch or self.torch_mm_only
        if torch:
            values["torch"] = torch
            if "+" in torch:  # the local label tells the build: +cu121, +cpu, +rocm6.2
                local = torch.split("+", 1)[1]
                values["torch_cuda"] = self.torch_cuda
                values["torch_hip"] = local[4:] if local.startswith("rocm") else None
        if self.python:
            values["python"] = self.python
            values["python_abi"] = self.cp
        if self.platform:
            values["platform"] = self.platform
        for key, value in (
            ("nvcc", self.nvcc),
            ("driver", self.driver),
            ("driver_cuda", self.driver_cuda),
            ("cxx11abi", self.cxx11abi),
        ):
            if value is not None:
                values[key] = value
        if self.gpu is not None:
            values["gpus"] = (self.gpu,)
        unknown = frozenset(k for k in TARGET_KEYS if k not in values)
        return Environment(**values, unknown=unknown)  # type: ignore[arg-type]


def read_machine(facts: Mapping[str, str], contexts: Container[str]) -> LogMachine:
    """The log's machine from its facts and its (log-only) contexts: windows, macos, linux, aarch64."""
    torch = facts.get(TORCH)
    if torch:  # "2.6.0-cu126" in prose is the local label "+cu126"
        torch = _DASH_LABEL.sub(r"+\1", torch)
    torch_cuda = None
    if torch and "+cu" in torch:
        digits = torch.split("+cu", 1)[1]
        if digits.isdigit() and len(digits) >= 3:
            torch_cuda = f"{digits[:-1]}.{digits[-1]}"
    # torch installed from PyTorch's index for one CUDA (--index-url .../whl/cu118)
    torch_cuda = torch_cuda or facts.get(TORCH_INDEX_CUDA)
    python = facts.get(PYTHON)
    cxx11abi: bool | None = None
    torch_mm_only = None
    arch = "aarch64" if "aarch64" in contexts else ("x86_64" if "x86_64" in contexts else None)
    guess = _GUESS.search(facts.get(WHEEL_URL, ""))
    if guess:  # setup.py builds the name from the machine it runs on
        cxx11abi = guess["abi"].upper() == "TRUE"
        torch_mm_only = None if torch else guess["torch"]
        python = python or f"3.{guess['cp'][3:]}"
        if guess["plat"].startswith("linux_"):
            arch = arch or guess["plat"][len("linux_") :]
    os = (
        "windows"
        if "windows" in contexts
        else "macos"
        if "macos" in contexts
        else "linux"
        if "linux" in contexts
        else None
    )
    return LogMachine(
        torch=torch,
        python=python,
        os=os,
        arch=arch if os == "linux" else None,
        torch_cuda=torch_cuda,
        nvcc=facts.get(NVCC),
        driver=facts.get(DRIVER),
        driver_cuda=facts.get(DRIVER_CUDA),
        cxx11abi=cxx11abi,
        torch_mm_only=torch_mm_only,
        isolated_build="isolated_build" in contexts,
        old_gpu="pre_ampere_gpu" in contexts,
        gpu_cc=facts.get(GPU_CC),
        gpu_name=facts.get(GPU_NAME) if facts.get(GPU_CC) else None,
    )


@dataclass(frozen=True)
class Origin(FieldsJson):
    """Whether the machine's facts may tailor the fixes of a log, and why."""

    use_machine: bool
    reason: str  # "here" | "agrees: ..." | "differs: ..." | "unknown: ..." | "no machine"


def _same_version(logged: str, actual: str | None) -> bool:
    """The log's version names the machine's: equal on every component the log gives (2.8 = 2.8.0+cu128;
    2.8.0+cu126 != 2.8.0+cu128)."""
    lv, av = parse_version(logged), parse_version(actual)
    if lv is None or av is None:
        return False
    if av.release[: len(lv.release)] != lv.release or (lv.pre or lv.dev) != (av.pre or av.dev):
        return False
    return lv.local is None or av.local is None or lv.local == av.local


def env_prefix(env: Environment) -> str | None:
    """The Python environment directory of the probed interpreter (…/venv for …/venv/bin/python and
    …\\venv\\Scripts\\python.exe; the folder of python.exe itself for a conda environment or a python.org
    install on Windows), when it is specific enough to identify this machine in a log's paths."""
    exe = (env.python_executable or "").replace("\\", "/") if env.known("python_executable") else ""
    parts = exe.rsplit("/", 2)
    if len(parts) < 3:
        return None
    if parts[1].lower() in ("bin", "scripts"):
        prefix = parts[0].rstrip("/")
    elif _WINDOWS_PYTHON.fullmatch(parts[2]) and _WINDOWS_DRIVE.match(exe):
        prefix = f"{parts[0]}/{parts[1]}"
        if prefix.count("/") < 3:  # C:\Python312, C:\Program Files\Python312: an installer's default
            return None
    else:
        return None
    if prefix in _GENERIC_PREFIXES or prefix.count("/") < 2:
        return None
    return prefix


def _os_of(env: Environment) -> str | None:
    plat = env.platform if env.known("platform") else None
    if not plat:
        return None
    return "windows" if plat.startswith("win") else "macos" if plat.startswith("macosx") else "linux"


def _gpu_name(name: str) -> str:
    return " ".join(name.lower().removeprefix("nvidia ").split())


def _same_gpu(name: str, cc: tuple[int, int] | None, env: Environment) -> bool:
    """A GPU here of that compute capability has that name (torch and NVML name a GPU alike); a GPU
    here with no name may be it."""
    return any(g.cc == cc and (g.name is None or _gpu_name(g.name) == _gpu_name(name)) for g in env.gpus)


def _no_gpu(env: Environment) -> bool:
    """This machine has no NVIDIA GPU: no driver and none listed (a ROCm torch's GPUs are not listed)."""
    return (
        env.known("gpus")
        and not env.gpus
        and env.known("driver")
        and env.driver is None
        and not env.torch_hip
        and "+rocm" not in (env.torch or "")
    )


def decide_origin(env: Environment | None, log: LogMachine, text_low: bytes, here: bool) -> Origin:
    """Use ``env`` for this log's fixes? ``text_low`` is the log lower-cased with ASCII rules, as bytes.lower
    does (for this environment's directory in its paths)."""
    if env is None:
        return Origin(False, "no machine")
    if here:
        return Origin(True, "here")
    differs = []
    if log.torch and not log.isolated_build and env.known("torch"):
        if not _same_version(log.torch, env.torch):
            differs.append(f"torch {log.torch} in the log, {env.torch or 'none'} here")
    elif log.torch_mm_only and env.known("torch") and not _same_version(log.torch_mm_only, env.torch):
        differs.append(f"torch {log.torch_mm_only} in the log, {env.torch or 'none'} here")
    if (
        log.torch_cuda
        and not log.isolated_build
        and env.known("torch_cuda")
        and env.torch_cuda
        and log.torch_cuda != env.torch_cuda
    ):
        differs.append(f"torch for CUDA {log.torch_cuda} in the log, CUDA {env.torch_cuda} here")
    if log.python and env.known("python") and env.python and log.python != env.python:
        differs.append(f"Python {log.python} in the log, {env.python} here")
    here_os = _os_of(env)
    if log.os and here_os and log.os != here_os:
        differs.append(f"{log.os} in the log, {here_os} here")
    if log.arch and env.known("platform") and env.platform and not env.platform.endswith(log.arch):
        differs.append(f"{log.arch} in the log, {env.platform} here")
    if log.nvcc and env.known("nvcc"):
        found = {n.version for n in env.nvccs} | {env.nvcc}
        if log.nvcc not in found:
            differs.append(f"nvcc {log.nvcc} in the log, {env.nvcc or 'none'} here")
    if log.driver and env.known("driver") and log.driver != env.driver:
        differs.append(f"driver {log.driver} in the log, {env.driver or 'none'} here")
    ccs = [g.cc for g in env.gpus] if env.known("gpus") else []
    names = ", ".join(sorted({g.name or "?" for g in env.gpus})) if ccs else ""
    if log.old_gpu and ccs and all(cc is not None and cc >= (8, 0) for cc in ccs):
        differs.append(f"a GPU older than Ampere in the log, {names} here")
    logged = log.gpu
    if logged is not None and ccs and logged.cc not in ccs:
        differs.append(f"{log.gpu_name or 'a GPU'} (sm_{logged.sm}) in the log, {names} here")
    elif logged is not None and log.gpu_name and ccs and not _same_gpu(log.gpu_name, logged.cc, env):
        # one architecture, another GPU (an H100's log on an H200, an RTX 4090's on an L40S)
        differs.append(f"{log.gpu_name} (sm_{logged.sm}) in the log, {names} here")
    if _no_gpu(env) and (logged is not None or log.old_gpu):
        gpu = "a GPU older than Ampere" if logged is None else f"{log.gpu_name or 'a GPU'} (sm_{logged.sm})"
        differs.append(f"{gpu} in the log, no NVIDIA GPU here")
    if differs:
        return Origin(False, "differs: " + "; ".join(differs))
    prefix = env_prefix(env)
    if prefix and _names_any(text_low, _spellings(prefix)):
        return Origin(True, f"agrees: this Python environment ({prefix}) is in the log")
    if (
        log.torch
        and not log.isolated_build
        and env.known("torch")
        and _same_version(log.torch, env.torch)
        and len(getattr(parse_version(log.torch), "release", ())) >= 3  # "torch 2.8" in prose is anyone's
    ):
        # One released torch is on many machines, and so is one Python: two more facts of the log must
        # name this machine too (its torch's CUDA build, Python, GPU, nvcc or driver).
        also = _also_agrees(env, log, ccs)
        if len(also) >= 2:
            return Origin(True, f"agrees: {_and([f'torch {log.torch}', *also])} in the log and here")
        return Origin(
            False,
            f"unknown: {_and([f'torch {log.torch}', *also])} {'are' if also else 'is'} in the log and here, "
            "but nothing else the log shows names this machine (--here says it does)",
        )
    return Origin(False, "unknown: the log does not show that it comes from this machine")


@lru_cache(maxsize=16)
def _spellings(prefix: str) -> frozenset[bytes]:
    """The bytes ``prefix`` may be in a log of this machine, lower-cased as the log was (with ASCII rules,
    as bytes.lower does: C:\\Users\\Özgür stays Özgür in both): with slashes, backslashes, or doubled
    backslashes (a repr of a Windows path). A Windows path also as os.path.normcase writes it (lower-cased
    with Unicode rules: c:\\users\\özgür), and a non-ASCII one as a Windows machine writes it besides in
    UTF-8 (_in_code_pages). Each also as scan.normalise left it in the log (a no-break space a space)."""
    windows = _WINDOWS_DRIVE.match(prefix) is not None
    names = {prefix, prefix.lower()} if windows else {prefix}  # Windows paths ignore case; Linux ones do not
    texts = {n.replace("/", sep) for n in names for sep in ("/", "\\", "\\\\")}
    out = {t.encode("utf-8", errors="replace") for t in texts}
    for text in texts if windows and not prefix.isascii() else ():
        out |= _in_code_pages(text)
    out |= {normalise(spelling) for spelling in out}  # as the log was: no-break spaces, curly quotes...
    return frozenset(spelling.lower() for spelling in out)


def _in_code_pages(text: str) -> set[bytes]:
    """``text`` as a Windows machine of each locale family (knowledge.code_pages) writes it in a log: in each
    of its code pages (a console's redirection, Notepad's "ANSI"; Иван is C8 E2 E0 ED in cp1251), and as one
    of its consoles or tools shows it having decoded its bytes in one of them, or in UTF-8, with another
    (Иван written in cp866, read in cp1251: "€ў\\xa0\\xad"; 张三 in UTF-8 read in cp936: "寮犱笁"), saved then
    as UTF-8. One machine has one OEM and one ANSI code page, so each family's own, not across families:
    a few dozen spellings, not every pair of every code page. A code page that cannot write or read the
    text gives none ("?" names no directory for sure)."""
    out: set[bytes] = set()
    for family in code_page_families():
        written = {"utf-8": text.encode("utf-8")}
        for codec in family.codecs:
            with contextlib.suppress(UnicodeEncodeError):
                written[codec] = text.encode(codec)
        out.update(raw for codec, raw in written.items() if codec != "utf-8")
        for codec, raw in written.items():
            for reader in family.codecs:
                if reader != codec:
                    with contextlib.suppress(UnicodeDecodeError):
                        out.add(raw.decode(reader).encode("utf-8"))
    return out


def _names_any(text_low: bytes, spellings: frozenset[bytes]) -> bool:
    """One of ``spellings`` is in the text as a whole directory name (_names_directory). They share a few
    ASCII heads, the bytes before the first non-ASCII one (c:\\users\\ for every code page's C:\\Users\\Иван):
    one literal look for each in a 10 MB log, and where it is there one regex of every spelling (a trie)
    tried at each place it is: the work grows with the log, not with the number of spellings."""
    heads = {s[: next((i for i, b in enumerate(s) if b >= 0x80), len(s))] for s in spellings}
    found = [head for head in heads if head in text_low]
    return bool(found) and _names_directory(text_low, spellings, found)


# A byte that goes on a directory's name: an ASCII letter, digit, _ or -, or any non-ASCII byte (a letter in
# UTF-8 or a code page), except a code page's typographic quote (cp1252 0x91-0x94, ‘’“”) standing at the
# name's edge: an opening one after no name byte, a closing one before none ("“C:\Users\ana\venv”"). In
# cp437/cp850 the same bytes are æÆôö, so one inside a name (0x94 then "\lib") still goes on it. (UTF-8's
# typographic quotes are ASCII ones by now: scan.normalise.)
_NAME_BYTE = rb"[\w\x80-\xff-]"
_QUOTE = rb"[\x91-\x94]"
_EDGE = rb"[^\w.\x80-\xff/\\-]"  # no part of a path
_BEFORE = rb"(?:(?<![\w.\x80-\xff-])|(?<=^" + _QUOTE + rb")|(?<=" + _EDGE + _QUOTE + rb"))"
_AFTER = rb"(?!(?!" + _QUOTE + rb"(?:" + _EDGE + rb"|$))" + _NAME_BYTE + rb"|\.\w|" + _NOT_ITS_OWN + rb")"


def _names_directory(text_low: bytes, directories: frozenset[bytes], heads: list[bytes]) -> bool:
    """One of ``directories`` is in the text as a whole directory name, at a place where one of ``heads``
    (their beginnings) is: /home/ana/fa in /home/ana/fa/lib/..., not in /home/ana/fa-old/lib/...,
    /home/ana/faé/... or /dataé/home/ana/fa/... (a non-ASCII byte goes on the name, on either side:
    _NAME_BYTE, but a code page's typographic quote around it is none) nor /data/home/ana/fa/... (other
    environments), nor in /home/ana/miniconda3/envs/fa/... or /home/ana/miniconda3/pkgs/... (_NOT_ITS_OWN)."""
    pattern = _directory_pattern(directories)
    for head in heads:
        at = text_low.find(head)  # a literal find first: the lookbehind regex alone tries every byte
        while at >= 0:
            if pattern.match(text_low, at):  # the lookbehind still sees the bytes before ``at``
                return True
            at = text_low.find(head, at + 1)
    return False


@lru_cache(maxsize=16)  # one machine's spellings, for every log explained with it
def _directory_pattern(directories: frozenset[bytes]) -> re.Pattern[bytes]:
    return re.compile(_BEFORE + b"(?:" + trie_regex(directories).pattern + b")" + _AFTER)


def _and(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _also_agrees(env: Environment, log: LogMachine, ccs: list[tuple[int, int] | None]) -> list[str]:
    """The facts of the log besides its torch release that name ``env``: the CUDA its torch was built for
    (or its +cpu / +rocm label), its Python, GPU, nvcc and driver. Called once nothing disagrees, so a fact the log shows here is one
    that matched."""
    found = []
    local = log.torch.partition("+")[2] if log.torch else ""
    if log.isolated_build:
        pass  # the torch in the log may be a download for the build, not the machine's
    elif log.torch_cuda and env.known("torch_cuda") and env.torch_cuda:
        found.append(f"CUDA {log.torch_cuda}")
    elif local and env.known("torch") and (env.torch or "").partition("+")[2] == local:
        found.append(f"its +{local} build")  # torch's +cpu / +rocm6.2 label, as the machine's
    if log.python and env.known("python") and env.python:
        found.append(f"Python {log.python}")
    if log.gpu is not None and ccs:
        found.append(f"{log.gpu_name or 'the GPU'} (sm_{log.gpu.sm})")
    elif log.old_gpu and ccs:
        found.append("a GPU older than Ampere")
    if log.nvcc and env.known("nvcc"):
        found.append(f"nvcc {log.nvcc}")
    if log.driver and env.known("driver"):
        found.append(f"driver {log.driver}")
    return found
