"""The exchange between the ranks, over a key-value store, with every wait bounded.

    every rank      join/<r> (host, pid, ...), then starts its work in a thread
    rank 0          waits up to --timeout for all joins; publishes ``roster`` (who never joined)
    every rank      done/<r> = its result when its work is finished
    rank 0          waits up to --rank-timeout for the joined ranks' results; publishes ``plan``
                    (participants = the ranks that finished; the rest are unfinished)
    participants    form a collective (gloo); rank 0 reads the results from the store, builds and
                    prints the report, publishes ``outcome`` and broadcasts the exit code
    the others      a rank that joined late or did not finish reads that from roster / plan and
                    exits 1 on its own; no rank waits without a bound

The store says *who* is there (``torch.distributed``'s own env:// rendezvous blocks until everybody
has joined and cannot name the absent) and holds the results. Rank 0 receives nothing over gloo: gloo
aborts the whole receiving process (std::terminate) when a message is longer than the buffer posted for
it, so a rank that sends other sizes than it announced (another flashdoctor, a bug, anyone who can join)
would end rank 0 with no report for anyone. The collective only carries rank 0's exit code out, and tells
whether gloo works between the nodes: when it fails (a firewall, the wrong interface) the report warns and
the outcome goes through the store. This module does not import torch: it is run against any object with
the Store methods below (torch's TCPStore in production, an in-process store in tests).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from flashdoctor.actions.cluster.launch import LaunchInfo
from flashdoctor.decide.cluster import Gathered, JoinInfo, RankResult
from flashdoctor.errors import missing_dependency
from flashdoctor.knowledge.data import strict_json


class Store(Protocol):
    """The part of ``torch.distributed.Store`` used here."""

    def set(self, key: str, value: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def check(self, keys: list[str]) -> bool: ...

    def add(self, key: str, value: int) -> int: ...


class Collective(Protocol):
    """A process group over the participants (index 0 = rank 0), through which index 0 only sends."""

    def broadcast(self, code: int | None) -> int:
        """Index 0's exit code, on every participant."""
        ...

    def close(self) -> None: ...


CollectiveFactory = Callable[[int, int], Collective]  # (index, size) -> Collective


@dataclass(frozen=True)
class Timeouts:
    join_s: float = 60.0  # --timeout: how long rank 0 waits for every rank to join
    rank_s: float = 900.0  # --rank-timeout: how long a joined rank's check (and smoke test) may take
    poll_s: float = 0.1

    def to_json(self) -> dict[str, float]:
        return {"join_s": self.join_s, "rank_s": self.rank_s}


class Keys:
    """The rendezvous store's keys of one run, all under its prefix."""

    def __init__(self, run_id: str) -> None:
        self.prefix = f"flashdoctor/cluster/{run_id}/"
        self.joined, self.finished, self.left, self.roster, self.plan, self.outcome = (
            self.prefix + name for name in ("joined", "finished", "left", "roster", "plan", "outcome")
        )
        self.collective = self.prefix + "pg/"  # the gloo group's own keys below it

    def join(self, rank: int) -> str:
        return f"{self.prefix}join/{rank}"

    def done(self, rank: int) -> str:
        return f"{self.prefix}done/{rank}"


class _Worker(threading.Thread):
    """The rank's work, in a daemon thread: the main thread keeps the deadlines even when a probe
    hangs (a wedged driver, an import that never returns), and the process can still exit."""

    def __init__(self, rank: int, work: Callable[[], RankResult]) -> None:
        super().__init__(name=f"flashdoctor-rank-{rank}", daemon=True)
        self._rank = rank
        self._work = work
        self.result: RankResult | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.result = self._work()
        except Exception as exc:  # a bug in one rank must not stall the others: report it
            missing = missing_dependency(exc)  # this rank's Python lacks a dependency: say which, and how
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
            self.result = RankResult(
                rank=self._rank,
                exit_code=1,
                error=f"{missing.message} ({missing.hint})"
                if missing is not None
                else f"unexpected error {type(exc).__name__}: {exc}{where} (a flashdoctor bug)",
            )
        finally:
            self.finished.set()


# The most a rank's result (or join announcement) may take (a real one is 5-10 KB, a few 100 KB at most):
# a rank posts no more, and rank 0 parses no more (store.get has read the whole value by then).
MAX_RESULT_BYTES = 4 * 1024 * 1024


class _Ranked(Protocol):
    @property
    def rank(self) -> int: ...


_T = TypeVar("_T", bound=_Ranked)


def _payload(result: RankResult | None) -> bytes:
    return b"" if result is None else json.dumps(result.to_json()).encode()


def _read(raw: bytes, rank: int, from_json: Callable[[Any], _T]) -> _T | str:
    """What rank ``rank`` put in the store (``raw``), read by ``from_json``; or why it cannot be taken: over
    MAX_RESULT_BYTES, not UTF-8 or JSON, nested too deeply, not what ``from_json`` takes, or naming another
    rank than the one it was filed under. Another flashdoctor, a bug or anyone who can write to the store
    may send anything: that rank's error, not rank 0's crash (or its memory), nor another rank's entry."""
    if len(raw) > MAX_RESULT_BYTES:
        return (
            f"its result is {len(raw):,} bytes, over the {MAX_RESULT_BYTES // 2**20} MiB "
            f"({MAX_RESULT_BYTES:,} bytes) rank 0 reads from a rank: not sent"
        )
    try:
        got = from_json(strict_json(raw))
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON (a ValueError), no rank, too deep
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        return f"sent a result rank 0 cannot read: {why}"
    if got.rank != rank:  # filed under one rank, read as another's
        return f"sent a result that says it is rank {got.rank}"
    return got


def _decode(raw: bytes, rank: int) -> RankResult | None:
    """What rank ``rank`` put in the store (None: nothing); what cannot be read is that rank's error."""
    if not raw:
        return None
    got = _read(raw, rank, RankResult.from_json)
    return RankResult(rank=rank, exit_code=1, error=got) if isinstance(got, str) else got


def _join(raw: bytes, rank: int) -> JoinInfo:
    """Rank ``rank``'s join announcement; one that cannot be read (over the result bound: a real one is a
    few hundred bytes) or names another rank names only the rank."""
    got = _read(raw, rank, JoinInfo.from_json)
    return JoinInfo(rank=rank) if isinstance(got, str) else got


class SessionError(Exception):
    """This rank cannot go on (no roster, no plan, late, unfinished): the message says why."""


EXIT_BARRIER_S = 10.0


@dataclass(frozen=True)
class _Session:
    """One rank's run: what every step of the exchange shares (its place, the store, the bounds, the
    clock), and the last step of every rank that joined: learn the outcome, then leave together.

    torchrun stops all workers as soon as one exits non-zero. So no rank exits before every joined
    rank knows the outcome (and has called ``on_outcome``, which makes the stop end it with that
    code): each one counts itself in ``left`` and waits, bounded, for the others to do the same.
    """

    launch: LaunchInfo
    store: Store
    keys: Keys
    t: Timeouts
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    on_outcome: Callable[[int], None]

    def wait_key(self, key: str, within: float) -> bool:
        """Whether ``key`` appears in the store within ``within`` seconds."""
        deadline = self.clock() + within
        while not self.store.check([key]):
            if self.clock() >= deadline:
                return False
            self.sleep(self.t.poll_s)
        return True

    def post_done(self, worker: _Worker) -> None:
        payload = _payload(worker.result)
        if len(payload) > MAX_RESULT_BYTES:  # the store's copy says so instead
            payload = _payload(_decode(payload, self.launch.rank))
        self.store.set(self.keys.done(self.launch.rank), payload.decode())
        self.store.add(self.keys.finished, 1)

    def leave(self, code: int, bound: float | None = None) -> None:
        self.on_outcome(code)
        self.store.add(self.keys.left, 1)
        deadline = self.clock() + (min(self.t.join_s, EXIT_BARRIER_S) if bound is None else bound)
        try:
            while (
                self.store.add(self.keys.left, 0) < self.store.add(self.keys.joined, 0)
                and self.clock() < deadline
            ):
                self.sleep(self.t.poll_s)
        except Exception:
            # The store went away: its host (rank 0) saw everybody leave and left. The outcome is known.
            return

    def wait_outcome_and_leave(self) -> int | None:
        """For a rank outside the collective (late, unfinished, or it failed): rank 0's outcome
        from the store, bounded by the time rank 0 may still need (its collective's timeout)."""
        if not self.wait_key(self.keys.outcome, 2 * self.t.join_s + 10):
            return None
        code = int(self.store.get(self.keys.outcome).decode())
        self.leave(code)
        return code


def run_session(
    launch: LaunchInfo,
    store: Store,
    join: JoinInfo,
    work: Callable[[], RankResult],
    open_collective: CollectiveFactory,
    finish: Callable[[Gathered], int],
    timeouts: Timeouts,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_outcome: Callable[[int], None] = lambda code: None,
) -> int:
    """Run this rank's part. Returns the exit code every rank shares; raises SessionError when this
    rank is cut off (late, unfinished, rank 0 gone) — it must then exit 1.

    ``on_outcome(code)`` is called as soon as this rank knows how it will exit, before the exit
    barrier: the caller makes a launcher's stop request end the process with that code.
    """
    s = _Session(launch, store, Keys(launch.run_id), timeouts, clock, sleep, on_outcome)
    store.set(s.keys.join(launch.rank), json.dumps(join.to_json()))
    store.add(s.keys.joined, 1)
    worker = _Worker(launch.rank, work)
    worker.start()
    if launch.rank == 0:
        return _coordinate(s, worker, open_collective, finish)
    try:
        return _follow(s, worker, open_collective)
    except SessionError:
        raise
    except Exception as exc:  # the store's host (rank 0, or torchrun's agent) went away
        raise SessionError(
            f"lost the rendezvous store at {launch.rendezvous}: {type(exc).__name__}: {exc}"
        ) from None


def _coordinate(
    s: _Session, worker: _Worker, open_collective: CollectiveFactory, finish: Callable[[Gathered], int]
) -> int:
    store, keys, t, clock = s.store, s.keys, s.t, s.clock
    world = s.launch.world_size
    # 1. joins, bounded by --timeout. A counter keeps each poll O(1) for large worlds.
    deadline = clock() + t.join_s
    while store.add(keys.joined, 0) < world and clock() < deadline:
        s.sleep(t.poll_s)
    joined = [r for r in range(world) if store.check([keys.join(r)])]
    missing = [r for r in range(world) if r not in joined]
    store.set(keys.roster, json.dumps({"joined": joined, "missing": missing, "world_size": world}))
    joins = {r: _join(store.get(keys.join(r)), r) for r in joined}

    # 2. results of the joined ranks, bounded by --rank-timeout.
    deadline = clock() + t.rank_s
    posted = False
    while True:
        if worker.finished.is_set() and not posted:
            s.post_done(worker)
            posted = True
        if posted and store.add(keys.finished, 0) >= len(joined):
            break
        if clock() >= deadline:
            break
        s.sleep(t.poll_s)
    unfinished = [r for r in joined if not store.check([keys.done(r)])]
    # Every join counted here set its key first: more joins than keys of ranks 0..world-1 are processes
    # started with another WORLD_SIZE, or as a rank already taken (counted now, not at the roster, so that
    # one that came later is counted too).
    counted = store.add(keys.joined, 0)
    # join keys are never removed: of ranks 0..world-1 only the missing ones can have set theirs since
    extra_joins = max(0, counted - len(joined) - sum(1 for r in missing if store.check([keys.join(r)])))
    participants = sorted({0} | {r for r in joined if r not in unfinished})
    store.set(
        keys.plan, json.dumps({"participants": participants, "unfinished": unfinished, "missing": missing})
    )

    # 3. the results from the store; the collective only to send the outcome (rank 0 receives nothing over it).
    results: dict[int, RankResult] = {}
    for r in participants:
        if store.check([keys.done(r)]):
            res = _decode(store.get(keys.done(r)), r)
            if res is not None:
                results[r] = res
    transport, transport_error = "gloo", None
    coll: Collective | None = None
    try:
        coll = open_collective(0, len(participants))
    except Exception as exc:
        transport, transport_error = "store", f"{type(exc).__name__}: {exc}"[:2000]
    code = finish(
        Gathered(
            joins=joins,
            results=results,
            missing=tuple(missing),
            unfinished=tuple(unfinished),
            transport=transport,
            transport_error=transport_error,
            extra_joins=extra_joins,
        )
    )
    # 4. the outcome: in the store first (for the ranks whose collective failed), then broadcast.
    store.set(keys.outcome, str(code))
    if coll is not None:
        with contextlib.suppress(Exception):  # the others fall back to the store's copy
            coll.broadcast(code)
    # After a failed collective the others may still sit in theirs until the collective's timeout
    # (--timeout) before they read the outcome from the store: wait for them that long, since a
    # self-hosted store goes away with rank 0.
    s.leave(code, bound=None if coll is not None else t.join_s + EXIT_BARRIER_S)
    if coll is not None:
        _close(coll)
    return code


def _close(coll: Collective) -> None:
    with contextlib.suppress(Exception):
        coll.close()


def _follow(s: _Session, worker: _Worker, open_collective: CollectiveFactory) -> int:
    store, keys, t, clock = s.store, s.keys, s.t, s.clock
    r = s.launch.rank
    # Rank 0 publishes the roster --timeout after its own start; allow as much again for ranks that
    # started before it.
    if not s.wait_key(keys.roster, 2 * t.join_s):
        raise SessionError(f"rank 0 did not say who joined within {2 * t.join_s:g} s: is rank 0 running?")
    roster = json.loads(store.get(keys.roster).decode())
    world = roster.get("world_size", s.launch.world_size)
    if r >= world:  # rank 0 has no place for it: it reports the extra join, this rank says why
        s.wait_outcome_and_leave()
        raise SessionError(
            f"rank 0 counts a world of {world} ranks; this rank was started as rank {r} of "
            f"{s.launch.world_size} (WORLD_SIZE): the ranks disagree on the job's size"
        )
    if r in roster.get("missing", []):
        s.wait_outcome_and_leave()
        raise SessionError(f"joined after the {t.join_s:g} s deadline (--timeout): rank 0 reports it missing")
    deadline = clock() + t.rank_s + t.join_s
    posted = False
    while True:
        if worker.finished.is_set() and not posted:
            s.post_done(worker)
            posted = True
        if store.check([keys.plan]):
            break
        if clock() >= deadline:
            raise SessionError("rank 0 did not publish the results plan in time: is rank 0 still running?")
        s.sleep(t.poll_s)
    plan = json.loads(store.get(keys.plan).decode())
    participants: Sequence[int] = plan.get("participants", [])
    if r not in participants:
        s.wait_outcome_and_leave()
        raise SessionError(
            f"its check did not finish within {t.rank_s:g} s (--rank-timeout): rank 0 reports it unfinished"
        )
    try:
        coll = open_collective(list(participants).index(r), len(participants))
        code = coll.broadcast(None)
    except Exception:
        # The collective failed: rank 0 publishes the outcome in the store too.
        got = s.wait_outcome_and_leave()
        if got is None:
            raise SessionError("the collective failed and rank 0 published no outcome") from None
        return got
    s.leave(code)
    _close(coll)
    return code
