"""The build action end to end with the real pip on a fake FA2 sdist: progress, the wheel stored by
fingerprint, the second build found in the wheelhouse, a failure summarised, preflight blocking."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.source_build.api import BuildOptions, build, plan_build
from flashdoctor.decide.source_build.plan import BuildRequest
from flashdoctor.render.progress import LineProgress
from tests.support.fake_sdist import make_fake_sdist
from tests.support.targets import target_env


def _opts(tmp: Path, archive: Path, **kw: object) -> BuildOptions:
    return BuildOptions(
        request=BuildRequest(archs=(90,)),
        source=str(archive),
        wheelhouse=tmp / "wh",
        log=tmp / "build.log",
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.system
def test_build_stores_by_fingerprint_then_reuses(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path)
    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    env = target_env("h100")  # the machine as a value; the build itself runs this interpreter's pip
    lines: list[str] = []
    out = build(env, _opts(tmp_path, archive), sys.executable, None, environ, LineProgress(lines.append))
    assert out.status == "built", (out.run and out.run.first_error, out.notes)
    assert out.wheel is not None and out.fingerprint is not None
    assert out.wheel.path.parent == tmp_path / "wh" / out.fingerprint.id
    assert out.wheel.filename == "flash_attn-0.0.1+fd.sm90-py3-none-any.whl"
    manifest = json.loads((out.wheel.path.parent / "build.json").read_text())
    assert manifest["fingerprint"]["profile"] == "fd.sm90" and manifest["source"].startswith("archive:")
    assert [ln.split()[0] for ln in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    log = (tmp_path / "build.log").read_text()
    assert "FLASH_ATTENTION_FORCE_BUILD=TRUE" in log and "--no-build-isolation" in log
    assert out.work_dir is None  # the temporary build directory is gone after success

    again = build(env, _opts(tmp_path, archive), sys.executable, None, environ)
    assert again.status == "cached" and again.wheel is not None and again.wheel.path == out.wheel.path
    assert again.run is None


@pytest.mark.system
def test_failed_build_keeps_log_and_sources_and_names_the_error(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path)
    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache"), "FAKE_FAIL": "1"}
    out = build(target_env("h100"), _opts(tmp_path, archive), sys.executable, None, environ)
    assert out.status == "failed" and out.run is not None
    assert (
        out.run.first_error is not None
        and 'flash_fwd_kernel.h(42): error: expected a ";"' in out.run.first_error.text
    )
    assert (out.run.steps_done, out.run.steps_total) == (2, 3)
    assert out.work_dir is not None and out.work_dir.is_dir()
    assert not (tmp_path / "wh").exists() or not any((tmp_path / "wh").iterdir())


def test_blocked_build_starts_nothing(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path)
    out = build(
        target_env("nvcc-mismatch"),
        _opts(tmp_path, archive),
        sys.executable,
        None,
        {"FLASHDOCTOR_CACHE_DIR": str(tmp_path)},
    )
    assert out.status == "blocked" and out.run is None
    assert "nvcc-torch-mismatch" in {f.code for f in out.findings}
    assert not (tmp_path / "build.log").exists()


def test_dry_run_reads_the_version_from_the_archive(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path, "2.7.4.post1")
    out = plan_build(target_env("h100"), _opts(tmp_path, archive))
    assert out.status == "planned" and out.plan is not None
    assert out.plan.version == "2.7.4.post1" and out.plan.arch_only_unit_count == 84
    from flashdoctor.errors import UsageError

    with pytest.raises(UsageError, match=r"--flash-version 2\.8\.3 but --source"):
        plan_build(target_env("h100"), _opts(tmp_path, archive, version="2.8.3"))


@pytest.mark.system
@pytest.mark.slow
def test_a_reused_work_dir_builds_again(tmp_path: Path) -> None:
    """`--work-dir DIR` is kept after a build, so the next build into it finds the last one's files. The
    old code then failed after the whole compile ("the build succeeded but left 2 wheel(s)": the previous
    profile's wheel was still in DIR/dist), or crashed with exit 3 copying a source directory over its
    earlier copy (FileExistsError), or refused an sdist of another version ("found 2" top directories)."""
    import tarfile

    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    env, work = target_env("h100"), tmp_path / "w"
    archive = make_fake_sdist(tmp_path)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "tree", filter="data")
    tree = tmp_path / "tree" / "flash_attn-0.0.1"
    newer = make_fake_sdist(tmp_path, "0.0.2")
    for source, arch, wheel in (
        (archive, 90, "flash_attn-0.0.1+fd.sm90-py3-none-any.whl"),
        (archive, 80, "flash_attn-0.0.1+fd.sm80-py3-none-any.whl"),
        (tree, 90, "flash_attn-0.0.1+fd.sm90-py3-none-any.whl"),
        (tree, 90, "flash_attn-0.0.1+fd.sm90-py3-none-any.whl"),
        (newer, 90, "flash_attn-0.0.2+fd.sm90-py3-none-any.whl"),
    ):
        opts = BuildOptions(
            request=BuildRequest(archs=(arch,)),
            source=str(source),
            wheelhouse=tmp_path / "wh",
            log=tmp_path / "build.log",
            work_dir=work,
            rebuild=True,
        )
        out = build(env, opts, sys.executable, None, environ)
        assert out.status == "built", (source, arch, out.run and out.run.first_error)
        assert out.wheel is not None and out.wheel.filename == wheel and out.work_dir == work
    assert [p.name for p in work.iterdir()] == ["src"]  # each wheel went to the wheelhouse, not kept twice


@pytest.mark.system
def test_a_wheel_that_cannot_be_stored_is_a_build_failure_that_keeps_it(tmp_path: Path) -> None:
    """The wheelhouse cannot take the wheel (a full disk, a read-only share, here a file where its entry's
    directory goes): the old code crashed after the whole compile (exit 3, "an unexpected error") and
    never said where the wheel was. Now it is a build failure (exit 5) that names the wheel it kept."""
    from flashdoctor.errors import EXIT_INSTALL, FlashdoctorError

    archive = make_fake_sdist(tmp_path)
    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    env = target_env("h100")
    planned = plan_build(env, _opts(tmp_path, archive))
    assert planned.fingerprint is not None
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / planned.fingerprint.id).write_text("not a directory\n")
    with pytest.raises(FlashdoctorError) as exc:
        build(env, _opts(tmp_path, archive), sys.executable, None, environ)
    err = exc.value
    assert err.return_code == EXIT_INSTALL and "cannot be stored in" in err.message, err.text()
    kept = [Path(w) for w in (err.hint or "").split() if w.endswith(".whl")]
    assert (
        len(kept) == 1 and kept[0].is_file() and kept[0].name == "flash_attn-0.0.1+fd.sm90-py3-none-any.whl"
    )
