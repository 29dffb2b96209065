"""The one bounded reader of user input (flashdoctor/actions/inputs.py), on its own and through the
commands that read --target, --plan, --index, FLASHDOCTOR_WHEELS_INDEX and explain FILE / - (issue 15
rows 10, 12, 14): endless streams, FIFOs, deep nesting, non-UTF-8 bytes -> exit 2 with the reason."""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.actions import inputs
from flashdoctor.cli import main
from flashdoctor.decide.explain import explain_bytes
from flashdoctor.errors import UsageError
from tests.support.paths import TARGETS

H100 = str(TARGETS / "h100.json")


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    return str(path)


# -- the reader ----------------------------------------------------------------------------------------
def test_size_cap_of_a_regular_file_is_checked_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(inputs.TARGET_MAX_BYTES + 1)  # sparse: nothing to read, only the size says no
    with pytest.raises(UsageError, match=r"target spec .* is 1,048,577 bytes: more than the 1 MiB allowed"):
        inputs.read_bytes(str(big), "target spec", inputs.TARGET_MAX_BYTES)


def test_an_endless_device_is_cut_at_the_cap() -> None:
    t0 = time.monotonic()
    with pytest.raises(UsageError, match=r"more than the 1 MiB allowed .*not a regular file"):
        inputs.read_bytes("/dev/zero", "target spec", inputs.TARGET_MAX_BYTES)
    assert time.monotonic() - t0 < 5


def test_a_fifo_without_a_writer_does_not_block(fifo: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(UsageError, match="is a FIFO with nothing written to it"):
        inputs.read_bytes(fifo, "plan", inputs.PLAN_MAX_BYTES)
    assert time.monotonic() - t0 < 5


def test_a_fifo_with_a_writer_is_read(fifo: str) -> None:
    def write() -> None:
        with open(fifo, "w") as fh:
            fh.write('{"ok": true}')

    # The writer blocks in open() until a reader comes; the reader opens without waiting, so the writer
    # may arrive after the first read: retry until its data is there (bounded).
    t = threading.Thread(target=write, daemon=True)
    t.start()
    for _ in range(200):
        try:
            assert inputs.read_json(fifo, "plan", inputs.PLAN_MAX_BYTES) == {"ok": True}
            break
        except UsageError:
            time.sleep(0.01)
    else:
        pytest.fail("the FIFO's data never arrived")
    t.join(5)


@pytest.mark.parametrize("depth", [65, 5000, 200_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    with pytest.raises(UsageError, match=r"is nested too deeply \(more than 64 levels\)"):
        inputs.parse_json(deep(depth).encode(), "plan x")
    inputs.parse_json(deep(64).encode(), "plan x")  # 64 levels are fine


def test_bad_bytes_and_bad_json_say_why() -> None:
    with pytest.raises(UsageError, match=r"not UTF-8 text \(byte 0xff at offset 9\)"):
        inputs.parse_json(b'{"torch":\xff}', "target spec t.json")
    with pytest.raises(UsageError, match=r"not valid JSON: .* at line 2"):
        inputs.parse_json(b"{\n  ]", "plan p.json")
    with pytest.raises(UsageError, match="not valid JSON"):
        inputs.parse_json(b"1" * 5000, "plan p.json")  # more digits than Python converts
    assert inputs.parse_json(b'\xef\xbb\xbf{"a": 1}', "x") == {"a": 1}  # a UTF-8 BOM is fine


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e99999"])
def test_a_number_too_large_for_a_float_is_not_json_infinity(number: str) -> None:
    """Python's reader turns 1e400 into inf without a word: "memory_gb": 1e400 then made check --json print
    Infinity, as NaN and Infinity once did."""
    with pytest.raises(UsageError, match=rf"target spec t.json is not valid JSON: {number} is too large"):
        inputs.parse_json(f'{{"memory_gb": {number}}}'.encode(), "target spec t.json")
    assert inputs.parse_json(b'{"memory_gb": 1e300}', "x") == {"memory_gb": 1e300}


def test_an_integer_too_large_for_a_float_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400-digit "memory_gb" crashed check (OverflowError: int too large to convert to float)."""
    spec = tmp_path / "big.json"
    spec.write_text('{"python": "3.12", "torch": null, "memory_gb": 1' + "0" * 400 + "}")
    code, err = run_main(["check", "--target", str(spec)], capsys)
    assert code == 2
    assert "is not valid JSON: 1000" in err and "is too large for a number" in err
    assert inputs.parse_json(b'{"cpus": 4096}', "x") == {"cpus": 4096}


def test_a_key_given_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Python's reader keeps the last of two "python" keys, so a spec pasted together from two machines
    was judged as one of them without a word (last wins in one reader, first in another)."""
    spec = tmp_path / "dup.json"
    spec.write_text('{"python": "3.12", "platform": "linux_x86_64", "gpus": [], "python": "3.11"}')
    code, err = run_main(["wheels", "--target", str(spec)], capsys)
    assert code == 2
    assert f"target spec {spec} is not valid JSON: the key 'python' appears twice in one object" in err
    with pytest.raises(UsageError, match="the key 'name' appears twice"):
        inputs.parse_json(b'{"gpus": [{"name": "a", "name": "b"}]}', "target spec t.json")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    """Python's json reader takes them; a spec with "memory_gb": NaN then made check --json print NaN,
    which no JSON reader (jq, JSON.parse) accepts."""
    with pytest.raises(
        UsageError, match=rf"target spec t.json is not valid JSON: {constant} is not a JSON number"
    ):
        inputs.parse_json(f'{{"memory_gb": {constant}}}'.encode(), "target spec t.json")


def test_directories_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory, not a plan file"):
        inputs.read_bytes(str(tmp_path), "plan", 10)
    with pytest.raises(UsageError, match=r"cannot read plan .*No such file"):
        inputs.read_bytes(str(tmp_path / "nope"), "plan", 10)


# -- explain's log -------------------------------------------------------------------------------------
def test_log_window_keeps_head_and_tail() -> None:
    data = b"".join(b"line %08d\n" % i for i in range(200_000))  # 2.8 MB
    got = inputs.read_log("-", io.BytesIO(data), False, window=1 << 20)
    head = (1 << 20) // 8 // 14 * 14  # whole lines of 14 bytes
    tail = (1 << 20) - (1 << 20) // 8
    assert got.name == "<stdin>" and got.data == data[:head] + data[-tail:]
    assert got.skipped is not None and got.skipped.to_json() == {
        "after_line": head // 14,
        "lines": (len(data) - tail - head) // 14,
        "bytes": len(data) - tail - head,
    }
    small = inputs.read_log("-", io.BytesIO(b"short log\n"), False, window=1 << 20)
    assert small.data == b"short log\n" and small.skipped is None


UNDEF = "ImportError: flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"


def _read(tmp_path: Path, data: bytes, source: str, window: int) -> inputs.Log:
    if source == "file":
        (tmp_path / "build.log").write_bytes(data)
        return inputs.read_log(str(tmp_path / "build.log"), io.BytesIO(), False, window=window)
    return inputs.read_log("-", io.BytesIO(data), False, window=window)


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-16-be"])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("source", ["file", "pipe"])
def test_a_long_logs_middle_is_skipped_and_its_lines_keep_their_numbers(
    tmp_path: Path, codec: str, ending: str, source: str
) -> None:
    # The head (whole lines) and the tail are read; the middle is only counted, so the evidence in the
    # tail has its line number in the whole log, and the log's line count is the whole log's.
    text = ending.join([*(f"line {i:08d}" for i in range(1, 200_001)), UNDEF, "the end"]) + ending
    data = text.encode(codec)
    got = _read(tmp_path, data, source, 1 << 20)
    assert got.skipped is not None and len(got.data) <= 1 << 20
    assert len(got.data) + got.skipped.bytes == len(data)
    expl = explain_bytes(got.data, key_lines=True, skipped=got.skipped)
    assert [(d.code, d.line) for d in expl.diagnoses][:1] == [("torch-abi-mismatch", 200_001)]
    assert expl.lines == 200_002 and expl.skipped == got.skipped
    assert (200_001, UNDEF) in [(k.line, k.text) for k in expl.key_lines]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("source", ["file", "pipe"])
def test_a_utf16_logs_middle_counts_breaks_not_byte_pairs_across_characters(
    tmp_path: Path, codec: str, source: str
) -> None:
    # Gurmukhi beside CJK ("\u0a41\u4e00\u0a41") holds the bytes of a UTF-16 line break across two
    # characters in either byte order ("\n\0" in LE, "\0\n" in BE): not a break of the log.
    text = (
        "".join(f"line {i:08d} \u0a41\u4e00\u0a41\u0d41\u4e00\u0d41\n" for i in range(1, 100_001))
        + UNDEF
        + "\n"
    )
    got = _read(tmp_path, text.encode(codec), source, 1 << 20)
    assert got.skipped is not None
    expl = explain_bytes(got.data, skipped=got.skipped)
    assert [(d.code, d.line) for d in expl.diagnoses][:1] == [("torch-abi-mismatch", 100_001)]
    assert expl.lines == 100_001


@pytest.mark.parametrize("shift", range(16))
def test_the_tail_may_start_anywhere_in_a_line(tmp_path: Path, shift: int) -> None:
    # Windows one byte apart put the tail's first byte on every byte of a "\r\n" line (15 bytes).
    text = "".join(f"line {i:08d}\r\n" for i in range(1, 20_001)) + UNDEF + "\r\n"
    got = _read(tmp_path, text.encode(), "file", (1 << 16) + shift)
    expl = explain_bytes(got.data, skipped=got.skipped)
    assert [(d.code, d.line) for d in expl.diagnoses][:1] == [("torch-abi-mismatch", 20_001)]
    assert expl.lines == 20_001


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (b"", "utf-16-le"),
        (b"", "utf-16-be"),
    ],
    ids=["le", "be", "le-no-bom", "be-no-bom"],
)
@pytest.mark.parametrize("source", ["file", "pipe"])
@pytest.mark.parametrize("window", [1 << 20, (1 << 20) + 2])  # halves of an even and an odd length
def test_a_utf16_log_longer_than_the_window_keeps_its_tail(
    tmp_path: Path, bom: bytes, codec: str, source: str, window: int
) -> None:
    # With a BOM (PowerShell's redirect) or without (either byte order, as the engine reads it): the head
    # and the tail are joined with a newline of the log's own encoding, the tail starting on a whole character.
    text = "".join(f"line {i:08d}\n" for i in range(100_000)) + UNDEF + "\n"
    data = bom + text.encode(codec)
    got = _read(tmp_path, data, source, window).data
    assert len(got) < len(data)
    assert [d.code for d in explain_bytes(got).diagnoses][:1] == ["torch-abi-mismatch"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_log_without_a_byte_order_mark_is_text(codec: str) -> None:
    data = (UNDEF + "\r\n").encode(codec)
    assert inputs.read_log("-", io.BytesIO(data), False).data == data


@pytest.mark.slow  # ~2.7 s: it feeds hundreds of MB through the reader
def test_log_from_a_pipe_is_read_in_linear_time() -> None:
    """issue 15 row 14: 600 MB piped took 49 s (the tail buffer was re-copied for every 1 MB chunk).
    A deque of chunks copies each byte once: the same 600 MB now reads in about a second."""
    r, w = os.pipe()
    chunk = (b"x" * 1023 + b"\n") * 1024  # 1 MiB of log lines per write
    total = 600 << 20

    def feed() -> None:
        with os.fdopen(w, "wb") as fh:
            for _ in range(total // len(chunk)):
                fh.write(chunk)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t0 = time.monotonic()
    with os.fdopen(r, "rb") as fh:
        log = inputs.read_log("-", fh, False)
    elapsed = time.monotonic() - t0
    t.join(30)
    assert log.skipped is not None and len(log.data) <= inputs.LOG_WINDOW_BYTES
    assert len(log.data) + log.skipped.bytes == total and log.skipped.lines > 0
    assert elapsed < 30, f"{elapsed:.1f} s for 600 MB"  # ~1 s idle; the old loop took 49-150 s


@pytest.mark.slow  # ~4 s: it reads a GiB from the pipe
@pytest.mark.timeout(180)
def test_an_endless_pipe_is_cut_off_in_seconds() -> None:
    """`yes | flashdoctor explain -` was cut off only at 16 GiB, about a minute of reading (more on a busy
    machine). The bound is 1 GiB now: a few times the largest real build logs (hundreds of MB), seconds of
    reading (the 600 MB of the test above take about a second)."""
    r, w = os.pipe()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), os.fdopen(w, "wb") as fh:
            while True:
                fh.write(b"y\n" * (1 << 19))

    threading.Thread(target=feed, daemon=True).start()
    t0 = time.monotonic()
    with os.fdopen(r, "rb") as fh, pytest.raises(UsageError, match="more than 1 GiB without an end"):
        inputs.read_log("-", fh, False)
    assert time.monotonic() - t0 < 20


def test_binary_and_endless_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="/dev/zero is not a text log"):
        inputs.read_log("/dev/zero", io.BytesIO(), False)
    monkeypatch.setattr(inputs, "LOG_STREAM_MAX_BYTES", 8 << 20)
    endless = io.BytesIO(b"yes\n" * (4 << 20))  # 16 MB of text, more than the (patched) bound
    with pytest.raises(UsageError, match="an endless stream, not a log"):
        inputs.read_log("-", endless, False, window=1 << 20)
    with pytest.raises(UsageError, match="give a log file, or pipe one in"):
        inputs.read_log(None, io.BytesIO(), True)


# -- through the commands ---------------------------------------------------------------------------------
def test_commands_refuse_hostile_files_with_exit_2(
    tmp_path: Path, fifo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "nested.json"
    nested.write_text(deep(100_000))
    nan = tmp_path / "nan.json"
    nan.write_text('{"memory_gb": NaN}')
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"torch": "2.8 ü"}'.encode("latin-1"))
    cases = [
        (["check", "--target", "/dev/zero"], "target spec /dev/zero holds more than the 1 MiB allowed"),
        (["check", "--target", fifo], "is a FIFO with nothing written to it"),
        (["check", "--target", str(nested)], "is nested too deeply (more than 64 levels)"),
        (["check", "--target", str(latin1)], "is not UTF-8 text (byte 0xfc"),
        (["check", "--json", "--target", str(nan)], "is not valid JSON: NaN is not a JSON number"),
        (["install", "--dry-run", "--target", H100, "--plan", "/dev/zero"], "plan /dev/zero holds more"),
        (
            ["install", "--dry-run", "--target", H100, "--plan", str(nested)],
            "is nested too deeply (more than 64 levels)",
        ),
        (["wheels", "--target", H100, "--index", "/dev/zero"], "wheel index /dev/zero holds more than"),
        (["wheels", "--target", H100, "--index", str(nested)], "is nested too deeply (more than 64 levels)"),
        (["lock", "--target", H100, "--plan", str(nested)], "is nested too deeply (more than 64 levels)"),
        (["explain", "/dev/zero", "--no-probe"], "/dev/zero is not a text log"),
        (["explain", str(nested), "--target", str(nested)], "is nested too deeply (more than 64 levels)"),
    ]
    for args, message in cases:
        code, err = run_main(args, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (args, code, err)


def test_explain_refuses_a_log_it_cannot_read_with_exit_2(
    tmp_path: Path, fifo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A FIFO nobody writes to was "the log is empty" (exit 1), unlike every other input read here.
    cases = [
        (fifo, "is a FIFO with nothing written to it"),
        (str(tmp_path), "is a directory, not a log file"),
        ("/dev/zero", "/dev/zero is not a text log"),
        ("/proc/self/mem", "cannot read /proc/self/mem: Input/output error"),  # unreadable, even for root
    ]
    for log, message in cases:
        for json_flag in ([], ["--json"]):
            code, err = run_main(["explain", log, "--no-probe", *json_flag], capsys)
            assert code == 2 and message in err and "Traceback" not in err, (log, code, err)


def test_explain_refuses_a_standard_input_it_cannot_read_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A standard input opened for writing only (`explain - 0>file`) read as a named file that cannot be
    # read does (exit 2), not as a crash; a closed one (`explain - <&-`: Python's sys.stdin is None) too.
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    with os.fdopen(fd, "rb") as write_only:
        with pytest.raises(UsageError, match="cannot read <stdin>: Bad file descriptor"):
            inputs.read_log("-", write_only, False)
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(write_only))
        code, err = run_main(["explain", "-", "--no-probe"], capsys)
        assert code == 2 and "cannot read <stdin>" in err and "Traceback" not in err, err
    monkeypatch.setattr("sys.stdin", None)
    for args in (["-"], []):
        code, err = run_main(["explain", *args, "--no-probe"], capsys)
        assert code == 2 and "standard input is closed" in err and "Traceback" not in err, (args, err)


def test_the_index_named_by_the_environment_is_bounded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLASHDOCTOR_WHEELS_INDEX", "/dev/zero")
    code, err = run_main(["check", "--target", H100], capsys)
    assert code == 2 and "wheel index /dev/zero holds more than the 64 MiB allowed" in err
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"schema": "flashdoctor/wheels-index/1", "x": json.loads(deep(80))}))
    monkeypatch.setenv("FLASHDOCTOR_WHEELS_INDEX", str(nested))
    code, err = run_main(["install", "--dry-run", "--target", H100], capsys)
    assert code == 2 and "is nested too deeply (more than 64 levels)" in err


# One reader of a target file, for --target and a cluster rank's FLASHDOCTOR_TARGET alike
# (inputs.load_target): the same bytes give the same environment or the same refusal.
_SPEC = b'{"python": "3.12", "platform": "linux_x86_64", "torch": "2.8.0+cu128"}'


@pytest.mark.parametrize(
    "data",
    [
        _SPEC,
        b"\xef\xbb\xbf" + _SPEC,  # a UTF-8 BOM (Notepad, PowerShell's Out-File -Encoding utf8)
        b'{"python": "3.12", "python": "3.11"}',
        b'{"memory_gb": NaN}',
        b'{"memory_gb": 1e400}',
        b'{"torch": "caf\xe9"}',
        b"{not json",
        b"[]",
        b'{"gpus": ' + b"[" * 100 + b"]" * 100 + b"}",
        b'{"gpus": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"torch": 2}',
        b"{}" + b" " * (1 << 20),
    ],
    ids=[
        "spec",
        "bom",
        "twice",
        "nan",
        "huge",
        "latin1",
        "syntax",
        "list",
        "deep",
        "deeper",
        "bad-key",
        "big",
    ],
)
def test_a_ranks_target_reads_as_check_target_does(tmp_path: Path, data: bytes) -> None:
    from flashdoctor.actions.cluster.launch import LaunchInfo
    from flashdoctor.actions.cluster.rank import RankOptions, run_rank

    path = tmp_path / "t.json"
    path.write_bytes(data)
    try:
        want: Any = inputs.load_target(str(path)).python
    except UsageError as exc:
        want = exc.message
    launch = LaunchInfo("torchrun", 0, 1, 0, 0, 1, "127.0.0.1", 29500, agent_store=True, run_id="t.0")
    res = run_rank(launch, RankOptions(target=str(path)), {}, "n1", gpu_count=lambda e: 0)
    got = res.check["environment"].get("python") if res.check is not None else res.error
    assert got == want


def test_a_target_spec_is_refused_over_a_mebibyte(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b"{}" + b" " * (1 << 20))
    with pytest.raises(UsageError, match="1 MiB"):
        inputs.load_target(str(path))
