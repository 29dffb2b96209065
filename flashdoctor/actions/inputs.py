"""The files a user hands flashdoctor: one bounded reader for all of them.

``--target FILE``, ``--plan FILE``, ``--index FILE``, ``$FLASHDOCTOR_WHEELS_INDEX`` and ``explain FILE | -``
are untrusted. Every read here is bounded in size (a cap per kind of input), never blocks on opening a
FIFO, reads a device or a pipe as a stream up to the cap, checks UTF-8 and JSON nesting depth, and turns
each problem into a UsageError (exit 2) that says what was wrong. The files a user names for output are
written here too (:func:`write_json`).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, AnyStr, NamedTuple

from flashdoctor.decide.wheels.index import MAX_INDEX_BYTES, Keep
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.data import JSON_MAX_DEPTH
from flashdoctor.knowledge.data import parse_json as data_parse_json
from flashdoctor.model.target import MAX_BYTES as TARGET_SPEC_MAX_BYTES

if TYPE_CHECKING:
    from flashdoctor.decide.checks import WheelFinder
    from flashdoctor.decide.explain import Skipped
    from flashdoctor.decide.explain.engine import Releases
    from flashdoctor.decide.wheels import WheelIndex
    from flashdoctor.model.environment import Environment

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
TARGET_MAX_BYTES = TARGET_SPEC_MAX_BYTES  # 1 MiB: a target spec is a few KiB
PLAN_MAX_BYTES = 1 * MiB  # a plan is a few KiB
INDEX_MAX_BYTES = MAX_INDEX_BYTES  # 64 MiB: the bundled index is ~2 MiB
# Beyond this, explain reads the head and the tail of a log (a build log of a few hundred MB takes ~25 s
# to scan whole; 32 MiB, ~2 s): the head is its first eighth (the command, the versions), the tail the
# rest (the errors are at the end; ninja stops at the first failed job).
LOG_WINDOW_BYTES = 32 * MiB
LOG_HEAD_SHARE = 8
# A piped "log" longer than this is an endless stream (`yes | flashdoctor explain -`): a few times the
# largest real build logs (hundreds of MB), a few seconds of reading (16 GiB took about a minute).
LOG_STREAM_MAX_BYTES = 1 * GiB
BINARY_SNIFF_BYTES = 64 * KiB
_CHUNK = 1 * MiB
# Control bytes that text logs carry (tab, newlines, form feed, backspace, ESC of colour codes).
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")


def _size(n: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n:,} bytes"


def _open(path: str, what: str) -> tuple[IO[bytes], os.stat_result]:
    """A binary stream on ``path`` and its stat. Opening never waits for a FIFO's writer (a FIFO
    without one reads as empty); directories and missing files are UsageErrors."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a {what} file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise UsageError(f"{path} is a directory, not a {what} file")
    if not stat.S_ISREG(st.st_mode) and hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)  # a pipe or device is read as a stream: wait for its data
    return os.fdopen(fd, "rb"), st


def _read_stream(fh: IO[bytes], limit: int) -> bytes:
    """Up to ``limit + 1`` bytes (one more than allowed tells "too large")."""
    parts, n = [], 0
    while n <= limit:
        chunk = fh.read(min(_CHUNK, limit + 1 - n))
        if not chunk:
            break
        parts.append(chunk)
        n += len(chunk)
    return b"".join(parts)


def read_bytes(path: str, what: str, max_bytes: int) -> bytes:
    """The whole content of a user's file, at most ``max_bytes`` (else a UsageError saying so)."""
    fh, st = _open(path, what)
    with fh:
        if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
            raise UsageError(
                f"{what} {path} is {_size(st.st_size)}: more than the {_size(max_bytes)} allowed"
            )
        try:
            data = _read_stream(fh, max_bytes)
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UsageError(
            f"{what} {path} holds more than the {_size(max_bytes)} allowed"
            + ("" if stat.S_ISREG(st.st_mode) else " (it is not a regular file: an endless stream?)")
        )
    _written_to(data, path, what, st)
    return data


def _written_to(data: bytes, path: str, what: str, st: os.stat_result) -> None:
    """A UsageError for a FIFO that gave nothing: no writer had it open (the open did not wait for one)."""
    if not data and stat.S_ISFIFO(st.st_mode):
        raise UsageError(f"{what} {path} is a FIFO with nothing written to it")


def parse_json(data: bytes, where: str, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """A JSON document from untrusted bytes (knowledge.data.parse_json): UTF-8 (a leading BOM allowed),
    nested at most ``max_depth`` levels. ``where`` names it in the messages ("target spec FILE")."""
    return data_parse_json(data, where, UsageError, max_depth)


def read_json(path: str, what: str, max_bytes: int, max_depth: int = JSON_MAX_DEPTH) -> Any:
    return parse_json(read_bytes(path, what, max_bytes), f"{what} {path}", max_depth)


# -- the typed inputs ---------------------------------------------------------------------------------
def load_target(path: str) -> Environment:
    """``--target FILE``: a target spec (README "Target spec") as an Environment."""
    from flashdoctor.model.target import TargetSpecError, target_from_bytes

    data = read_bytes(path, "target spec", TARGET_MAX_BYTES)
    try:
        return target_from_bytes(data, f"target spec {path}")
    except TargetSpecError as exc:
        raise UsageError(str(exc)) from None


def user_index_path(index_path: str | None, environ: Mapping[str, str]) -> str | None:
    """The wheel index the user named (``--index FILE``, else ``$FLASHDOCTOR_WHEELS_INDEX``), or None."""
    from flashdoctor.decide.wheels.index import ENV_VAR

    return index_path or environ.get(ENV_VAR) or None


def load_wheel_index(
    index_path: str | None, environ: Mapping[str, str], keep: Keep | None = None
) -> WheelIndex:
    """The wheel index to select from: the user's (bounded read, cached validation), else the refreshed
    one while it is newer than the bundled one (flashdoctor.actions.wheel_index), else the bundled one.
    ``keep``: parse only the entries whose filename it keeps, where the content passed validation before
    (decide.wheels.index.index_from_bytes)."""
    from flashdoctor.actions.wheel_index import current_index
    from flashdoctor.decide.wheels.index import WheelIndexError, index_from_bytes, load_index

    path = user_index_path(index_path, environ)
    if path is None:
        location = current_index(None, environ, dated=False)
        try:
            return load_index(location.path, keep=keep)
        except WheelIndexError as exc:
            if location.kind == "refreshed" and exc.hint is None:
                exc.hint = (
                    "flashdoctor wheels --refresh wrote it: run that again (online) to rewrite it, or "
                    f"delete {location.path} to use the bundled index"
                )
            raise
    try:
        data = read_bytes(path, "wheel index", INDEX_MAX_BYTES)
        doc = parse_json(data, f"wheel index {path}")
    except WheelIndexError:
        raise
    except UsageError as exc:
        raise WheelIndexError(exc.message, hint=exc.hint) from None
    return index_from_bytes(data, doc, origin=path, keep=keep)


def read_wheel_index_ahead(environ: Mapping[str, str]) -> None:
    """Read and parse the default index's JSON now (cached for load_wheel_index), while a probe runs;
    a user's index (--index, $FLASHDOCTOR_WHEELS_INDEX) is read where it is used. Errors are left for
    that use to report."""
    from flashdoctor.actions.wheel_index import current_index
    from flashdoctor.decide.wheels.index import WheelIndexError, read_index_document

    if user_index_path(None, environ) is None:
        with contextlib.suppress(WheelIndexError):
            read_index_document(current_index(None, environ, dated=False).path)


def wheel_finder(environ: Mapping[str, str], say: Callable[[str], None] | None = None) -> WheelFinder | None:
    """The WheelFinder of check, explain and a cluster rank over the default index (the user's, the
    refreshed or the bundled one), loaded at its first use and then only the entries whose tags the
    environment accepts (target.TagFilter: the best fit is the same); None (after telling ``say``) when
    there is no index at all."""
    from flashdoctor.actions.wheel_index import current_index
    from flashdoctor.decide.wheels import WheelIndexError, find_wheel
    from flashdoctor.decide.wheels.target import tag_filter

    if user_index_path(None, environ) is None:
        try:
            current_index(None, environ, dated=False)
        except WheelIndexError as exc:
            if say is not None:
                say(f"{exc.message}; verdicts do not consider prebuilt wheels")
            return None
    loaded: dict[Keep, WheelIndex] = {}

    def find(env: Environment, variant: Any) -> str | None:
        keep = tag_filter(env)
        if keep not in loaded:
            loaded[keep] = load_wheel_index(None, environ, keep)
        return find_wheel(env, variant, loaded[keep])

    return find


def release_table(environ: Mapping[str, str]) -> Releases | None:
    """explain's release table: the newest torch each flash-attn release has wheels for from its own
    publishers, read from the default index (the user's, the refreshed or the bundled one); None when there is none."""
    from flashdoctor.actions.wheel_index import current_index
    from flashdoctor.decide.wheels.index import WheelIndexError, read_index_document, release_torch

    try:
        doc = read_index_document(current_index(None, environ, dated=False).path)[1]
    except (WheelIndexError, UsageError):
        return None
    return release_torch(doc) or None


# -- explain's log --------------------------------------------------------------------------------------
def _looks_binary(sample: bytes) -> bool:
    """NUL bytes (as git and grep judge), or more than 10% control bytes a log does not carry. A UTF-16
    log (PowerShell's ``>`` writes a byte-order mark first; one without may be either byte order) is
    text: the engine decodes it."""
    from flashdoctor.decide.explain.scan import utf16

    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16(sample) is not None:
        return False
    if b"\0" in sample:
        return True
    controls = sum(1 for b in sample if b < 0x20 and b not in _TEXT_CONTROLS)
    return len(sample) > 0 and controls > len(sample) // 10


def _not_text(name: str) -> UsageError:
    return UsageError(
        f"{name} is not a text log (it holds binary data)",
        hint="give flashdoctor explain the captured output of the failing command, e.g. "
        "pip install flash-attn 2>&1 | tee install.log",
    )


class Log(NamedTuple):
    """explain's log as read: its bytes (the head and the tail of a long one), a name for it, and what was
    skipped between them."""

    data: bytes
    name: str
    skipped: Skipped | None = None


def _codec(head: bytes) -> str | None:
    """The log's UTF-16 codec with its byte order (judged on its head, as the engine judges it), or None
    for a log of single-byte line breaks (UTF-8, ASCII)."""
    from flashdoctor.decide.explain.scan import utf16

    codec = utf16(head)
    if codec == "utf-16":  # the byte-order mark says which
        codec = "utf-16-be" if head.startswith(b"\xfe\xff") else "utf-16-le"
    return codec


class _Breaks:
    """Line breaks counted over consecutive chunks of a log, as scan.normalise reads them ("\\r\\n", a
    lone "\\r", "\\n"): the lines of a part that is not read. A UTF-16 log is counted on its decoded
    text (a chunk may end inside a character; the byte pair of a break may sit across two characters):
    decoding is C-fast, and counting its code units as bytes was slower still."""

    def __init__(self, codec: str | None) -> None:
        self.decoder = codecs.getincrementaldecoder(codec)(errors="replace") if codec else None
        self.count = self.bytes = 0
        self.cr = False

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self.decoder is None:
            self._lines(chunk, b"\r", b"\n")
        else:
            self._lines(self.decoder.decode(chunk), "\r", "\n")

    def _lines(self, data: AnyStr, cr: AnyStr, lf: AnyStr) -> None:
        if data:
            self.count += data.count(lf) - (self.cr and data.startswith(lf))
            if cr in data:  # found at memchr's speed; most logs have none, and counting is a slower pass
                self.count += data.count(cr) - data.count(cr + lf)
            self.cr = data.endswith(cr)


def _whole_lines(head: bytes, newline: bytes) -> bytes:
    """``head`` up to its last line break (on a whole code unit); empty when it has none."""
    end = head.rfind(newline)
    while end > 0 and end % len(newline):
        end = head.rfind(newline, 0, end)
    return head[: end + len(newline)] if end >= 0 else b""


def _tail_start(region: bytes, offset: int, keep: int, newline: bytes) -> int:
    """Where the tail starts in ``region`` (which starts at ``offset`` in the log): its last ``keep`` bytes,
    from a whole code unit, past a line break it would start with (the break ends a line of the middle)."""
    i = max(0, len(region) - keep)
    i += (offset + i) % len(newline)
    return i + len(newline) if region.startswith(newline, i) else i


def _skipped(head: bytes, middle: _Breaks, codec: str | None) -> Skipped:
    from flashdoctor.decide.explain import Skipped

    lines = _Breaks(codec)
    lines.feed(head)
    return Skipped(after_line=lines.count, lines=middle.count, bytes=middle.bytes)


def _tail_window(fh: IO[bytes], first: bytes, name: str, window: int, size: int | None) -> Log:
    """Read ``fh`` to its end (a regular file up to its ``size``), keeping the head (whole lines of the
    first ``window // 8`` bytes) and the last bytes up to ``window``, counting the lines of the middle:
    linear in the stream (a deque of chunks, each byte copied once) and bounded in memory."""
    codec = _codec(first)
    newline = "\n".encode(codec or "ascii")
    head = _whole_lines(first[: window // LOG_HEAD_SHARE], newline)
    keep = window - window // LOG_HEAD_SHARE
    middle = _Breaks(codec)
    rest = first[len(head) :]
    tail: collections.deque[bytes] = collections.deque([rest] if rest else [])
    kept, total = len(rest), len(first)
    while True:
        chunk = fh.read(_CHUNK if size is None else min(_CHUNK, max(0, size - total)))
        if not chunk:
            break
        total += len(chunk)
        if size is None and total > LOG_STREAM_MAX_BYTES:
            raise UsageError(
                f"{name}: more than {_size(LOG_STREAM_MAX_BYTES)} without an end - an endless stream, not a log"
            )
        tail.append(chunk)
        kept += len(chunk)
        while tail and kept - len(tail[0]) >= keep:
            kept -= len(tail[0])
            middle.feed(tail.popleft())
    last = b"".join(tail)
    start = _tail_start(last, total - len(last), keep, newline)
    middle.feed(last[:start])
    return Log(head + last[start:], name, _skipped(head, middle, codec))


def read_log(path: str | None, stdin: IO[bytes] | None, stdin_is_tty: bool, window: int | None = None) -> Log:
    """explain's log: its bytes, a name for it and what was skipped. Longer than ``window`` (default
    LOG_WINDOW_BYTES), only its head and its tail are read: the middle is read only to count its lines
    (a regular file's too, so the evidence has its line number in the whole log). ``None`` or "-" read
    ``stdin`` (None: it is closed). Binary data, endless streams and files that cannot be read are
    UsageErrors."""
    window = LOG_WINDOW_BYTES if window is None else window
    if path is None or path == "-":
        if stdin is None or (path is None and stdin_is_tty):
            raise UsageError(
                ("standard input is closed: " if stdin is None else "") + "give a log file, or pipe one in",
                hint="flashdoctor explain build.log   |   pip install flash-attn 2>&1 | flashdoctor explain -",
            )
        return _read_log(contextlib.nullcontext(stdin), "<stdin>", window, None)
    fh, st = _open(path, "log")
    log = _read_log(fh, path, window, st.st_size if stat.S_ISREG(st.st_mode) else None)
    _written_to(log.data, path, "log", st)
    return log


def _read_log(
    opened: contextlib.AbstractContextManager[IO[bytes]], name: str, window: int, size: int | None
) -> Log:
    """The log in ``opened`` (closed after, unless it is stdin), read as a stream: one reader for a file,
    a pipe, a FIFO and a device. ``size`` is a regular file's (read up to it, however long); None for a
    stream, which is cut off as endless past LOG_STREAM_MAX_BYTES. A read error is a UsageError naming it."""
    with opened as fh:
        try:
            first = fh.read(BINARY_SNIFF_BYTES)
            if _looks_binary(first):
                raise _not_text(name)
            data = first + _read_stream(fh, window - len(first))
            if len(data) <= window:
                return Log(data, name)
            return _tail_window(fh, data, name, window, size)
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None


# -- output files the user names -------------------------------------------------------------------------
def check_output_path(path: str) -> None:
    """UsageError unless ``path`` names a file that can be written: checked before a run (a bench of
    minutes, a cluster's check), not found out at its end."""
    p = os.path.expanduser(path)
    if os.path.isdir(p):
        raise UsageError(f"{path} is a directory")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{parent} is not a writable directory")


def write_text(path: str, text: str) -> None:
    """Write a file the user named (--save-target, -o), whole or not at all: a regular file (or a new one)
    is written beside itself under a temporary name and renamed over it, so a full disk or a kill never
    leaves it cut short (a lock file's head without its hash line installs nothing, and says nothing) and
    the previous file stays until the new one is complete. Its mode is kept (a new one gets the umask's);
    through a link, the file the link names is replaced. Anything else (a FIFO, /dev/stdout) is written to."""
    write_texts({path: text})


def write_texts(files: Mapping[str, str]) -> None:
    """Several files the user named (`lock --format all -o BASE`), as :func:`write_text` writes one, and
    all or none: every new text is written beside its file first, and only when all are complete are they
    renamed over their files; on a failure the temporaries are removed and every file is as it was. What
    is not a regular file (a FIFO, /dev/stdout) is written to after the renames."""
    from flashdoctor.actions.cache import fsync_dir, write_temp  # only when a file is written

    temps: list[tuple[Path, Path, str]] = []  # (temporary, the file it replaces, its name as given)
    parents: dict[Path, None] = {}
    direct: list[tuple[str, str]] = []
    path = ""
    try:
        try:
            for path, text in files.items():
                try:
                    st: os.stat_result | None = os.stat(path)
                except FileNotFoundError:
                    st = None
                if st is not None and not stat.S_ISREG(st.st_mode):
                    direct.append((path, text))
                    continue
                if st is not None:
                    mode = stat.S_IMODE(st.st_mode)
                else:
                    umask = os.umask(0o022)
                    os.umask(umask)
                    mode = 0o666 & ~umask
                real = Path(os.path.realpath(path))
                real.parent.mkdir(parents=True, exist_ok=True)
                temps.append((write_temp(real, text.encode("utf-8"), mode=mode), real, path))
            while temps:
                tmp, real, path = temps[0]
                os.replace(tmp, real)
                temps.pop(0)
                parents[real.parent] = None
        finally:
            for tmp, _real, _path in temps:  # not renamed: the files stay as they were
                with contextlib.suppress(OSError):
                    tmp.unlink()
        for parent in parents:
            fsync_dir(parent)
        for path, text in direct:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(path: str, data: object) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
