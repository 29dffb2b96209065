"""`flashdoctor check --distributed`: wire the launcher, the store, the rank's work, the report."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from flashdoctor.actions.cluster.launch import LaunchInfo, launch_from_environ
from flashdoctor.actions.cluster.protocol import Keys, SessionError, Timeouts, run_session
from flashdoctor.actions.cluster.rank import (
    RankOptions,
    SmokeRunner,
    default_smoke_runner,
    host_name,
    run_rank,
)
from flashdoctor.actions.inputs import check_output_path
from flashdoctor.decide.cluster import (
    ClusterReport,
    Gathered,
    JoinInfo,
    build_cluster_report,
    cluster_report_to_json,
)
from flashdoctor.errors import EXIT_FAILED, UsageError
from flashdoctor.probe.interpreter import stop_started


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _say(launch: LaunchInfo | None, msg: str, say: Callable[[str], None] = _stderr) -> None:
    who = f"rank {launch.rank}: " if launch is not None else ""
    say(f"flashdoctor: {who}{msg}")


def _keep_outcome_on_sigterm(code: int) -> None:
    """Once the outcome is known, a stop from the launcher ends this rank with that outcome: torchrun
    stops the remaining workers as soon as one exits non-zero, which would otherwise turn every other
    rank's exit code into a signal."""

    def handler(signum: int, frame: Any) -> None:
        stop_started()  # a probe still hung in a session of its own (an unfinished rank's)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    with contextlib.suppress(ValueError):  # not the main thread (e.g. under a test runner)
        signal.signal(signal.SIGTERM, handler)


def run_distributed_check(
    opts: RankOptions,
    *,
    timeouts: Timeouts,
    output: str | None,
    environ: Mapping[str, str],
    show: Callable[[ClusterReport, dict[str, Any]], None],
    smoke_runner: SmokeRunner | None = None,
    document: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    say: Callable[[str], None] = _stderr,
) -> int:
    """Run this rank's part of the cluster preflight; rank 0 hands the report to ``show`` (the CLI
    renders it) and writes ``output``: the report as ``document`` makes it (the CLI's result envelope, so
    the file is the document ``--json`` prints). ``say`` prints a message (the CLI's, which shows control
    characters as symbols: a message may quote MASTER_ADDR or a path). Returns the exit code every rank
    agrees on."""
    launch = launch_from_environ(environ)  # UsageError: no launcher
    if opts.smoke and smoke_runner is None:
        smoke_runner = default_smoke_runner(opts.require or None)
    if opts.save_target and launch.world_size > 1 and "{rank}" not in opts.save_target:
        raise UsageError("--save-target with --distributed writes one file per rank: put {rank} in its name")
    if output and launch.rank == 0:
        check_output_path(output)  # also when called without the CLI (which checks -o as it parses)
    from flashdoctor.actions.cluster import torch_glue

    torch_glue.import_dist()  # UsageError without torch, before anything waits
    host = host_name(environ)
    try:
        store = torch_glue.connect_store(launch, timeouts.join_s)
    except torch_glue.StoreUnreachable as exc:
        _say(launch, str(exc), say)
        return EXIT_FAILED
    join = JoinInfo(
        rank=launch.rank,
        host=host,
        pid=os.getpid(),
        local_rank=launch.local_rank,
        node_rank=launch.node_rank,
        local_world_size=launch.local_world_size,
        world_size=launch.world_size,
    )
    keys = Keys(launch.run_id)

    def work() -> Any:
        return run_rank(launch, opts, environ, host, smoke_runner)

    def open_collective(index: int, size: int) -> Any:
        return torch_glue.GlooCollective(store, keys.collective, index, size, timeouts.join_s)

    def finish(g: Gathered) -> int:
        report = build_cluster_report(
            g,
            launcher=launch.launcher,
            world_size=launch.world_size,
            rendezvous=launch.rendezvous,
            strict=opts.strict,
            timeouts=timeouts.to_json(),
            smoke=opts.smoke,
        )
        doc = cluster_report_to_json(report, strict=opts.strict)
        if document is not None:
            doc = document(doc)
        if output:
            from flashdoctor.actions.inputs import write_json

            try:
                write_json(output, doc)  # whole or not at all
            except UsageError as exc:
                _say(launch, exc.message, say)
        show(report, doc)
        sys.stdout.flush()
        return int(doc["exit_code"])

    try:
        code = run_session(
            launch, store, join, work, open_collective, finish, timeouts, on_outcome=_keep_outcome_on_sigterm
        )
    except SessionError as exc:
        _say(launch, str(exc), say)
        code = EXIT_FAILED
    finally:
        # The rank's probe and smoke test run in sessions of their own, which no launcher's stop or
        # terminal's Ctrl-C reaches: stop what is still running (a hung probe, a stop mid-check).
        stop_started()
    sys.stdout.flush()
    sys.stderr.flush()
    return code
