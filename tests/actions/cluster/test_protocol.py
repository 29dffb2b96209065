"""The rank exchange, run with one thread per rank over torch's in-process HashStore.

The collective between threads is an in-process one (a gloo group needs one process per rank; the real
gloo path is exercised by the torchrun tests in test_cluster_system.py). It has only a broadcast: rank 0
receives nothing over it, the results come from the store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from flashdoctor.actions.cluster.launch import LaunchInfo
from flashdoctor.actions.cluster.protocol import MAX_RESULT_BYTES, Keys, SessionError, Timeouts, run_session
from flashdoctor.actions.cluster.torch_glue import import_dist
from flashdoctor.decide.cluster import Gathered, JoinInfo, RankResult

FAST = Timeouts(join_s=0.6, rank_s=0.8, poll_s=0.01)


def new_store() -> Any:
    return import_dist().HashStore()


def info(rank: int, world: int) -> LaunchInfo:
    return LaunchInfo("env", rank, world, rank, 0, world, "127.0.0.1", 1, False, "test.0")


class ThreadGroup:
    """A Collective shared by threads: a broadcast through a barrier."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.lock = threading.Lock()
        self.barrier: threading.Barrier | None = None
        self.code: int | None = None
        self.opened: list[tuple[int, int]] = []

    def __call__(self, index: int, size: int) -> Any:
        if self.fail:
            raise RuntimeError("gloo: connection refused")
        with self.lock:
            self.opened.append((index, size))
            if self.barrier is None:
                self.barrier = threading.Barrier(size, timeout=5)
        group = self

        class Member:
            def broadcast(self, code: int | None) -> int:
                if index == 0:
                    group.code = code
                assert group.barrier is not None
                group.barrier.wait()
                assert group.code is not None
                return group.code

            def close(self) -> None:
                pass

        return Member()


class Posting:
    """The store as one rank sees it: it posts ``sent`` as its result instead of its own."""

    def __init__(self, store: Any, rank: int, sent: bytes) -> None:
        self.store, self.key, self.sent = store, Keys("test.0").done(rank), sent

    def set(self, key: str, value: str) -> None:
        self.store.set(key, self.sent if key == self.key else value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def work_ok(rank: int, code: int = 0) -> Callable[[], RankResult]:
    return lambda: RankResult(rank=rank, host=f"h{rank}", exit_code=code)


class Cluster:
    def __init__(
        self,
        world: int,
        collective: ThreadGroup | None = None,
        finish_code: int | None = None,
        sent: dict[int, bytes] | None = None,
    ) -> None:
        self.world = world
        self.sent = sent or {}  # what a rank posts instead of its result
        self.store = new_store()
        self.collective = collective or ThreadGroup()
        self.outcomes: dict[int, Any] = {}
        self.gathered: Gathered | None = None
        self.finish_code = finish_code
        self.threads: list[threading.Thread] = []

    def finish(self, g: Gathered) -> int:
        self.gathered = g
        if self.finish_code is not None:
            return self.finish_code
        bad = g.missing or g.unfinished or any(r.exit_code for r in g.results.values())
        return 1 if bad else 0

    def start(
        self,
        rank: int,
        work: Callable[[], RankResult] | None = None,
        timeouts: Timeouts = FAST,
        world: int | None = None,
    ) -> None:
        """Start ``rank``; ``world``: the world size it was started with, if not the cluster's."""
        world = world or self.world

        def body() -> None:
            try:
                self.outcomes[rank] = run_session(
                    info(rank, world),
                    Posting(self.store, rank, self.sent[rank]) if rank in self.sent else self.store,
                    JoinInfo(rank=rank, host=f"h{rank}", pid=rank, world_size=world),
                    work or work_ok(rank),
                    self.collective,
                    self.finish,
                    timeouts,
                )
            except SessionError as exc:
                self.outcomes[rank] = exc

        t = threading.Thread(target=body, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self, bound: float = 10.0) -> float:
        t0 = time.monotonic()
        for t in self.threads:
            t.join(timeout=bound)
            assert not t.is_alive(), "a rank did not return within the bound"
        return time.monotonic() - t0


def test_all_ranks_gather_and_share_the_outcome() -> None:
    c = Cluster(4)
    for r in range(4):
        c.start(r, work_ok(r, code=1 if r == 2 else 0))
    c.join()
    assert c.outcomes == {0: 1, 1: 1, 2: 1, 3: 1}
    g = c.gathered
    assert g is not None and g.transport == "gloo" and g.missing == () and g.unfinished == ()
    assert sorted(g.results) == [0, 1, 2, 3] and g.results[2].exit_code == 1
    assert {r: j.host for r, j in g.joins.items()} == {0: "h0", 1: "h1", 2: "h2", 3: "h3"}
    assert c.collective.opened and all(size == 4 for _, size in c.collective.opened)


def test_success_is_zero_everywhere() -> None:
    c = Cluster(3)
    for r in range(3):
        c.start(r)
    c.join()
    assert c.outcomes == {0: 0, 1: 0, 2: 0}


def test_a_rank_that_never_joins_is_named_after_the_bound() -> None:
    c = Cluster(4)
    for r in (0, 1, 2):
        c.start(r)
    elapsed = c.join()
    assert elapsed < FAST.join_s + 3
    assert c.gathered is not None and c.gathered.missing == (3,)
    assert c.outcomes == {0: 1, 1: 1, 2: 1}
    assert c.collective.opened and all(
        size == 3 for _, size in c.collective.opened
    )  # the group of the present


def test_a_late_rank_learns_it_was_reported_missing() -> None:
    c = Cluster(3)
    for r in (0, 1):
        c.start(r)
    time.sleep(FAST.join_s + 0.3)
    c.start(2)
    c.join()
    assert isinstance(c.outcomes[2], SessionError) and "joined after" in str(c.outcomes[2])
    assert c.gathered is not None and c.gathered.missing == (2,)


def test_a_hung_rank_is_unfinished_and_still_exits() -> None:
    hang = threading.Event()

    def stuck() -> RankResult:
        hang.wait(30)  # a probe that never returns
        return RankResult(rank=2)

    c = Cluster(4)
    for r in range(4):
        c.start(r, stuck if r == 2 else None)
    elapsed = c.join()
    hang.set()
    assert elapsed < FAST.join_s + FAST.rank_s + 3
    assert c.gathered is not None and c.gathered.unfinished == (2,) and 2 not in c.gathered.results
    assert isinstance(c.outcomes[2], SessionError) and "did not finish" in str(c.outcomes[2])
    assert [c.outcomes[r] for r in (0, 1, 3)] == [1, 1, 1]


def test_ranks_started_with_another_world_size_are_seen() -> None:
    # Rank 1 was told WORLD_SIZE=3 and rank 2 exists only in its world: each exited 0 with rank 0's report
    # "passed" while the job they were started for has a rank nobody checked.
    c = Cluster(2)
    c.start(2, world=3)
    c.start(1, world=3)
    time.sleep(0.1)  # both joined before rank 0 counts the joins
    c.start(0)
    c.join()
    g = c.gathered
    assert g is not None and g.joins[1].world_size == 3 and g.extra_joins == 1
    stray = c.outcomes[2]
    assert isinstance(stray, SessionError)
    assert "rank 0 counts a world of 2 ranks; this rank was started as rank 2 of 3 (WORLD_SIZE)" in str(stray)
    assert c.outcomes[0] == c.outcomes[1]


def test_rank_zero_hung_still_coordinates() -> None:
    hang = threading.Event()

    def stuck() -> RankResult:
        hang.wait(30)
        return RankResult(rank=0)

    c = Cluster(2)
    c.start(0, stuck)
    c.start(1)
    c.join()
    hang.set()
    assert c.gathered is not None and c.gathered.unfinished == (0,) and sorted(c.gathered.results) == [1]
    assert c.outcomes == {0: 1, 1: 1}


def test_a_crashing_rank_becomes_an_error_result() -> None:
    def boom() -> RankResult:
        raise KeyError("gpus")

    c = Cluster(2)
    c.start(0)
    c.start(1, boom)
    c.join()
    res = c.gathered.results[1] if c.gathered else None
    assert res is not None and res.error is not None and "unexpected error KeyError" in res.error
    assert c.outcomes == {0: 1, 1: 1}


@pytest.mark.parametrize("sent", [b"not json", b"[1]", b'{"rank": "one"}', b"[" * 100_000])
def test_an_unreadable_result_is_that_ranks_error(sent: bytes) -> None:
    # Another flashdoctor, a bug, anyone who can write to the rendezvous: rank 0 crashed on it (exit 3,
    # no report) and the others waited for an outcome that never came.
    c = Cluster(2, sent={1: sent})
    c.start(0)
    c.start(1)
    c.join()
    res = c.gathered.results[1] if c.gathered else None
    assert res is not None and res.rank == 1 and res.exit_code == 1
    assert res.error is not None and res.error.startswith("sent a result rank 0 cannot read")
    assert c.outcomes == {0: 1, 1: 1}


def test_a_result_that_claims_another_ranks_number_is_the_senders_error() -> None:
    # Rank 1's slot held {"rank": 0, ...}: it was filed under rank 1 but read as rank 0's, so the report
    # showed rank 0 twice and rank 1 never. A result is the sender's; one that says otherwise is its error.
    c = Cluster(2, sent={1: b'{"rank": 0, "exit_code": 0}'})
    c.start(0)
    c.start(1)
    c.join()
    res = c.gathered.results[1] if c.gathered else None
    assert res is not None and res.rank == 1 and res.exit_code == 1
    assert res.error is not None and "says it is rank 0" in res.error
    assert c.outcomes == {0: 1, 1: 1}


def big(rank: int) -> Callable[[], RankResult]:
    """A rank whose result is some MB (a broken rank)."""
    return lambda: RankResult(rank=rank, error="x" * (MAX_RESULT_BYTES + 1))


@pytest.mark.parametrize("fail", [False, True])
def test_an_oversized_result_is_that_ranks_error_over_either_transport(fail: bool) -> None:
    # Every rank's buffer was padded to the largest: one rank's MBs cost rank 0 that much for every rank.
    c = Cluster(3, collective=ThreadGroup(fail=fail))
    for r in range(3):
        c.start(r, big(r) if r == 1 else None)
    c.join()
    g = c.gathered
    assert g is not None and g.transport == ("store" if fail else "gloo")
    assert sorted(g.results) == [0, 1, 2] and [g.results[r].exit_code for r in (0, 2)] == [0, 0]
    err = g.results[1].error
    assert err is not None and "over the 4 MiB (4,194,304 bytes)" in err and len(err) < 400
    assert c.outcomes == {0: 1, 1: 1, 2: 1}


def test_a_rank_posts_no_oversized_store_copy() -> None:
    c = Cluster(2)
    c.start(0)
    c.start(1, big(1))
    c.join()
    assert len(c.store.get(Keys("test.0").done(1))) < 1000


def test_failed_collective_falls_back_to_the_store() -> None:
    c = Cluster(3, collective=ThreadGroup(fail=True))
    for r in range(3):
        c.start(r, work_ok(r, code=1 if r == 1 else 0))
    c.join()
    g = c.gathered
    assert (
        g is not None
        and g.transport == "store"
        and g.transport_error is not None
        and "connection refused" in g.transport_error
    )
    assert sorted(g.results) == [0, 1, 2] and g.results[1].exit_code == 1
    assert c.outcomes == {0: 1, 1: 1, 2: 1}  # the others read the outcome from the store


def test_without_rank_zero_the_others_give_up_within_the_bound() -> None:
    # Under torchrun the agent hosts the store, so the others connect even when rank 0 never starts.
    c = Cluster(3)
    c.start(1)
    c.start(2)
    elapsed = c.join()
    assert elapsed < 2 * FAST.join_s + 3
    for r in (1, 2):
        assert isinstance(c.outcomes[r], SessionError) and "rank 0 did not say who joined" in str(
            c.outcomes[r]
        )


@pytest.mark.parametrize("world", [1, 2])
def test_tiny_worlds(world: int) -> None:
    c = Cluster(world)
    for r in range(world):
        c.start(r)
    c.join()
    assert c.outcomes == dict.fromkeys(range(world), 0)


def test_leaving_survives_the_store_host_leaving_first() -> None:
    # Rank 0 hosts the store (no torchrun agent): once it has seen everybody leave it exits, and the
    # others' last polls fail. The outcome is already known, so that is not an error.
    from flashdoctor.actions.cluster.protocol import Keys, _Session

    store = new_store()
    keys = Keys("test.0")
    store.add(keys.joined, 2)

    class GoneAfterLeaving:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def add(self, key: str, value: int) -> int:
            if key == keys.left and value == 0:
                raise RuntimeError("Failed to recv, got 0 bytes. Connection was likely closed.")
            return int(store.add(key, value))

    seen: list[int] = []
    _Session(info(1, 2), GoneAfterLeaving(), keys, FAST, time.monotonic, time.sleep, seen.append).leave(1)
    assert seen == [1] and store.add(keys.left, 0) == 1


def test_an_oversized_join_announcement_is_read_as_unreadable() -> None:
    # A rank (or anyone who can write to the rendezvous) announcing itself in MBs: rank 0 parsed it whole
    # and its report carried the MBs (here a host name); past the result bound it names only the rank.
    c = Cluster(2, finish_code=0)
    keys = Keys("test.0")
    c.store.set(keys.join(1), json.dumps({"rank": 1, "host": "h" * (MAX_RESULT_BYTES + 1)}))
    c.store.add(keys.joined, 1)
    c.start(0)
    c.join()
    g = c.gathered
    assert g is not None and 1 in g.joins and g.joins[1].host is None


def test_a_join_announcement_that_names_another_rank_names_only_the_rank_it_was_filed_under() -> None:
    # A result filed under one rank that named another was refused, but a join announcement was taken as
    # the rank it named: rank 1's entry in the report said rank 3, with rank 3's host.
    c = Cluster(2, finish_code=0)
    keys = Keys("test.0")
    c.store.set(keys.join(1), json.dumps({"rank": 3, "host": "elsewhere"}))
    c.store.add(keys.joined, 1)
    c.start(0)
    c.join()
    g = c.gathered
    assert g is not None and g.joins[1].rank == 1 and g.joins[1].host is None


def test_a_rank_missing_a_dependency_says_which_not_a_bug() -> None:
    # Seen on the GPU machine: ranks started with a PYTHONPATH that lacked platformdirs reported
    # "unexpected error ModuleNotFoundError ... (a flashdoctor bug)" instead of the missing dependency.
    def lacks_platformdirs() -> RankResult:
        raise ModuleNotFoundError("No module named 'platformdirs'", name="platformdirs")

    c = Cluster(2)
    c.start(0)
    c.start(1, lacks_platformdirs)
    c.join()
    res = c.gathered.results[1] if c.gathered else None
    assert res is not None and res.error is not None
    assert "flashdoctor's dependency platformdirs is not installed in" in res.error
    assert "pip install platformdirs" in res.error and "a flashdoctor bug" not in res.error
