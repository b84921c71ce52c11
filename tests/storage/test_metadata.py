"""IMAP METADATA entries in the store (RFC 5464): set, get by depth, limits, what deleting a
mailbox or an account and renaming one do, and the migration on a store made before it."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from rawsql import rawsql

from postroom.errors import AccountNotFound, MailboxNotFound
from postroom.storage.api import (
    MetadataLimits,
    MetadataTooLarge,
    MetadataTooMany,
    metadata_name_problem,
)
from postroom.storage.sqlite.schema import MIGRATIONS, _statements


async def _account(s, address="u@example.test"):
    await s.add_domain("example.test")
    return await s.create_account(address, "{PLAIN}pw")


def test_set_get_depth_and_remove(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            await s.set_metadata(a.id, inbox.id, {
                "/private/comment": b"mine", "/shared/Comment": b"ours",
                "/private/vendor/x/a": b"1", "/private/vendor/x/a/b": b"2", "/private/vendor/x/c": b"\x00\xff",
                "/private/vendor/xy": b"not below x"})
            # Case-insensitive names, returned lower-case, sorted.
            assert await s.get_metadata(a.id, inbox.id, ["/SHARED/COMMENT", "/private/comment"]) == [
                ("/private/comment", b"mine"), ("/shared/comment", b"ours")]
            assert await s.get_metadata(a.id, inbox.id, ["/private/vendor/x"]) == []
            assert await s.get_metadata(a.id, inbox.id, ["/private/vendor/x"], 1) == [
                ("/private/vendor/x/a", b"1"), ("/private/vendor/x/c", b"\x00\xff")]
            assert await s.get_metadata(a.id, inbox.id, ["/private/vendor/x"], None) == [
                ("/private/vendor/x/a", b"1"), ("/private/vendor/x/a/b", b"2"), ("/private/vendor/x/c", b"\x00\xff")]
            assert [n for n, _ in await s.get_metadata(a.id, inbox.id, ["/private", "/private/vendor"], None)] == [
                "/private/comment", "/private/vendor/x/a", "/private/vendor/x/a/b", "/private/vendor/x/c",
                "/private/vendor/xy"]
            # Server entries (mailbox None) are apart from the mailbox's.
            assert await s.get_metadata(a.id, None, ["/private/comment"]) == []
            await s.set_metadata(a.id, None, {"/private/comment": b"server"})
            assert await s.get_metadata(a.id, None, ["/private"], None) == [("/private/comment", b"server")]
            # Replace, set empty, remove (a missing entry's removal is no error).
            await s.set_metadata(a.id, inbox.id, {"/private/comment": b"", "/shared/comment": None,
                                                  "/shared/never": None})
            assert await s.get_metadata(a.id, inbox.id, ["/private/comment", "/shared/comment"]) == [
                ("/private/comment", b"")]
            # Another account sees none of it, and cannot write to this account's mailbox.
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            assert await s.get_metadata(b.id, inbox.id, ["/private"], None) == []
            assert await s.get_metadata(b.id, None, ["/private"], None) == []
            with pytest.raises(MailboxNotFound):
                await s.set_metadata(b.id, inbox.id, {"/private/x": b"1"})
            with pytest.raises(AccountNotFound):
                await s.set_metadata(9999, None, {"/private/x": b"1"})
    asyncio.run(t())


def test_limits_refuse_the_whole_request(store_factory):
    lim = MetadataLimits(value_size=10, entries=3, account_entries=5, account_size=200)

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            sent = await s.get_mailbox(a.id, "Sent")
            with pytest.raises(MetadataTooLarge) as exc:
                await s.set_metadata(a.id, inbox.id, {"/private/a": b"x", "/private/b": b"x" * 11}, lim)
            assert exc.value.limit == 10
            assert await s.get_metadata(a.id, inbox.id, ["/private"], None) == []  # nothing of it kept
            await s.set_metadata(a.id, inbox.id, {"/private/a": b"1", "/private/b": b"2", "/private/c": b"3"}, lim)
            with pytest.raises(MetadataTooMany):  # a fourth entry on the mailbox
                await s.set_metadata(a.id, inbox.id, {"/private/d": b"4"}, lim)
            # Replacing one and removing one while adding one stays within the limit.
            await s.set_metadata(a.id, inbox.id, {"/private/a": b"9", "/private/b": None, "/private/d": b"4"}, lim)
            await s.set_metadata(a.id, sent.id, {"/private/a": b"1", "/private/b": b"2"}, lim)
            with pytest.raises(MetadataTooMany):  # a sixth entry on the account
                await s.set_metadata(a.id, None, {"/private/a": b"1"}, lim)
            with pytest.raises(MetadataTooMany):  # the account's names and values over 200 octets
                await s.set_metadata(a.id, sent.id, {"/private/" + "n" * 150: b"1"}, lim)
            assert len(await s.get_metadata(a.id, sent.id, ["/private"], None)) == 2
            # Removing is allowed even when the account is over a (since lowered) limit.
            await s.set_metadata(a.id, inbox.id, {"/private/a": None}, MetadataLimits(entries=0))
    asyncio.run(t())


def test_delete_and_rename_mailbox_and_delete_account(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            box = await s.create_mailbox(a.id, "Work")
            await s.create_mailbox(a.id, "Work/Sub")
            sub = await s.get_mailbox(a.id, "Work/Sub")
            await s.set_metadata(a.id, box.id, {"/private/comment": b"work"})
            await s.set_metadata(a.id, sub.id, {"/private/comment": b"sub"})
            await s.set_metadata(a.id, None, {"/shared/comment": b"srv"})
            await s.rename_mailbox(a.id, "Work", "Job")  # keyed by id: the entries follow
            assert await s.get_metadata(a.id, box.id, ["/private/comment"]) == [("/private/comment", b"work")]
            assert (await s.get_mailbox(a.id, "Job/Sub")).id == sub.id
            await s.delete_mailbox(a.id, "Job")
            again = await s.create_mailbox(a.id, "Job")
            assert await s.get_metadata(a.id, again.id, ["/private/comment"]) == []
            assert await s.get_metadata(a.id, sub.id, ["/private/comment"]) == [("/private/comment", b"sub")]
            await s.delete_account("u@example.test")
            b = await _account(s)  # the same address again is a new account with nothing
            assert await s.get_metadata(b.id, None, ["/shared"], None) == []
            [(left,)] = await rawsql(s, "SELECT count(*) FROM metadata")
            assert left == 0
    asyncio.run(t())


def test_entries_survive_reopening(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            await s.set_metadata(a.id, None, {"/private/vendor/v/blob": bytes(range(256))})
        async with store_factory() as s:
            assert await s.get_metadata(a.id, None, ["/private/vendor/v/blob"]) == [
                ("/private/vendor/v/blob", bytes(range(256)))]
    asyncio.run(t())


@pytest.mark.parametrize("name, ok", [
    ("/private", True), ("/shared", True), ("/PRIVATE/Comment", True), ("/shared/vendor/v.x/a b", True),
    ("/private/", False), ("/private//a", False), ("/private/a*", False), ("/shared/%", False),
    ("/other/a", False), ("private/a", False), ("/privatex", False), ("/private/caf\u00e9", False),
    ("/private/a\x01", False), ("/private/a\x19", False), ("/private/a\x7f", True), ("/private/a\t", False), ("/private/" + "a" * 1020, False), ("", False),
])
def test_entry_names(name, ok):
    assert (metadata_name_problem(name) is None) is ok


@pytest.mark.sqlite_only  # SQLite's own schema migration
def test_migration_adds_metadata_to_an_existing_store(store_factory, tmp_path):
    # A store as the release before it left it: every earlier migration, an account with a mailbox.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    # The migrations before the one that adds the table (the order is the coordinator's).
    before = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE metadata(" in m)
    for script in MIGRATIONS[:before]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.execute("INSERT INTO domains VALUES ('example.test')")
    conn.execute("INSERT INTO accounts(id, address, password_hash, created) VALUES (1, 'u@example.test', 'h', 0)")
    conn.execute("INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext) VALUES (1, 1, 'INBOX', 1, 1)")
    conn.close()

    async def t():
        async with store_factory() as s:
            await s.set_metadata(1, 1, {"/private/comment": b"after the upgrade"})
            assert await s.get_metadata(1, 1, ["/private/comment"]) == [("/private/comment", b"after the upgrade")]
    asyncio.run(t())
    conn = sqlite3.connect(data / "store.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
