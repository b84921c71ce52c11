"""The SQLite store's group commit: what reaches the writer together, and the order of its
steps that durability rests on (a segment's bytes fsynced before the COMMIT of any row that
refers to them), also while another process holds the commit lock.

No timing is asserted: the order of events is recorded as it happens and checked afterwards.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from postroom.storage.models import DeliveryTarget
from postroom.storage.sqlite import segments
from postroom.storage.sqlite.store import SqliteStore

pytestmark = pytest.mark.sqlite_only


def msg(n: int) -> bytes:
    return b"From: a@x.test\r\nSubject: m%d\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n" % (n, n, n)


class Events:
    """What the writer thread did, in order: segment writes and fsyncs, SQL statements."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[str] = []
        self.synced = threading.Event()  # set by every segment fsync
        self._lock = threading.Lock()
        real_writev, real_sync = os.writev, os.fdatasync

        def writev(fd: int, buffers: Any) -> int:
            self.add("writev")
            return real_writev(fd, buffers)

        def fdatasync(fd: int) -> None:
            real_sync(fd)
            self.add("segment synced")
            self.synced.set()

        monkeypatch.setattr(segments.os, "writev", writev)
        monkeypatch.setattr(segments.os, "fdatasync", fdatasync)

    def add(self, what: str) -> None:
        with self._lock:
            self.log.append(what)



async def _open(tmp_path: Path) -> tuple[SqliteStore, int]:
    store = SqliteStore(tmp_path)
    await store.open()
    await store.add_domain("example.test")
    acct = await store.create_account("u@example.test", "{PLAIN}pw")
    return store, acct.id


async def _trace(store: SqliteStore, events: Events) -> None:
    def w(c: Any) -> None:
        c.set_trace_callback(lambda sql: events.add(sql.split()[0].upper()))
    await store.engine.write(w)


def _check_order(log: list[str]) -> None:
    """Every COMMIT after bytes were written comes after those bytes' fsync."""
    unsynced = False
    commits = 0
    for what in log:
        if what == "writev":
            unsynced = True
        elif what == "segment synced":
            unsynced = False
        elif what == "COMMIT":
            assert not unsynced, log
            commits += 1
    assert commits, log


def test_deliveries_of_one_loop_turn_are_one_batch(tmp_path: Path) -> None:
    """Deliveries started together reach the writer as one list and so share one commit
    (two fsyncs), instead of the writer taking a part of them on the first one's wake-up:
    also when the loop lets the GIL go in the middle of that turn (here a blocking call
    between the 20th and the 21st; on a loaded machine, the 5 ms switch interval)."""
    async def blocking() -> list[Any]:
        time.sleep(0.02)  # noqa: ASYNC251 - lets the GIL go, as a blocking call on the loop would
        return [None]

    async def t() -> None:
        store, account = await _open(tmp_path)
        try:
            before = store.engine.batches
            first = [store.deliver(msg(i), [DeliveryTarget(account)]) for i in range(20)]
            then = [store.deliver(msg(i), [DeliveryTarget(account)]) for i in range(20, 40)]
            out = await asyncio.gather(*first, blocking(), *then)
            del out[20]
            assert store.engine.batches == before + 1
            assert sorted(d.uid for [d] in out) == list(range(1, 41))
            inbox = await store.get_mailbox(account, "INBOX")
            assert inbox is not None
            got = {m.uid: await store.read_message(m) for m in await store.list_messages(inbox.id)}
            assert got == {d.uid: msg(i) for i, [d] in enumerate(out)}
        finally:
            await store.close()
    asyncio.run(t())


def test_segment_fsync_comes_before_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statements run while the segment's bytes go to the disk, but the COMMIT waits for
    their fsync: no row is ever durable before the bytes it names."""
    events = Events(monkeypatch)

    async def t() -> None:
        store, account = await _open(tmp_path)
        try:
            await _trace(store, events)
            for round_ in range(3):
                await asyncio.gather(*(store.deliver(msg(i), [DeliveryTarget(account)])
                                       for i in range(round_ * 10, round_ * 10 + 10)))
        finally:
            await store.close()
    asyncio.run(t())
    _check_order(events.log)
    # The bytes' fsync overlapped the statements: it came after BEGIN, not before it.
    first = events.log.index("writev")
    assert events.log.index("BEGIN", first) < events.log.index("segment synced", first), events.log


@pytest.mark.parametrize("writeback", [True, False])
def test_segment_fsync_while_another_process_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     writeback: bool) -> None:
    """While another process holds the commit lock, the writer fsyncs its segment before
    waiting for the lock (not while holding it, which would make that process wait), and
    the delivery still completes with its bytes and row durable. Also where
    ``sync_file_range`` is missing (the fsync then does all the work)."""
    if not writeback:
        monkeypatch.setattr(segments, "_START_WRITEBACK", None)
    events = Events(monkeypatch)

    async def t() -> None:
        store, account = await _open(tmp_path)
        try:
            await _trace(store, events)
            lock_fd = os.open(tmp_path / "store.db.writer", os.O_RDWR)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)  # "another process" commits
                events.add("lock taken elsewhere")
                events.synced.clear()
                pending = asyncio.ensure_future(store.deliver(msg(1), [DeliveryTarget(account)]))
                # Until the writer fsynced the segment, which it does before it waits for the lock
                # (the minute is only there so that a broken writer fails the test, not hangs it).
                assert await asyncio.get_running_loop().run_in_executor(None, events.synced.wait, 60)
                assert not pending.done()
                events.add("lock released elsewhere")
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(lock_fd)
            [d] = await pending
            inbox = await store.get_mailbox(account, "INBOX")
            assert inbox is not None
            [m] = await store.list_messages(inbox.id)
            assert m.uid == d.uid and await store.read_message(m) == msg(1)
        finally:
            await store.close()
    asyncio.run(t())
    log = events.log
    _check_order(log)
    held, released = log.index("lock taken elsewhere"), log.index("lock released elsewhere")
    assert held < log.index("segment synced", held) < released, log
    assert "BEGIN" not in log[held:released], log


@pytest.mark.parametrize("writeback", [True, False])
def test_segment_writer_start_writeback_then_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  writeback: bool) -> None:
    """``start_writeback`` is only a head start: the bytes are there and ``sync`` still
    syncs, with or without ``sync_file_range``, across a roll-over to a new segment."""
    if not writeback:
        monkeypatch.setattr(segments, "_START_WRITEBACK", None)
    w = segments.SegmentWriter(tmp_path, limit=300)
    where = w.append_many([b"a" * 100, b"b" * 100])
    w.start_writeback()
    w.start_writeback()  # nothing new: no call
    w.sync()
    assert not w.dirty
    where += w.append_many([b"c" * 150, b"d" * 150])  # the second rolls over to a new segment
    w.start_writeback()
    w.sync()
    w.close()
    reader = segments.SegmentReader(tmp_path)
    try:
        got = [reader.read(seg, off, n) for (seg, off), n in zip(where, (100, 100, 150, 150))]
    finally:
        reader.close()
    assert got == [b"a" * 100, b"b" * 100, b"c" * 150, b"d" * 150]
    assert len({seg for seg, _ in where}) == 2
