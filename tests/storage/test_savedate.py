"""RFC 8514 save dates in the store: set by every way into a mailbox, and migration 3 on a
store made before it (its messages get none)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from rawsql import rawsql

from postroom.storage.models import DeliveryTarget, NewMessage
from postroom.storage.sqlite.schema import MIGRATIONS, _statements

MSG = b"From: a@x.test\r\nSubject: hi\r\n\r\nhello\r\n"
OLD = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))


def _recent(d: datetime | None) -> bool:
    now = datetime.now(timezone.utc)
    return d is not None and d.utcoffset() == timedelta(0) and now - timedelta(seconds=60) <= d <= now + timedelta(seconds=5)


def test_every_way_in_sets_savedate(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            await s.deliver(MSG, [DeliveryTarget(a.id), DeliveryTarget(a.id, "Sent")])
            await s.append(a.id, "INBOX", MSG, internaldate=OLD)
            await s.append_many(a.id, "Drafts", [NewMessage(MSG, internaldate=OLD), NewMessage(MSG)])
            inbox = await s.get_mailbox(a.id, "INBOX")
            drafts = await s.get_mailbox(a.id, "Drafts")
            for name in ("INBOX", "Sent", "Drafts"):
                mb = await s.get_mailbox(a.id, name)
                for m in await s.list_messages(mb.id):
                    assert _recent(m.savedate), (name, m)
            # The index (SELECT, SEARCH, FETCH) carries it too.
            idx = await s.message_index(inbox.id)
            assert _recent(idx.get(2).savedate) and idx.get(2).internaldate == OLD

            # Pretend INBOX's messages were saved long ago: COPY and MOVE give the new
            # copies a save date of now and keep the internal date (RFC 8514 §3).
            await rawsql(s, "UPDATE messages SET savedate = 1000 WHERE mailbox_id = ?", inbox.id)
            before = {m.uid: m for m in await s.list_messages(inbox.id)}
            assert before[2].savedate == datetime.fromtimestamp(1000, timezone.utc)
            res = await s.copy_messages(inbox.id, [2], drafts.id)
            (copied,) = await s.get_messages(drafts.id, [res.pairs[0][1]])
            assert _recent(copied.savedate) and copied.internaldate == OLD
            assert (await s.get_messages(inbox.id, [2]))[0].savedate == before[2].savedate  # source untouched
            res = await s.move_messages(inbox.id, [1, 2], drafts.id)
            moved = await s.get_messages(drafts.id, [d for _, d in res.pairs])
            assert [m.internaldate for m in moved] == [before[1].internaldate, OLD]
            assert all(_recent(m.savedate) for m in moved)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite's own schema migration
def test_migration_3_on_a_version_2_store_with_mail(store_factory, tmp_path):
    # A store as the previous release left it: schema version 2, an account with mail.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    for script in MIGRATIONS[:2]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO domains VALUES ('example.test')")
    conn.execute("INSERT INTO accounts(id, address, password_hash, created, quota_storage) "
                 "VALUES (1, 'u@example.test', 'h', 0, 5000)")
    conn.execute("INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq) "
                 "VALUES (1, 1, 'INBOX', 1, 3, 2), (2, 1, 'Archive', 2, 1, 1)")
    conn.execute("INSERT INTO blobs VALUES (1, 'none', 0, 100, 2, NULL)")
    conn.execute("INSERT INTO messages VALUES (1, 1, 1, '\\Seen', 981165906, 120, 100, 1), "
                 "(1, 2, 2, '', 981165906, 0, 250, 1)")
    conn.close()

    async def t():
        async with store_factory() as s:
            acct = await s.get_account("u@example.test")
            assert acct is not None and acct.password_hash == "h"
            assert (await s.get_quota(acct.id)).storage_limit == 5000  # migration 2's data kept
            old = await s.list_messages(1)
            assert [(m.uid, m.flags, m.size, m.savedate) for m in old] == [
                (1, frozenset({"\\Seen"}), 100, None), (2, frozenset(), 250, None)]
            assert old[0].internaldate == OLD and old[0].internaldate.utcoffset() == timedelta(hours=2)
            idx = await s.message_index(1)
            assert idx.get(1).savedate is None
            # New arrivals and copies of the old messages get one.
            d = await s.append(acct.id, "INBOX", MSG)
            assert _recent((await s.get_messages(1, [d.uid]))[0].savedate)
            res = await s.copy_messages(1, [1, 2], 2)
            assert all(_recent(m.savedate) for m in await s.list_messages(2))
            assert len(res.pairs) == 2
    asyncio.run(t())
    conn = sqlite3.connect(data / "store.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 3
    assert conn.execute("SELECT count(*) FROM messages WHERE mailbox_id = 1 AND savedate IS NULL").fetchone()[0] == 2
    conn.close()
