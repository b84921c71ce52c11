"""Read-ahead for RETR: hits, misses, failed guesses, cleanup, and no read-ahead while reads do not wait."""

from __future__ import annotations

import asyncio

from pop3_fakes import FakeStore

from postroom.pop3.reader import MessageReader


def _counting(store: FakeStore, calls: list[int], slow: list[bool]) -> None:
    real = store.read_message

    async def counting(msg):  # type: ignore[no-untyped-def]
        calls.append(msg.uid)
        if slow[0]:
            await asyncio.sleep(0)  # a store that hops to its I/O thread
        return await real(msg)

    store.read_message = counting  # type: ignore[method-assign]


def test_read_ahead() -> None:
    async def go() -> None:
        store = FakeStore()
        acc = store.add_account("a@example.test", "pw")
        for i in range(3):
            store.add_message(acc, b"m%d\r\n" % i)
        m1, m2, m3 = await store.list_messages(acc.id)
        calls: list[int] = []
        _counting(store, calls, [True])
        r = MessageReader(store)  # type: ignore[arg-type]
        assert await r.read(m1, m2) == b"m0\r\n"
        await asyncio.sleep(0)
        assert calls == [1, 2]
        assert await r.read(m2, m3) == b"m1\r\n"  # served from the guess
        await asyncio.sleep(0)
        assert calls == [1, 2, 3]
        assert await r.read(m1) == b"m0\r\n"  # a jump: the guess for m3 is dropped
        assert calls == [1, 2, 3, 1]
        # A guess that failed is read again, so the real error (or data) comes back.
        r2 = MessageReader(store)  # type: ignore[arg-type]
        store.fail_reads = True
        try:
            await r2.read(m1, m2)
        except FileNotFoundError:
            pass
        await asyncio.sleep(0)
        store.fail_reads = False
        assert await r2.read(m2) == b"m1\r\n"
        await r.read(m1, m2)
        r.close()
        r2.close()
    asyncio.run(go())


def test_no_read_ahead_while_reads_do_not_wait() -> None:
    async def go() -> None:
        store = FakeStore()
        acc = store.add_account("a@example.test", "pw")
        for i in range(4):
            store.add_message(acc, b"m%d\r\n" % i)
        m1, m2, m3, m4 = await store.list_messages(acc.id)
        calls: list[int] = []
        slow = [False]
        _counting(store, calls, slow)
        r = MessageReader(store)  # type: ignore[arg-type]
        # Reads that return at once (page-cached bytes) start no background read.
        assert await r.read(m1, m2) == b"m0\r\n"
        assert await r.read(m2, m3) == b"m1\r\n"
        await asyncio.sleep(0)
        assert calls == [1, 2]
        # A read that waits (cold bytes) turns read-ahead back on.
        slow[0] = True
        assert await r.read(m3, m4) == b"m2\r\n"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert calls == [1, 2, 3, 4]
        assert await r.read(m4) == b"m3\r\n"
        assert calls == [1, 2, 3, 4]
        r.close()
    asyncio.run(go())
