"""What local delivery reads per recipient (``Store.get_sieve_delivery``), and the engine's
on-the-loop read path those lookups use (``Engine.read_small``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from postroom.storage.api import SieveDelivery

KEEP = "keep;\r\n"


def test_get_sieve_delivery_gives_the_address_and_the_active_script(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            assert await s.get_sieve_delivery(a.id) == SieveDelivery("u@example.test", None)
            await s.put_sieve_script(a.id, "main", KEEP)  # stored, not active: nothing runs
            assert await s.get_sieve_delivery(a.id) == SieveDelivery("u@example.test", None)
            await s.set_active_sieve_script(a.id, "main")
            assert await s.get_sieve_delivery(a.id) == SieveDelivery("u@example.test", ("main", KEEP))
            assert await s.get_sieve_delivery(b.id) == SieveDelivery("v@example.test", None)  # per account
            # A replaced text is seen at once, and so is another script made active.
            await s.put_sieve_script(a.id, "main", "discard;\r\n")
            assert (await s.get_sieve_delivery(a.id)).script == ("main", "discard;\r\n")
            await s.put_sieve_script(a.id, "away", KEEP, activate=True)
            assert (await s.get_sieve_delivery(a.id)).script == ("away", KEEP)
            await s.set_active_sieve_script(a.id, None)
            assert (await s.get_sieve_delivery(a.id)).script is None
            assert await s.get_sieve_delivery(a.id + b.id + 100) is None  # no such account
            await s.delete_account("v@example.test")
            assert await s.get_sieve_delivery(b.id) is None
    asyncio.run(t())


def test_get_sieve_delivery_sees_what_another_process_committed(store_factory):
    """Two stores on one data directory (two workers): a script activated by one is what
    the other's next delivery reads."""
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            assert (await s2.get_sieve_delivery(a.id)).script is None
            await s1.put_sieve_script(a.id, "main", KEEP, activate=True)
            assert (await s2.get_sieve_delivery(a.id)).script == ("main", KEEP)
            # s2 keeps the script it read; every kind of change made by s1 is seen at once.
            await s1.put_sieve_script(a.id, "main", "discard;\r\n")
            assert (await s2.get_sieve_delivery(a.id)).script == ("main", "discard;\r\n")
            await s1.rename_sieve_script(a.id, "main", "renamed")
            assert (await s2.get_sieve_delivery(a.id)).script == ("renamed", "discard;\r\n")
            await s1.put_sieve_script(a.id, "other", KEEP)
            await s1.set_active_sieve_script(a.id, "other")
            assert (await s2.get_sieve_delivery(a.id)).script == ("other", KEEP)
            await s1.delete_sieve_script(a.id, "renamed")
            await s1.set_active_sieve_script(a.id, None)
            assert (await s2.get_sieve_delivery(a.id)).script is None
    asyncio.run(t())


def test_get_sieve_delivery_after_an_account_is_deleted_and_its_id_given_again(store_factory):
    """The script kept for an account id must not outlive the account: SQLite may give the
    id of a deleted (last) account to the next one."""
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            await s1.put_sieve_script(a.id, "main", KEEP, activate=True)
            assert (await s2.get_sieve_delivery(a.id)).script == ("main", KEEP)
            await s1.delete_account("u@example.test")
            b = await s1.create_account("w@example.test", "{PLAIN}pw")
            got = await s2.get_sieve_delivery(b.id)
            assert got is not None and got.address == "w@example.test" and got.script is None
    asyncio.run(t())


@pytest.mark.sqlite_only  # the SQLite engine's read_small
def test_read_small_runs_on_the_loop_thread_and_elsewhere_on_a_reader(store_factory):
    async def t():
        async with store_factory() as s:
            loop_thread = threading.get_ident()
            seen: list[int] = []

            def fn(c: sqlite3.Connection, x: int) -> int:
                seen.append(threading.get_ident())
                return c.execute("SELECT ? + 1", (x,)).fetchone()[0]

            assert await s.engine.read_small(fn, 1) == 2
            assert seen == [loop_thread]  # no hop to a reader thread
            # Called from another thread's loop: the loop's connection is never shared.
            assert await asyncio.to_thread(asyncio.run, s.engine.read_small(fn, 5)) == 6
            assert seen[1] != loop_thread
    asyncio.run(t())


@pytest.mark.sqlite_only  # the SQLite engine's read_small
def test_read_small_goes_to_a_reader_when_sqlite_would_wait(store_factory):
    """SQLITE_BUSY on the loop (its connection has no busy timeout: the rare moment a WAL
    reader would wait, e.g. while another connection recovers the WAL index) is no error:
    the same read runs on a reader thread, whose busy timeout may wait. Other errors are
    the caller's."""
    async def t():
        async with store_factory() as s:
            loop_thread = threading.get_ident()
            seen: list[int] = []

            def busy_on_the_loop(c: sqlite3.Connection) -> int:
                seen.append(threading.get_ident())
                if threading.get_ident() == loop_thread:
                    exc = sqlite3.OperationalError("database is locked")
                    exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
                    raise exc
                return c.execute("SELECT 7").fetchone()[0]

            assert await s.engine.read_small(busy_on_the_loop) == 7
            assert seen[0] == loop_thread and seen[1] != loop_thread

            def broken(c: sqlite3.Connection) -> int:
                return c.execute("SELECT * FROM no_such_table").fetchone()[0]

            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                await s.engine.read_small(broken)
    asyncio.run(t())


@pytest.mark.sqlite_only  # the SQLite engine's read_small
def test_read_small_leaves_no_snapshot_open(store_factory, tmp_path):
    """Autocommit on the loop's connection: once a lookup has returned, its snapshot is gone,
    so it never keeps the writer's checkpoints from emptying the WAL (an open one would)."""
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            await s.put_sieve_script(a.id, "main", KEEP, activate=True)
            assert (await s.get_sieve_delivery(a.id)).script == ("main", KEEP)
            assert (await s.get_mailbox(a.id, "INBOX")).name == "INBOX"
            assert await s.sieve_tracked(a.id, "vacation", "x", 0.0) is None
            await s.add_domain("other.test")  # a commit after the lookups
            checkpointer = sqlite3.connect(tmp_path / "data" / "store.db", isolation_level=None, timeout=0)
            try:
                busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0
                # The check itself can see a held snapshot: a cursor left open keeps one.
                held = await s.engine.read_small(lambda c: c.execute("SELECT name FROM domains"))
                assert held.fetchone() is not None
                await s.add_domain("third.test")
                busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 1
                del held
                busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0
            finally:
                checkpointer.close()
    asyncio.run(t())
