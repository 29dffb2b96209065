"""Every option that more than one command takes, declared once; and the one BuildRequest builder.

A new variant in knowledge/variants (VARIANTS + its title) gets its --faN flag on every command here.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from flashdoctor.actions.inputs import check_output_path
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.profiles import FA3_FEATURES
from flashdoctor.knowledge.variants import VARIANTS, Variant, variant_info
from flashdoctor.model.cases import BACKENDS
from flashdoctor.render.text import commands_paused

if TYPE_CHECKING:
    from flashdoctor.actions.source_build.api import BuildOptions
    from flashdoctor.knowledge.profiles import BuildVariant

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]  # an option decorator, as click.option returns


def combine(*decorators: Decorator) -> Decorator:
    """Apply decorators in the order they would be written above a function (top first)."""

    def apply(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def declared(group: Decorator) -> list[click.Parameter]:
    """The parameters a group of options (``combine``) declares, in the order written."""
    return click.command()(group(lambda **_: None)).params


def examples(*lines: str) -> str:
    """A click epilog: an "Examples:" block, kept as written (click's \\b marker stops rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


# -- values ------------------------------------------------------------------------------------------------
class NonEmptyText(click.types.StringParamType):
    """click's STRING, but an empty value is a usage error. Every command read ``--target ""`` (an unset
    shell variable: ``--target "$SPEC"``) as no --target at all, and so for ``--python``, ``--plan``,
    ``--index``, ``--wheelhouse``, ``--version``...: check probed this machine instead of the described
    one, and install --plan "" --yes installed a fresh plan instead of the one named."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        if text == "":
            self.fail("must not be empty", param, ctx)
        return text


NON_EMPTY = NonEmptyText()


def refuse_empty_values(commands: Iterable[click.Command]) -> None:
    """Give every text option and argument of ``commands`` (declared with click's default STRING type)
    the NON_EMPTY type: one rule for all of them, and for every option added later."""
    for command in commands:
        for param in command.params:
            if param.type is click.STRING:
                param.type = NON_EMPTY


# -- the machine ------------------------------------------------------------------------------------------
python_option = click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Target interpreter to diagnose / install into: a path, or a command name (python3.12) looked up on "
    "PATH. Default: the environment you are in — the Python "
    "of `python -m flashdoctor`, else the activated venv or conda env, else the first python3 on PATH that "
    "is not flashdoctor's own (its own when it has torch). The first line of the output names it.",
)
target_option = click.option(
    "--target",
    "target",
    metavar="FILE",
    help="Describe a machine in JSON instead of probing this one (docs/target-spec.md).",
)


_MACHINE = "flashdoctor.machine"
AS_MODULE = "as_module"  # key of the context's obj: flashdoctor runs as `python -m flashdoctor`


def machine(
    python: str | None, target: str | None, *, err: bool, announce: bool = True, acts: bool = False
) -> str | None:
    """The interpreter this command works on (actions.check.choose_python), remembered for the JSON
    document's ``interpreter`` field and, unless ``announce`` is False, named on the first line of the
    output (``err``: on standard error, where standard output is a document). None with --target.
    A path that links to a venv's python but runs as the base Python (probe.default_python.LinkedVenv)
    is warned about on standard error; a command that ``acts`` on the environment (install, given the path
    with --python) refuses it."""
    from flashdoctor.actions.check import choose_python

    ctx = click.get_current_context()
    as_module = bool((ctx.find_root().obj or {}).get(AS_MODULE))
    chosen = choose_python(python, target, os.environ, module_run=as_module)
    if chosen is None:
        assert target is not None
        info: dict[str, str | None] = {
            "path": None,
            "reason": "--target",
            "why": f"the machine described in {target}",
            "target": target,
        }
        line = f"target: {target}"
    else:
        info, line = dict(chosen.to_json()), f"python: {chosen.describe()}"
    ctx.meta[_MACHINE] = (info, line)
    if announce:
        announce_machine(err)
    linked = None if chosen is None else chosen.linked_venv
    if chosen is not None and linked is not None:
        message = linked.message(chosen.path, chosen.reason)
        if acts:
            raise UsageError(f"{message}, or {linked.base} to install into the base Python itself")
        from flashdoctor.render.text import echo_wrapped

        echo_wrapped(f"flashdoctor: warning: {message}", err=True)
    return None if chosen is None else chosen.path


def announce_machine(err: bool) -> None:
    """Print the line that names the interpreter (or the target spec) and why: every human output
    starts with it."""
    from flashdoctor.render.text import echo_wrapped

    found = click.get_current_context().meta.get(_MACHINE)
    if found:
        line = found[1]
        echo_wrapped(line, err=err, hang=line.index(" ") + 1)


def document(body: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """render.json.document with the ``interpreter`` this command chose (see :func:`machine`)."""
    from flashdoctor.render.json import document as envelope

    found = click.get_current_context().meta.get(_MACHINE)
    return envelope(body, interpreter=found[0] if found else None, **kwargs)


def _frame_human_output(ctx: click.Context, param: click.Parameter, as_json: bool) -> bool:
    """In GitHub Actions, a command's human output (log lines, server replies, names: untrusted text) is
    shown and never run as a workflow command: it is framed (render.text.commands_paused) until the
    command's context ends. JSON needs no frame (render.json escapes what the runner would read)."""
    if not as_json:
        ctx.with_resource(commands_paused())
    return as_json


def json_option(
    help: str = "Print the versioned JSON document (in the result envelope).", frame: bool = True
) -> Decorator:
    """--json. ``frame=False`` for a command whose human output frames itself (check: its annotations
    must run) or is data meant for a file (lock's requirements text)."""
    callback = _frame_human_output if frame else None
    return click.option("--json", "as_json", is_flag=True, help=help, callback=callback)


def verbose_option(help: str) -> Decorator:
    return click.option("-v", "--verbose", is_flag=True, help=help)


def _writable_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """-o FILE where FILE can be written, said at once: a report path in a missing directory failed only
    after the whole run (a bench of minutes, a cluster's check)."""
    if value is not None:
        try:
            check_output_path(value)
        except UsageError as exc:
            raise click.BadParameter(exc.message, ctx, param) from None
    return value


def output_option(help: str) -> Decorator:
    return click.option("-o", "--output", metavar="FILE", callback=_writable_file, help=help)


def dry_run_option(help: str) -> Decorator:
    return click.option("--dry-run", is_flag=True, help=help)


# smoke and bench: which GPU; and a hidden testing mode (toy shapes on CPU torch, so CI runs the real
# runner without a GPU).
gpu_options = combine(
    click.option(
        "--gpu", type=click.IntRange(min=0), metavar="N", help="Run on GPU N only (torch's numbering)."
    ),
    click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", hidden=True),
)

# The smoke test's backend vocabulary (model.cases), variants first: a new variant is a choice for free.
SMOKE_BACKEND_CHOICES = (*VARIANTS, *(b for b in BACKENDS if b not in VARIANTS))


def names(choices: Sequence[str]) -> click.Choice[str]:
    """The type of every option that takes variant (or backend) names: any case, as users write them
    (FA2, fa2; the Action's `require: FA2` too); the command gets the registry's spelling."""
    return click.Choice(choices, case_sensitive=False)


def backend_option(*decls: str, help: str) -> Decorator:
    """smoke --variant and bench --backend: the backends to run (repeatable), any of the smoke's."""
    return click.option(*decls, type=names(SMOKE_BACKEND_CHOICES), multiple=True, help=help)


class Seconds(click.FloatRange):
    """A FloatRange that refuses "nan": every comparison with NaN is false, so click's range let it
    through and the limit never struck (smoke --timeout nan ran with no overall limit)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


def timeout_option(
    default: float,
    help: str,
    name: str = "--timeout",
    hidden: bool = False,
    minimum: float = 1,
    maximum: float | None = None,
) -> Decorator:
    """A limit in seconds (--timeout, and the cluster preflight's --join-timeout / --rank-timeout)."""
    return click.option(
        name,
        type=Seconds(min=minimum, max=maximum),
        default=default,
        show_default=not hidden,
        metavar="SECONDS",
        help=help,
        hidden=hidden,
    )


# -- variants: --fa2 / --fa3 / --fa4 from the registry ------------------------------------------------------
_VARIANT_FLAGS = "flashdoctor.variant_flags"


def _record_variant(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value and param.name:
        ctx.meta.setdefault(_VARIANT_FLAGS, []).append(param.name)
    return value


def variant_options(variants: Sequence[Variant] = VARIANTS, default: Variant = "fa2") -> Decorator:
    """One flag per variant (its title from the registry); the command receives ``variant``. Two different
    flags are a usage error: flashdoctor does one variant at a time."""

    def decorate(f: Any) -> Any:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = list(dict.fromkeys(click.get_current_context().meta.get(_VARIANT_FLAGS, ())))
            if len(chosen) > 1:
                flags = " and ".join(f"--{v}" for v in chosen)
                raise UsageError(f"{flags}: choose one variant (flashdoctor works on one at a time)")
            return f(*args, variant=chosen[0] if chosen else default, **kwargs)

        out: Any = wrapper
        for v in reversed(variants):
            info = variant_info(v)
            out = click.option(
                f"--{v}",
                v,
                is_flag=True,
                expose_value=False,
                callback=_record_variant,
                help=f"{info.title}, package {info.dist}" + (" (default)" if v == default else "") + ".",
            )(out)
        return out

    return decorate


def variant_given() -> Variant | None:
    """The variant flag given on the command line (variant_options), None where none was: the command's
    ``variant`` is then its default."""
    chosen = click.get_current_context().meta.get(_VARIANT_FLAGS, ())
    return chosen[0] if chosen else None


# -- wheel selection ---------------------------------------------------------------------------------------
selection_options = combine(
    click.option(
        "--version",
        "version_spec",
        metavar="SPEC",
        help="Only versions matching SPEC ('2.8.3', '>=2.7,<2.8').",
    ),
    click.option(
        "--allow-community", is_flag=True, help="Also consider community builds (after official ones)."
    ),
    click.option(
        "--index",
        "index_path",
        metavar="FILE",
        help="Select from this wheel index instead of the bundled wheels_index.json.",
    ),
)


def plan_file_option(verb: str) -> Decorator:
    return click.option(
        "--plan",
        "plan_file",
        metavar="FILE",
        help=f"{verb} exactly this plan (as printed by install --dry-run --json).",
    )


# -- where packages come from ------------------------------------------------------------------------------
wheelhouse_option = click.option(
    "--wheelhouse",
    metavar="DIR",
    help="A directory of wheels: install and lock read it before the network and store downloads in it; "
    "build stores its wheel there, keyed by an environment fingerprint (and reuses one found there).",
)
index_url_option = click.option(
    "--index-url",
    metavar="URL",
    help="A PEP 503/691 simple index to fetch the package from: the wheel (install, lock: instead of its "
    "origin) or the sdist (build; default https://pypi.org/simple).",
)
allow_http_option = click.option(
    "--allow-http",
    is_flag=True,
    help="Allow plain-http URLs (a trusted mirror on your own network); loopback always may.",
)
fetch_options = combine(wheelhouse_option, index_url_option, allow_http_option)

# -- source builds: `build` and `install --from-source` ------------------------------------------------------
source_build_options = combine(
    click.option(
        "--source", metavar="PATH|URL", help="FA2: sdist archive or source tree; FA3: checkout or git URL."
    ),
    click.option("--ref", metavar="TAG", help="FA3: git tag or branch of a --source URL."),
    click.option(
        "--arch",
        metavar="LIST",
        help="Compute capabilities to build for, e.g. 80,90 (default: the GPUs here).",
    ),
    click.option("--head-dims", metavar="LIST", help="Only these head dims, e.g. 64,128 (minimal build)."),
    click.option("--dtypes", metavar="LIST", help="Only these dtypes: fp16, bf16 (minimal build)."),
    click.option(
        "--max-jobs",
        type=click.IntRange(1, 1024),
        help="Parallel compile jobs (MAX_JOBS; default from cores and memory).",
    ),
    click.option(
        "--nvcc-threads",
        type=click.IntRange(1, 64),
        help="Threads per nvcc (NVCC_THREADS; default: one per arch, ≤ 4).",
    ),
    *(
        click.option(
            f"--no-{name}",
            "disable",
            flag_value=name,
            multiple=True,
            help=f"FA3: do not compile the {name} kernels (its FLASH_ATTENTION_DISABLE_* switch).",
        )
        for name in FA3_FEATURES
    ),
)
SOURCE_BUILD_PARAMS = ("source", "ref", "arch", "head_dims", "dtypes", "max_jobs", "nvcc_threads", "disable")


def build_options(
    variant: Variant,
    *,
    source: str | None,
    ref: str | None,
    arch: str | None,
    head_dims: str | None,
    dtypes: str | None,
    max_jobs: int | None,
    nvcc_threads: int | None,
    disable: Sequence[str] = (),
    wheelhouse: str | None = None,
    index_url: str | None = None,
    version: str | None = None,
    log: str | None = None,
    work_dir: str | None = None,
    keep_work: bool = False,
    rebuild: bool = False,
    ignore_preflight: bool = False,
    allow_http: bool = False,
) -> BuildOptions:
    """The one parser of the source-build options (`build`, `install --from-source`) into BuildOptions."""
    from flashdoctor.actions.source_build.api import BuildOptions
    from flashdoctor.decide.source_build.plan import BuildRequest
    from flashdoctor.knowledge.profiles import parse_archs, parse_dtypes, parse_head_dims

    request = BuildRequest(
        variant=cast("BuildVariant", variant),  # check_buildable / the build command's flags ran first
        archs=parse_archs(arch) if arch else None,
        head_dims=parse_head_dims(head_dims) if head_dims else None,
        dtypes=parse_dtypes(dtypes) if dtypes else None,
        disable=tuple(dict.fromkeys(disable)),
        max_jobs=max_jobs,
        nvcc_threads=nvcc_threads,
    )
    if ref and variant != "fa3":
        raise UsageError("--ref is for --fa3 git sources")
    if version is not None:
        from packaging.version import InvalidVersion, Version

        if variant != "fa2":
            raise UsageError("--flash-version is for --fa2 sdists (an FA3 build takes --source and --ref)")
        try:
            version = str(Version(version))  # the sdist's own spelling: v2.8.3 -> 2.8.3
        except InvalidVersion:
            raise UsageError(f"--flash-version {version!r} is not a version (e.g. 2.8.3)") from None
    from flashdoctor.actions.install.service import check_index_url

    check_index_url(index_url, allow_http)

    def path(value: str | None) -> Path | None:
        return Path(value).expanduser() if value else None

    return BuildOptions(
        request=request,
        source=source,
        version=version,
        ref=ref,
        wheelhouse=path(wheelhouse),
        log=path(log),
        work_dir=path(work_dir),
        keep_work=keep_work,
        rebuild=rebuild,
        ignore_preflight=ignore_preflight,
        allow_http=allow_http,
        **({"index_url": index_url} if index_url else {}),
    )
