"""Untrusted strings at the rendering boundary (issue 15 row 8): clear-screen, title-set and clipboard
(OSC 52) sequences in a target spec, a file name or a log never reach the terminal raw; rich's own
styling does. Proven on raw bytes, on a real terminal (tmux), and for GitHub annotations and JSON."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashdoctor.cli import main
from flashdoctor.model.findings import CheckReport, Finding, Status
from flashdoctor.render import github
from flashdoctor.render.console import make_console
from flashdoctor.render.json import dumps
from flashdoctor.render.text import clean
from tests.support.paths import ROOT, TARGETS
from tests.support.targets import target_env

# OSC 0 (window title), OSC 52 (write the clipboard), ED 2 (clear the screen), an 8-bit CSI.
EVIL = "\x1b]0;pwned\x1b\\\x1b]52;c;ZXZpbA==\x1b\\\x1b[2J\x07\x9b31m"


def hostile_target(tmp_path: Path) -> Path:
    spec = json.loads((TARGETS / "h100.json").read_text())
    spec["gpus"][0]["name"] = "NVIDIA H100" + EVIL
    spec["cuda_home"] = "/usr/local/cuda" + EVIL
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_clean_shows_every_control_character_and_keeps_text() -> None:
    assert clean("a\tb\nc") == "a\tb\nc"
    assert clean(EVIL) == "␛]0;pwned␛\\␛]52;c;ZXZpbA==␛\\␛[2J␇\ufffd31m"
    assert all(clean(chr(c)) != chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c not in (9, 10))
    assert clean("a\ud800b\udcffc") == "a\ufffdb\ufffdc"  # half a UTF-16 pair: no stream can write it


@pytest.mark.system
def test_a_lone_surrogate_in_a_target_spec_is_shown_not_a_crash(tmp_path: Path) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800": valid JSON, a str no UTF-8 stream can write). In a
    GPU name it made the human report crash (exit 3, a C or C.UTF-8 locale's stdout) and, in GitHub
    Actions, the step summary's write (any locale); now it is shown as U+FFFD, as an undecodable byte is."""
    spec = json.loads((TARGETS / "t4.json").read_text())
    spec["gpus"][0]["name"] = "Tesla T4 \ud800"
    target = tmp_path / "surrogate.json"
    target.write_text(json.dumps(spec), encoding="utf-8")  # ensure_ascii: written as the escape "\ud800"
    summary = tmp_path / "summary.md"
    for extra in ({}, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}):
        env = dict(os.environ, PYTHONPATH=str(ROOT), LC_ALL="C.UTF-8", **extra)
        env.pop("PYTHONIOENCODING", None)
        p = subprocess.run(
            [sys.executable, "-m", "flashdoctor", "check", "--target", str(target)],
            capture_output=True,
            timeout=120,
            env=env,
        )
        assert p.returncode == 0, (extra, p.stderr.decode(errors="replace"))
        assert "Tesla T4 \ufffd".encode() in p.stdout, extra
    assert "Tesla T4 \ufffd" in summary.read_text(encoding="utf-8")


def test_console_keeps_rich_styling_and_defuses_untrusted_text() -> None:
    out = FakeTTY()
    console = make_console(file=out)
    console.print("[red]styled[/] " + EVIL.replace("[", "\\["))
    raw = out.getvalue()
    assert "\x1b[31mstyled\x1b[0m" in raw  # rich's own escape: kept
    assert raw.count("\x1b") == 2 and "\x9b" not in raw and "]52;" in raw  # the hostile ones: shown
    out = FakeTTY()
    from flashdoctor.decide.explain import run_checks
    from flashdoctor.render.human import render_check

    spec = json.loads((TARGETS / "h100.json").read_text())
    env = target_env("h100", gpus=[{**spec["gpus"][0], "name": "GPU" + EVIL}])
    render_check(run_checks(env, source="target:x"), make_console(file=out), verbose=True)
    text = out.getvalue()
    assert "GPU␛]0;pwned" in text
    assert not any(s in text for s in ("\x1b]", "\x1b[2J", "\x9b", "\x07"))


@pytest.mark.system
def test_a_hostile_target_spec_in_a_pipe_is_plain_text(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--target", str(hostile_target(tmp_path)), "-v"],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert b"\x1b" not in p.stdout and b"\xc2\x9b" not in p.stdout  # no ESC, no 8-bit CSI
    assert "NVIDIA H100␛]0;pwned".encode() in p.stdout


def test_messages_on_stderr_are_cleaned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--target", str(tmp_path / ("x" + EVIL + ".json"))])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "cannot read target spec" in err and "\x1b" not in err and "␛]0;pwned" in err


@pytest.mark.system
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_real_terminal_keeps_its_title_clipboard_and_screen(tmp_path: Path) -> None:
    sock = str(tmp_path / "tmux.sock")

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", sock, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=30
        ).stdout

    target = hostile_target(tmp_path)
    cmd = (
        f"env PYTHONPATH={ROOT} TERM=xterm-256color {sys.executable} -m flashdoctor check "
        f"--target {target}; sleep 60"
    )
    tmux("new-session", "-d", "-s", "fd", "-x", "120", "-y", "50", "sleep 60")
    try:
        tmux("set", "-g", "set-clipboard", "on")  # an OSC 52 from the program would fill a buffer
        title = tmux("display", "-p", "-t", "fd", "#{pane_title}").strip()
        tmux("respawn-pane", "-k", "-t", "fd", cmd)
        for _ in range(600):
            if "verdict" in tmux("capture-pane", "-p", "-t", "fd"):
                break
            time.sleep(0.1)
        screen = tmux("capture-pane", "-p", "-t", "fd")
        assert "verdict" in screen, screen
        assert tmux("display", "-p", "-t", "fd", "#{pane_title}").strip() == title != "pwned"
        assert tmux("list-buffers") == ""  # no clipboard write
        assert screen.lstrip().startswith("target:"), screen  # not cleared (the first line names the target)
        assert "NVIDIA H100␛]0;pwned" in screen
        assert "\x1b[" in tmux("capture-pane", "-p", "-e", "-t", "fd")  # rich's colours are kept
    finally:
        tmux("kill-server")


def test_github_annotations_are_escaped_per_the_workflow_command_rules() -> None:
    f = Finding(
        code="driver-too-old",
        status=Status.FAIL,
        message="50% done\r\n::error::forged" + EVIL,
        variant="fa2",
        subject=None,
        evidence=None,
        fix="a, b: c",
    )
    report = CheckReport(environment=target_env("h100"), findings=(f,), verdicts={}, source="probe")
    (line,) = github.annotation_lines(report)
    assert line.startswith("::error title=flashdoctor driver-too-old (fa2)::50%25 done%0D%0A::error::forged")
    assert "\n" not in line and "\x1b" not in line and "␛]52" in line
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert "\x1b" not in github.summary_markdown(report, 1, ["x" + EVIL])


def test_json_escapes_the_c1_controls_it_would_leave_raw() -> None:
    text = dumps({"evidence": "a\x9b31m\x7f\x1b"}, ensure_ascii=False)
    assert "\x9b" not in text and "\x7f" not in text and "\x1b" not in text
    assert json.loads(text) == {"evidence": "a\x9b31m\x7f\x1b"}
    # GitHub's runner runs `##[name]` anywhere in a line of a log: escaped, the same string to a reader
    for ascii_only in (True, False):
        text = dumps({"name": "H100 ##[add-mask]x \\##["}, ensure_ascii=ascii_only)
        assert "##[" not in text and json.loads(text) == {"name": "H100 ##[add-mask]x \\##["}


# Unicode's bidirectional embeddings, overrides and isolates (the "Trojan Source" characters): a log line
# holding U+202E is shown right to left by a terminal that does bidi, so what the reader sees is not the text.
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_controls_of_a_log_never_reach_the_terminal_or_the_json_raw(tmp_path: Path) -> None:
    assert not any(c in clean("a" + BIDI + "b") for c in BIDI)
    log = tmp_path / "build.log"
    evidence = "ImportError: x.so: undefined symbol: _ZN3c104cuda9SetDeviceEi \u202etxt.exe"
    log.write_text(evidence + "\n", encoding="utf-8")
    out = io.StringIO()
    from flashdoctor.decide.explain import explain_bytes
    from flashdoctor.render.explain import render_explanation

    render_explanation(explain_bytes(log.read_bytes()), make_console(file=out), str(log))
    assert "SetDeviceEi" in out.getvalue() and "\u202e" not in out.getvalue()
    text = dumps({"evidence": evidence + BIDI}, ensure_ascii=False)
    assert not any(c in text for c in BIDI) and json.loads(text) == {"evidence": evidence + BIDI}
