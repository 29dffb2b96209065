"""The one PEP 503 / PEP 691 reader (flashdoctor.actions.net.pep503), on literal pages."""

from __future__ import annotations

import json

import pytest

from flashdoctor.actions.net import pep503
from flashdoctor.actions.net.pep503 import NotAnIndexPage, parse_project_page

PAGE = "https://m.example/simple/flash-attn/"
W = "flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl"


def test_html_page_as_pip_reads_it() -> None:
    html = f"""<!DOCTYPE html><html><head><base href="https://files.example/pkgs/"></head><body>
    <a href="ab/{W.replace("+", "%2B")}#sha256=ABCDEF" data-requires-python="&gt;=3.9">{W}</a>
    <a href="/abs/flash_attn-2.8.2.tar.gz#md5=00" data-yanked="">flash_attn-2.8.2.tar.gz</a>
    <a href="old.whl" data-yanked="broken build">old.whl</a>
    <a>no href</a>
    </body></html>"""
    files = parse_project_page(html, PAGE, "text/html")
    assert [(f.filename, f.url, f.sha256) for f in files] == [
        (W, f"https://files.example/pkgs/ab/{W}", "abcdef"),
        ("flash_attn-2.8.2.tar.gz", "https://files.example/abs/flash_attn-2.8.2.tar.gz", None),
        ("old.whl", "https://files.example/pkgs/old.whl", None),
    ]
    assert files[0].requires_python == ">=3.9" and not files[0].yanked
    assert files[1].yanked and files[1].yanked_reason is None
    assert files[2].yanked and files[2].yanked_reason == "broken build"


def test_json_page_as_pip_reads_it() -> None:
    doc = {
        "meta": {"api-version": "1.1"},
        "files": [
            {
                "filename": W,
                "url": f"../../packages/{W}",
                "hashes": {"sha256": "CD" * 32},
                "requires-python": ">=3.9",
            },
            {"filename": "x.tar.gz", "url": "x.tar.gz", "hashes": [], "yanked": "security"},
            {"filename": "y.whl", "url": "y.whl#sha256=ee", "yanked": False},
            {"filename": "no-url.whl"},
            "not a file",
        ],
    }
    files = parse_project_page(json.dumps(doc).encode(), PAGE, "application/vnd.pypi.simple.v1+json")
    assert [(f.filename, f.url, f.sha256, f.yanked) for f in files] == [
        (W, f"https://m.example/packages/{W}", "cd" * 32, False),
        ("x.tar.gz", f"{PAGE}x.tar.gz", None, True),
        ("y.whl", f"{PAGE}y.whl", "ee", False),
    ]
    assert files[0].requires_python == ">=3.9" and files[1].yanked_reason == "security"


def test_bad_and_huge_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotAnIndexPage):
        parse_project_page(b'{"meta": {}}', PAGE, "application/json")
    with pytest.raises(NotAnIndexPage):
        parse_project_page(b"{not json", PAGE, None)
    with pytest.raises(NotAnIndexPage):
        parse_project_page(b"[" * 100_000 + b"]" * 100_000, PAGE, "application/json")
    assert parse_project_page(b"<html>maintenance</html>", PAGE, "text/html") == []
    monkeypatch.setattr(pep503, "MAX_FILES", 50)
    many = "".join(f'<a href="f{i}.whl">f{i}</a>' for i in range(1000))
    assert len(parse_project_page(many, PAGE)) == 50
    js = json.dumps({"files": [{"filename": f"f{i}", "url": f"f{i}"} for i in range(1000)]})
    assert len(parse_project_page(js, PAGE)) == 50
