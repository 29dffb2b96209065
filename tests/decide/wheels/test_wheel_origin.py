"""The install plan names its wheel's source in one plain line and says how the download will be checked
(flashdoctor.decide.wheels.origin): the index's sha256, else the publisher's digest read at download time
(PEP 503 page, GitHub release asset, PyPI JSON), else "cannot be checked" — and keeps the index's research
evidence out of the human plan (it stays in --json and -v)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from flashdoctor.cli import cli
from flashdoctor.decide.wheels.origin import NO_DIGEST, evidence_reason, wheel_origin
from flashdoctor.model.plan import WheelRef
from tests.support.paths import TARGETS

FA3 = "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
FA3_URL = f"https://download.pytorch.org/whl/cu130/{FA3}"
FA2 = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
FA2_URL = "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/" + FA2.replace("+", "%2B")
FA4 = "flash_attn_4-4.0.0b2-py3-none-any.whl"
FA4_URL = f"https://files.pythonhosted.org/packages/aa/bb/{'c' * 60}/{FA4}"
SHA = "ab" * 32


def ref(filename: str, url: str, source: str, sha256: str | None = None) -> WheelRef:
    return WheelRef(filename, url, sha256, source, "1")


def test_pytorch_index_wheel_without_a_sha256_reads_the_page_at_download() -> None:
    o = wheel_origin(ref(FA3, FA3_URL, "pytorch-index"), "seen_listed:code-search ids 1, 2")
    assert o.text == "PyTorch index download.pytorch.org/whl/cu130 (official)"
    assert (o.digest, o.digest_from, o.community) == ("at-download", "pep503-page", False)
    assert o.digest_text == "read from the index page when downloaded"
    assert o.evidence == "seen_listed:code-search ids 1, 2"


def test_github_release_and_pypi_wheels_without_a_sha256() -> None:
    gh = wheel_origin(ref(FA2, FA2_URL, "official"))
    assert gh.text == "GitHub release v2.8.3 of Dao-AILab/flash-attention (official)"
    assert (gh.digest, gh.digest_from) == ("at-download", "github-release-asset")
    pypi = wheel_origin(ref(FA4, FA4_URL, "pypi"))
    assert pypi.text == "PyPI project flash-attn-4 (official)"
    assert (pypi.digest, pypi.digest_from) == ("at-download", "pypi-json")
    community = wheel_origin(
        ref(FA2, "https://github.com/mjun0812/flash-attention-prebuild-wheels/releases/download/v0.9.4/x.whl",
            "community:mjun0812")
    )  # fmt: skip
    assert community.community and community.text.endswith("(community build)")
    assert community.digest_from == "github-release-asset"


def test_a_huggingface_wheel_reads_its_lfs_sha256_at_download() -> None:
    name = "flash_attn-2.7.4.post1+cu128torch2.7.0cxx11abiFALSE-cp312-cp312-win_amd64.whl"
    repo = "lldacing/flash-attention-windows-wheel"
    url = f"https://huggingface.co/{repo}/resolve/main/{name.replace('+', '%2B')}"
    o = wheel_origin(ref(name, url, "community:lldacing"))
    assert o.text == f"Hugging Face repository {repo} (community build)"
    assert (o.digest, o.digest_from, o.community) == ("at-download", "huggingface-lfs", True)
    # a file of another repository on the same host is not this source's: nothing to read it from
    other = wheel_origin(ref(name, url.replace(repo, "someone/else"), "community:lldacing"))
    assert (other.digest, other.digest_from) == ("none", None)
    # nor is one of another branch (the source lists main's files, and the lookup reads main's tree)
    branch = wheel_origin(ref(name, url.replace("/resolve/main/", "/resolve/dev/"), "community:lldacing"))
    assert (branch.digest, branch.digest_from) == ("none", None)


def test_a_known_sha256_comes_from_the_index() -> None:
    o = wheel_origin(ref(FA2, FA2_URL, "official", SHA))
    assert (o.digest, o.digest_from) == ("known", "wheel-index")


def test_cannot_be_checked_only_where_no_publisher_gives_a_digest() -> None:
    # a configured GitHub source whose URL is not a release asset; a source flashdoctor does not know;
    # plain HTTP: no lookup happens at download, so nothing can be checked
    for r in (
        ref(FA2, "https://example.org/wheels/" + FA2, "official"),
        ref(FA2, "https://example.org/wheels/" + FA2, "somewhere-else"),
        ref(FA3, "http://download.pytorch.org/whl/cu130/" + FA3, "pytorch-index"),
        ref(FA4, f"https://mirror.example/{FA4}", "pypi"),
    ):
        o = wheel_origin(r)
        assert (o.digest, o.digest_from, o.digest_text) == ("none", None, NO_DIGEST), r
        assert "cannot be checked" in o.digest_text


def run(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


H100 = ("install", "--fa3", "--dry-run", "--target", str(TARGETS / "h100.json"))


def test_human_plan_names_the_source_in_one_line_without_the_evidence() -> None:
    out = run(*H100)
    assert [ln.strip() for ln in out.splitlines() if "source:" in ln] == [
        "source: PyTorch index download.pytorch.org/whl/cu130 (official)"
    ]
    assert "seen_listed" not in out and "evidence" not in out and "code-search" not in out
    assert "sha256: read from the index page when downloaded" in out
    assert "unknown" not in out.split("nearest misses")[0] and "cannot be checked" not in out


def test_verbose_plan_shows_the_evidence() -> None:
    out = run(*H100, "-v")
    assert "evidence: seen_listed:code-search" in out
    assert sum("source:" in ln for ln in out.splitlines()) == 1


def test_json_plan_keeps_its_fields_and_adds_the_origin() -> None:
    doc = json.loads(run(*H100, "--json"))
    wheel = doc["wheel"]
    assert (wheel["filename"], wheel["sha256"], wheel["source"]) == (FA3, None, "pytorch-index")
    evidence = doc["origin"]["evidence"]
    assert evidence.startswith("seen_listed:code-search")
    assert evidence_reason("pytorch-index", evidence) in doc["reasons"]  # as before: the evidence stays
    assert {k: doc["origin"][k] for k in ("text", "digest", "digest_from")} == {
        "text": "PyTorch index download.pytorch.org/whl/cu130 (official)",
        "digest": "at-download",
        "digest_from": "pep503-page",
    }
    assert not [r for r in doc["reasons"] if "cannot be checked" in r]
