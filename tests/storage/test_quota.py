"""Per-account quota in the store: limits, usage, and migration 2 on a store made before it."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from postroom.errors import AccountNotFound
from postroom.storage.models import DeliveryTarget, FlagOp, Quota
from postroom.storage.sqlite.schema import MIGRATIONS, _statements

MSG = b"From: a@x.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_quota_limits_and_usage(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            assert await s.get_quota(a.id) == Quota(None, None, 0, 0)  # none by default
            assert await s.get_quota(9999) is None
            await s.deliver(MSG, [DeliveryTarget(a.id), DeliveryTarget(a.id, "Sent"), DeliveryTarget(b.id)])
            # Usage counts every mailbox of the account, not the others' mail.
            assert await s.get_quota(a.id, with_usage=True) == Quota(None, None, 2 * len(MSG), 2)
            await s.set_quota("U@example.test", 1000, 3)
            q = await s.get_quota(a.id)
            assert q == Quota(1000, 3, 2 * len(MSG), 2)
            assert q.allows(len(MSG)) and not q.allows(len(MSG), 2) and not q.allows(1000)
            assert not q.full
            inbox = await s.get_mailbox(a.id, "INBOX")
            sent = await s.get_mailbox(a.id, "Sent")
            await s.copy_messages(inbox.id, [1], sent.id)
            assert (await s.get_quota(a.id)).full  # the message limit is reached
            await s.store_flags(sent.id, [1, 2], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(sent.id)
            assert (await s.get_quota(a.id)).messages_used == 1
            await s.set_quota("u@example.test", None, None)
            assert not (await s.get_quota(a.id)).limited
            with pytest.raises(AccountNotFound):
                await s.set_quota("nobody@example.test", 1, 1)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite's own schema migration
def test_migration_adds_quota_to_an_existing_store(store_factory, tmp_path):
    # A store as the previous release left it: schema version 1, an account with mail.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    for stmt in _statements(MIGRATIONS[0]):
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO domains VALUES ('example.test')")
    conn.execute("INSERT INTO accounts(id, address, password_hash, created) VALUES (1, 'u@example.test', 'h', 0)")
    conn.execute("INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext) VALUES (1, 1, 'INBOX', 1, 3)")
    conn.execute("INSERT INTO blobs VALUES (1, 'none', 0, 100, 2, NULL)")
    conn.execute("INSERT INTO messages VALUES (1, 1, 1, '', 0, 0, 100, 1), (1, 2, 1, '', 0, 0, 250, 1)")
    conn.close()

    async def t():
        async with store_factory() as s:
            acct = await s.get_account("u@example.test")
            assert acct is not None and acct.password_hash == "h"
            assert await s.get_quota(acct.id, with_usage=True) == Quota(None, None, 350, 2)
            await s.set_quota("u@example.test", 400, None)
            assert (await s.get_quota(acct.id)).full is False
            assert not (await s.get_quota(acct.id)).allows(51)
            assert len(await s.list_messages(1)) == 2
    asyncio.run(t())
    conn = sqlite3.connect(data / "store.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
