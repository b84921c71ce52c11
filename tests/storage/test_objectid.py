"""RFC 8474 object ids as the store gives them: ``Mailbox.object_id`` (MAILBOXID) and
``MessageInfo.email_id`` (EMAILID), derived from the mailbox row with its UIDVALIDITY and
from the stored-bytes id; neither may ever name another mailbox / other bytes."""

from __future__ import annotations

import asyncio
import re

from postroom.storage.models import DeliveryTarget, FlagOp

_OBJECTID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def msg(n: int) -> bytes:
    return b"From: a@x.test\r\nSubject: m%d\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n" % (n, n, n)


async def _account(store, address="u@example.test"):
    await store.add_domain("example.test")
    return await store.create_account(address, "{PLAIN}pw")


async def _expunge_all(s, mailbox_id):
    uids = [m.uid for m in await s.list_messages(mailbox_id)]
    await s.store_flags(mailbox_id, uids, FlagOp.ADD, frozenset({"\\Deleted"}))
    await s.expunge(mailbox_id)


def test_mailbox_object_id(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            b = await s.create_account("v@example.test", "x")
            ids = {m.object_id for acct in (a, b) for m in await s.list_mailboxes(acct.id)}
            assert len(ids) == 12 and all(_OBJECTID.match(i) for i in ids)
            work = await s.create_mailbox(a.id, "Work")
            await s.rename_mailbox(a.id, "Work", "Jobs")
            assert (await s.get_mailbox(a.id, "Jobs")).object_id == work.object_id
            seen = ids | {work.object_id}
            for _ in range(3):  # delete and re-create: the row id may come back, the MAILBOXID not
                await s.delete_mailbox(a.id, "Jobs")
                again = await s.create_mailbox(a.id, "Jobs")
                assert again.object_id not in seen
                seen.add(again.object_id)
    asyncio.run(t())


def test_email_id_shared_by_copies(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            b = await s.create_account("v@example.test", "x")
            inbox = await s.get_mailbox(a.id, "INBOX")
            arch = await s.get_mailbox(a.id, "Archive")
            trash = await s.get_mailbox(a.id, "Trash")
            await s.deliver(msg(1), [DeliveryTarget(a.id), DeliveryTarget(b.id)])
            await s.deliver(msg(2), [DeliveryTarget(a.id)])
            m1, m2 = await s.list_messages(inbox.id)
            assert m1.email_id != m2.email_id and _OBJECTID.match(m1.email_id)
            other = (await s.list_messages((await s.get_mailbox(b.id, "INBOX")).id))[0]
            assert other.email_id == m1.email_id  # one stored copy for both recipients
            await s.copy_messages(inbox.id, [m1.uid], arch.id)
            await s.move_messages(inbox.id, [m2.uid], trash.id)
            assert [m.email_id for m in await s.list_messages(arch.id)] == [m1.email_id]
            assert [m.email_id for m in await s.list_messages(trash.id)] == [m2.email_id]
            idx = await s.message_index(trash.id)
            assert [m.email_id for m in idx.messages(idx.uids)] == [m2.email_id]
    asyncio.run(t())


def test_email_id_never_reused(store_factory):
    """The newest stored bytes freed (EXPUNGE, DELETE of a mailbox or an account) must not
    hand their id to the next message, on the single and the batched delivery paths."""
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            seen: set[str] = set()

            async def newest() -> str:
                ids = [m.email_id for m in await s.list_messages(inbox.id)]
                fresh = [i for i in ids if i not in seen]
                assert len(fresh) >= 1, (ids, seen)
                seen.update(fresh)
                return fresh[-1]

            await s.deliver(msg(1), [DeliveryTarget(a.id)])
            await newest()
            await _expunge_all(s, inbox.id)
            await s.deliver(msg(2), [DeliveryTarget(a.id)])
            await newest()
            await _expunge_all(s, inbox.id)
            await s.append(a.id, "INBOX", msg(3))
            await newest()
            await _expunge_all(s, inbox.id)
            await asyncio.gather(*(s.deliver(msg(10 + i), [DeliveryTarget(a.id)]) for i in range(8)))
            await newest()
            box = await s.create_mailbox(a.id, "Tmp")
            await s.append(a.id, "Tmp", msg(4))
            seen.update(m.email_id for m in await s.list_messages(box.id))
            await s.delete_mailbox(a.id, "Tmp")
            await _expunge_all(s, inbox.id)
            await asyncio.gather(*(s.deliver(msg(30 + i), [DeliveryTarget(a.id)]) for i in range(4)))
            before = set(seen)
            ids = {m.email_id for m in await s.list_messages(inbox.id)}
            assert len(ids) == 4 and not ids & before
            # The tombstone kept for the freed newest id is invisible to purge and reads.
            b = await s.create_account("w@example.test", "x")
            await s.deliver(msg(50), [DeliveryTarget(b.id)])
            await s.delete_account("w@example.test")
            await s.purge(min_age=0)
            for m in await s.list_messages(inbox.id):
                assert b"body 3" in await s.read_message(m)
            await s.deliver(msg(60), [DeliveryTarget(a.id)])
            last = (await s.list_messages(inbox.id))[-1]
            assert last.email_id not in before
    asyncio.run(t())
