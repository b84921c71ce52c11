"""The counters over their SQLite file: sliding windows, all-or-nothing takes, the
write-behind cache, sharing between processes, surviving a reopen."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from postroom.abuse.counters import Ask, Counters, SqliteStore

T0 = 1_800_000_000.0  # a fixed "now" (Unix time) on a bucket boundary of every window used


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def counters(path: Path, refresh: float = 0.0) -> Counters:
    """Counters re-reading the file at every event (refresh 0): the shared total decides."""
    return Counters(SqliteStore(path), refresh=refresh)


def test_take_counts_until_the_limit(tmp_path: Path) -> None:
    c = counters(tmp_path / "r.sqlite")
    ask = Ask("ip:messages:192.0.2.1", 3, 600.0)

    async def go() -> list[int]:
        return [(await c.take([ask], T0 + i))[0] for i in range(5)]

    assert run(go()) == [0, 1, 2, 3, 3]  # refusals are not counted


def test_window_slides_in_tenths(tmp_path: Path) -> None:
    c = counters(tmp_path / "r.sqlite")
    peek = Ask("k", 100, 600.0, add=False)

    async def go() -> list[int]:
        for i in range(3):
            await c.take([Ask("k", 100, 600.0)], T0 + i)
        await c.take([Ask("k", 100, 600.0)], T0 + 120)
        await c.flush(T0 + 120)
        return [(await c.take([peek], T0 + t))[0] for t in (599, 600, 720)]

    assert run(go()) == [4, 1, 0]  # the first bucket (60 s wide) leaves the window at T0+600


def test_all_or_nothing(tmp_path: Path) -> None:
    c = counters(tmp_path / "r.sqlite")
    ip, net = Ask("ip:c:a", 10, 60.0), Ask("net:c:n", 2, 60.0)
    peek = Ask("ip:errors:a", 1, 60.0, add=False)

    async def go() -> list[list[int]]:
        return [await c.take([ip, net], T0), await c.take([ip, net], T0), await c.take([ip, net], T0),
                await c.take([ip], T0), await c.take([peek], T0), await c.take([peek], T0)]

    # net is full at the third: neither key counts it; a peek never counts.
    assert run(go()) == [[0, 0], [1, 1], [2, 2], [2], [0], [0]]


def test_pending_events_count_at_once_and_reach_the_file_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    c = counters(path, refresh=3600.0)  # never re-read: the process's own view
    other = SqliteStore(path)

    async def go() -> tuple[int, int, int, int]:
        await c.take([Ask("k", 10, 600.0)], T0)
        c.add("k", 600.0, T0)  # an error reply, counted synchronously
        before = (other.totals_now(["k"], T0) or {}).get("k", 0)
        mine = c.count("k")
        await c.flush(T0)
        after = (other.totals_now(["k"], T0) or {}).get("k", 0)
        return before, mine, after, c.count("k")

    assert run(go()) == (0, 2, 2, 2)


def test_rows_and_clear(tmp_path: Path) -> None:
    c = counters(tmp_path / "r.sqlite")

    async def go() -> None:
        await c.take([Ask("ip:messages:192.0.2.1", 9, 3600.0), Ask("user:messages:joe@example.org", 9, 3600.0)])
        await c.take([Ask("ip:connections:192.0.2.1", 9, 60.0)])
        await c.flush()
        rows = {r.key: (r.count, r.window) for r in await c.rows()}
        assert rows == {"ip:connections:192.0.2.1": (1, 60.0), "ip:messages:192.0.2.1": (1, 3600.0),
                        "user:messages:joe@example.org": (1, 3600.0)}
        assert await c.clear("192.0.2.1") == 2
        assert [r.key for r in await c.rows()] == ["user:messages:joe@example.org"]
        assert (await c.take([Ask("ip:messages:192.0.2.1", 9, 3600.0, add=False)]))[0] == 0
        c.add("ip:errors:192.0.2.9", 600.0)
        await c.flush()
        assert await c.clear(None) == 2
        assert await c.rows() == []
        await c.close()

    run(go())


def test_counts_survive_reopening(tmp_path: Path) -> None:
    async def first() -> None:
        c = counters(tmp_path / "r.sqlite", refresh=3600.0)
        await c.take([Ask("k", 10, 3600.0)])
        await c.close()  # writes what is pending

    async def second() -> int:
        return (await counters(tmp_path / "r.sqlite").take([Ask("k", 10, 3600.0)]))[0]

    run(first())
    assert run(second()) == 1


def _worker(path: str, n: int) -> None:
    async def go() -> None:
        c = Counters(SqliteStore(Path(path)), refresh=0.01)
        await c.open()
        for _ in range(n):
            await c.take([Ask("ip:connections:shared", 10**6, 3600.0)])
            await asyncio.sleep(0)
        await c.close()

    asyncio.run(go())


def _fork_context(path: Path) -> Any:
    """Creates the file's schema, then the fork context, with no SQLite connection open in
    this process: a forked worker would share that connection's lock bookkeeping (SQLite
    keeps one process's file locks in process memory), take no lock of its own on the
    file, and when this process closed the connection (``SqliteStore(path)`` left to the
    garbage collector, which may run between two forks) SQLite, seeing no other process
    on the file, checkpointed and deleted the WAL under the running workers: their later
    writes went to a deleted file, 300 or 600 of the 900 counts lost, or all of them."""
    schema = SqliteStore(path)
    schema.db.close()
    gc.collect()  # the connections earlier tests left for the collector (other files)
    return multiprocessing.get_context("fork")


def test_worker_processes_share_one_count(tmp_path: Path) -> None:
    """What ``workers = N`` does: several processes counting on one file at once."""
    path = tmp_path / "r.sqlite"
    ctx = _fork_context(path)
    procs = [ctx.Process(target=_worker, args=(str(path), 300)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    n = SqliteStore(path).totals_now(["ip:connections:shared"], 0.0)
    assert n == {"ip:connections:shared": 900}


def test_a_process_sees_the_others_within_the_refresh(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    a, b = counters(path, refresh=0.0), counters(path, refresh=0.0)
    ask = Ask("ip:connections:x", 3, 60.0)

    async def go() -> list[int]:
        await a.take([ask], T0)
        await a.take([ask], T0)
        await a.flush(T0)
        await b.take([ask], T0)  # 2 from a: the third and last
        await b.flush(T0)
        return [(await a.take([ask], T0))[0], (await b.take([ask], T0))[0]]

    assert run(go()) == [3, 3]


class _DownStore(SqliteStore):
    """A store whose writes fail (a locked file, a database away) until told otherwise."""

    down = True

    async def write(self, rows, now):  # type: ignore[no-untyped-def]
        return False if self.down else await super().write(rows, now)


def test_events_not_written_are_kept_for_the_next_flush(tmp_path: Path) -> None:
    store = _DownStore(tmp_path / "r.sqlite")
    c = Counters(store, refresh=3600.0)

    async def go() -> tuple[int, int, dict[str, int] | None]:
        await c.take([Ask("k", 10, 600.0)], T0)
        await c.take([Ask("k", 10, 600.0)], T0 + 1)
        await c.flush(T0 + 1)  # fails: still counted here
        kept = c.count("k")
        await c.take([Ask("old", 10, 600.0)], T0)
        await c.flush(T0 + 700)  # fails again; "old" and "k" are out of their window now
        gone = c.count("old")
        store.down = False
        await c.take([Ask("k", 10, 600.0)], T0 + 2)
        await c.flush(T0 + 2)
        return kept, gone, store.totals_now(["k"], T0 + 2)

    assert run(go()) == (2, 0, {"k": 1})


class _ToldStore(SqliteStore):
    """A real SQLite store that tells the test when a write found the file busy, or
    (``report``) tells another process, so that the test releases its lock only then."""

    def __init__(self, path: Path, report: Any = None) -> None:
        super().__init__(path)
        self.refused = asyncio.Event()
        self.written = asyncio.Event()
        self.report = report  # a multiprocessing SimpleQueue: the parent is told, once
        self.closing = False  # only the refusals of the last write (close) are reported

    async def write(self, rows, now):  # type: ignore[no-untyped-def]
        done = await super().write(rows, now)
        (self.written if done else self.refused).set()
        if not done and self.closing and self.report is not None:
            self.report.put("refused")
            self.report = None
        return done


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """What another worker in the middle of a long write (or a descheduled one) does to
    the file: holds its write lock until the test commits."""
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_close_waits_for_a_busy_file_and_loses_no_event(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = _ToldStore(path)
    c = Counters(store, refresh=3600.0, close_wait=60.0)
    holder = _hold_write_lock(path)

    async def go() -> None:
        await c.open()
        await c.take([Ask("k", 10, 600.0)])
        c.add("k", 600.0)
        closing = asyncio.create_task(c.close())
        await store.refused.wait()  # its last write found the file busy
        holder.execute("COMMIT")
        await closing

    run(go())
    holder.close()
    assert SqliteStore(path).totals_now(["k"], 0.0) == {"k": 2}  # before the fix: {} (both lost)


def test_close_gives_up_after_close_wait_and_says_so(tmp_path: Path, postroom_log: list[str]) -> None:
    path = tmp_path / "r.sqlite"
    c = Counters(SqliteStore(path), refresh=3600.0, close_wait=0.0)  # one attempt only
    holder = _hold_write_lock(path)

    async def go() -> None:
        await c.take([Ask("k", 10, 600.0)])
        await c.close()

    run(go())
    holder.close()
    assert SqliteStore(path).totals_now(["k"], 0.0) == {}
    assert [line for line in postroom_log if "could not be written" in line] == [
        "rate limits: 1 counted events could not be written to the shared counters in 0 s; "
        "this process's last counts are lost"]


def test_periodic_flush_keeps_events_while_the_file_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = _ToldStore(path)
    c = Counters(store, refresh=0.0)  # the flusher writes at every turn of the loop
    holder = _hold_write_lock(path)

    async def go() -> tuple[int, int]:
        await c.open()
        await c.take([Ask("k", 10, 600.0)])
        await store.refused.wait()  # a periodic write found the file busy
        kept = c.count("k")
        holder.execute("COMMIT")
        await store.written.wait()  # and a later one got through
        seen = c.count("k")
        await c.close()
        return kept, seen

    assert run(go()) == (1, 1)
    holder.close()
    assert SqliteStore(path).totals_now(["k"], 0.0) == {"k": 1}


class _SlowStore(SqliteStore):
    """A store whose write is awaited (PostgreSQL's is) and holds until the test lets it go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def write(self, rows, now):  # type: ignore[no-untyped-def]
        self.entered.set()
        await self.gate.wait()
        return await super().write(rows, now)


def test_close_lets_a_write_in_progress_finish(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = _SlowStore(path)
    c = Counters(store, refresh=0.0)

    async def go() -> None:
        await c.open()
        await c.take([Ask("k", 10, 600.0)])
        await store.entered.wait()  # the flusher is in the middle of writing the event
        closing = asyncio.create_task(c.close())
        await asyncio.sleep(0)  # close() starts while that write is still awaited
        store.gate.set()
        await closing

    run(go())
    # Before the fix close() cancelled the flusher in its write: the event was lost.
    assert SqliteStore(path).totals_now(["k"], 0.0) == {"k": 1}


def _busy_worker(path: str, n: int, go_on: Any, report: Any) -> None:
    go_on.wait()  # until the parent holds the lock

    async def go() -> None:
        store = _ToldStore(Path(path), report)
        c = Counters(store, refresh=0.01, close_wait=60.0)
        await c.open()
        for _ in range(n):
            await c.take([Ask("ip:connections:shared", 10**6, 3600.0)])
            await asyncio.sleep(0)
        store.closing = True
        await c.close()

    asyncio.run(go())


def test_worker_processes_lose_nothing_when_the_file_is_busy_at_close(tmp_path: Path) -> None:
    """The flaky failure of test_worker_processes_share_one_count, made certain: every
    worker's last write at close finds the file locked (here by the test, under load by
    another worker held up longer than busy_timeout)."""
    path = tmp_path / "r.sqlite"
    ctx = _fork_context(path)
    go_on, report = ctx.Event(), ctx.SimpleQueue()
    procs = [ctx.Process(target=_busy_worker, args=(str(path), 50, go_on, report)) for _ in range(3)]
    for p in procs:
        p.start()
    # Locked only once the workers are forked: a child inheriting the open connection
    # would see the lock held by a connection of its own process forever (_fork_context).
    holder = _hold_write_lock(path)
    go_on.set()
    try:
        for _ in procs:
            assert report.get() == "refused"
    finally:
        holder.close()  # rolls back the empty transaction: the lock goes
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert SqliteStore(path).totals_now(["ip:connections:shared"], 0.0) == {"ip:connections:shared": 150}
