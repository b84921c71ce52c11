"""What the SQLite store keeps in memory for local delivery under its change numbers
(storage/sqlite/changes.py): each answer must follow a change made by another process
(a second store on the same data directory, as a second worker), and the writer's kept
mailbox ids must never file a message into a mailbox that is no longer the one named,
even when a change number was not moved (a process killed between COMMIT and bump)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from postroom.storage.models import DeliveryTarget, FlagOp
from postroom.storage.sqlite.changes import MAILBOXES, SIEVE

pytestmark = pytest.mark.sqlite_only  # the SQLite store's caches and its writer

MSG = b"From: a@example.test\r\nTo: u@example.test\r\nSubject: kept\r\n\r\nbody\r\n"


async def _deliver_batch(store: Any, account_id: int, mailbox: str, n: int = 12) -> None:
    """Several deliveries at once, so that the writer takes its bulk path."""
    await asyncio.gather(*(store.deliver(MSG, [DeliveryTarget(account_id, mailbox)]) for _ in range(n)))


async def _count(store: Any, account_id: int, name: str) -> int:
    box = await store.get_mailbox(account_id, name)
    return 0 if box is None else (await store.mailbox_status(box.id)).messages


def _frozen(store: Any) -> None:
    """The store no longer sees any change number move (its kept answers stay 'valid')."""
    numbers = {slot: store._changes.read(slot) for slot in (SIEVE, MAILBOXES)}
    store._changes.read = numbers.__getitem__


def test_mailbox_names_follow_another_process(store_factory):
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            assert "Work" not in await s2.mailbox_names(a.id)
            await s1.create_mailbox(a.id, "Work")
            assert "Work" in await s2.mailbox_names(a.id)
            await s1.rename_mailbox(a.id, "Work", "Old")
            names = await s2.mailbox_names(a.id)
            assert "Old" in names and "Work" not in names
            await s1.delete_mailbox(a.id, "Old")
            assert "Old" not in await s2.mailbox_names(a.id)
    asyncio.run(t())


def test_vacation_entries_are_kept_only_while_valid(store_factory):
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            assert await s2.sieve_tracked(a.id, "vacation", "k", 1000.0) is None  # nothing kept for "no"
            assert await s1.sieve_track(a.id, "vacation", "k", 1000.0, 2000.0)
            assert await s2.sieve_tracked(a.id, "vacation", "k", 1500.0) == 1000.0
            assert await s2.sieve_tracked(a.id, "vacation", "k", 2000.0) is None  # expired
            # Kept, then the account goes: its entries with it (and its id may come back).
            assert await s2.sieve_tracked(a.id, "vacation", "k", 1500.0) == 1000.0
            await s1.delete_account("u@example.test")
            b = await s1.create_account("w@example.test", "{PLAIN}pw")
            assert await s2.sieve_tracked(b.id, "vacation", "k", 1500.0) is None
    asyncio.run(t())


def test_kept_mailbox_ids_follow_a_rename_in_another_process(store_factory):
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            await s1.create_mailbox(a.id, "Work")
            await _deliver_batch(s1, a.id, "Work")
            _frozen(s1)  # as if s2 died before moving the number
            await s2.rename_mailbox(a.id, "Work", "Old")
            await _deliver_batch(s1, a.id, "Work")
            # "Work" no longer exists: the copies fall back to INBOX, never into "Old".
            assert await _count(s1, a.id, "Old") == 12
            assert await _count(s1, a.id, "INBOX") == 12
    asyncio.run(t())


def test_kept_mailbox_id_given_to_another_accounts_mailbox(store_factory):
    """A deleted mailbox's id given out again (SQLite reuses the largest rowid) to another
    account's mailbox: a kept id must not file mail there."""
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            b = await s1.create_account("v@example.test", "{PLAIN}pw")
            work = await s1.create_mailbox(a.id, "Work")
            await _deliver_batch(s1, a.id, "Work")
            _frozen(s1)
            await s2.delete_mailbox(a.id, "Work")
            other = await s2.create_mailbox(b.id, "Stuff")
            assert other.id == work.id  # the case under test
            await _deliver_batch(s1, a.id, "Work")
            assert await _count(s1, b.id, "Stuff") == 0
            assert await _count(s1, a.id, "INBOX") == 12
    asyncio.run(t())


def test_changes_file_missing_means_nothing_is_kept(store_factory, tmp_path):
    """Without the shared file (it could not be made) every answer is read again."""
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            s2._changes.close()
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            assert (await s2.get_sieve_delivery(a.id)).script is None
            await s1.put_sieve_script(a.id, "main", "keep;\r\n", activate=True)
            assert (await s2.get_sieve_delivery(a.id)).script == ("main", "keep;\r\n")
            await s1.create_mailbox(a.id, "Work")
            assert "Work" in await s2.mailbox_names(a.id)
    asyncio.run(t())


def test_mailbox_index_follows_commits_of_any_process(store_factory):
    """An index brought up to date is given again without asking SQLite while no writer of
    the store committed since (the COMMITS change number), and read again after a commit of
    this process or another one."""
    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            box = await s1.get_mailbox(a.id, "INBOX")
            await s1.deliver(MSG, [DeliveryTarget(a.id)])
            reads = []
            small = s1.engine.read_small

            async def counted(fn: Any, *args: Any) -> Any:
                reads.append(fn)
                return await small(fn, *args)
            s1.engine.read_small = counted

            first = await s1.message_index(box.id)
            assert len(first) == 1 and reads
            reads.clear()
            assert await s1.message_index(box.id) is first and not reads  # nothing committed since
            await s2.deliver(MSG, [DeliveryTarget(a.id)])  # another process's commit
            assert len(await s1.message_index(box.id)) == 2 and reads
            reads.clear()
            assert len(await s1.message_index(box.id)) == 2 and not reads
            uid = (await s1.message_index(box.id)).uids[0]
            await s2.store_flags(box.id, [uid], FlagOp.ADD, frozenset({"\\Seen"}))
            idx = await s1.message_index(box.id)
            assert idx.messages([uid])[0].flags == frozenset({"\\Seen"})
            await s1.deliver(MSG, [DeliveryTarget(a.id)])  # this process's own commit
            assert len(await s1.message_index(box.id)) == 3
    asyncio.run(t())


def test_mailbox_index_is_read_again_after_a_while_without_commits(store_factory):
    """A process killed between its COMMIT and its bump leaves the number unmoved: kept
    indexes are read again after MAX_AGE seconds anyway."""
    from postroom.storage.sqlite.changes import MAX_AGE

    async def t():
        async with store_factory() as s1, store_factory() as s2:
            await s1.add_domain("example.test")
            a = await s1.create_account("u@example.test", "{PLAIN}pw")
            box = await s1.get_mailbox(a.id, "INBOX")
            assert len(await s1.message_index(box.id)) == 0
            s2._changes.bump = lambda *slots: None  # s2 commits, then dies before its bump
            await s2.deliver(MSG, [DeliveryTarget(a.id)])
            assert len(await s1.message_index(box.id)) == 0  # not seen yet: nothing moved
            number, when = s1._index_marks[box.id]
            s1._index_marks[box.id] = (number, when - MAX_AGE - 1)  # MAX_AGE seconds later
            assert len(await s1.message_index(box.id)) == 1
    asyncio.run(t())
