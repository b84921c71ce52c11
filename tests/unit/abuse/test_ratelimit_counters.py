"""The counters over their SQLite file: sliding windows, all-or-nothing takes, the
write-behind cache, sharing between processes, surviving a reopen."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

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


def test_worker_processes_share_one_count(tmp_path: Path) -> None:
    """What ``workers = N`` does: several processes counting on one file at once."""
    path = tmp_path / "r.sqlite"
    SqliteStore(path)  # create the schema once
    ctx = multiprocessing.get_context("fork")
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
