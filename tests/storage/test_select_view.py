"""``Store.select_view``: what SELECT reads, right before and after the message index is built.

On SQLite a mailbox whose index is not in memory is answered from aggregate queries (a
``MailboxView``) while the index is built in the background; PostgreSQL returns the index. Either
way the UIDs and counts must be those of the index, with gaps (expunges), flags and \\Recent.
"""

from __future__ import annotations

import asyncio

from postroom.storage.models import DeliveryTarget, FlagOp


def _msg(n: int) -> bytes:
    return b"From: a@x.test\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (n, n)


def _summary(view):  # type: ignore[no-untyped-def]
    st = view.status()
    return (list(view.uids), view.recent_uid, view.mailbox, st.messages, st.unseen, st.recent, st.size,
            st.first_unseen_uid)


def _fresh_cache(store) -> None:  # type: ignore[no-untyped-def]
    """Forget the in-memory indexes, as a new server process starts without them."""
    store._indexes.clear()


def test_select_view_agrees_with_the_index(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            acct = await s.create_account("u@example.test", "{PLAIN}pw")
            assert await s.select_view(acct.id, "INBOX") is not None  # empty mailbox
            for i in range(12):
                await s.deliver(_msg(i), [DeliveryTarget(acct.id)])
            inbox = await s.get_mailbox(acct.id, "INBOX")
            await s.claim_recent(inbox.id)
            for i in range(13, 16):
                await s.deliver(_msg(i), [DeliveryTarget(acct.id)])
            await s.store_flags(inbox.id, [1, 2, 4, 9], FlagOp.ADD, frozenset({"\\Seen"}))
            await s.store_flags(inbox.id, [3], FlagOp.ADD, frozenset({"$Seen-like", "\\Flagged"}))

            async def check(expect_uids: list[int]) -> None:
                _fresh_cache(s)
                view = await s.select_view(acct.id, "inbox")  # INBOX in any case
                idx = await s.message_index(inbox.id)  # waits for the background build
                assert list(view.uids) == expect_uids
                assert _summary(view) == _summary(idx)
                assert len(idx) == len(expect_uids) and idx.get(expect_uids[-1]) is not None
                again = await s.select_view(acct.id, "INBOX")  # the index now
                assert _summary(again) == _summary(idx)

            await check(list(range(1, 16)))  # no gaps
            await s.store_flags(inbox.id, [5, 6], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id, [5, 6])
            await check([1, 2, 3, 4, *range(7, 16)])  # gaps: the UIDs are read
            await s.store_flags(inbox.id, list(range(1, 16)), FlagOp.ADD, frozenset({"\\Seen"}))
            _fresh_cache(s)
            st = (await s.select_view(acct.id, "INBOX")).status()
            assert (st.unseen, st.first_unseen_uid) == (0, None)
            assert await s.select_view(acct.id, "No such box") is None
    asyncio.run(t())


def test_selects_during_the_build_and_changes_after_it(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            acct = await s.create_account("u@example.test", "{PLAIN}pw")
            for i in range(30):
                await s.deliver(_msg(i), [DeliveryTarget(acct.id)])
            inbox = await s.get_mailbox(acct.id, "INBOX")
            _fresh_cache(s)
            views = await asyncio.gather(*(s.select_view(acct.id, "INBOX") for _ in range(5)))
            await s.claim_recent(inbox.id)  # a \Recent claim moves no MODSEQ: the same counts, the new row
            later = await s.select_view(acct.id, "INBOX")
            assert {len(v.uids) for v in views} == {30} and later.recent_uid == 31
            assert later.status().recent == 0 and views[0].status().recent == 30
            # A change while (or after) the index is built is in the next answer.
            await s.deliver(_msg(99), [DeliveryTarget(acct.id)])
            await s.store_flags(inbox.id, [2], FlagOp.ADD, frozenset({"\\Seen"}))
            view = await s.select_view(acct.id, "INBOX")
            idx = await s.message_index(inbox.id)
            assert list(view.uids) == list(range(1, 32)) and _summary(view) == _summary(idx)
            assert view.status().unseen == 30 and "\\Seen" in idx.get(2).flags
            ch = await s.changes_since(inbox.id, idx.mailbox.highestmodseq)  # nothing since: complete, empty
            assert not ch.changed and not ch.expunged and ch.complete_since(idx.mailbox.highestmodseq)
            # Deleted while not indexed: no view, and the store closes cleanly with nothing pending.
            await s.create_mailbox(acct.id, "Gone")
            await s.deliver(_msg(7), [DeliveryTarget(acct.id, "Gone")])
            _fresh_cache(s)
            assert await s.select_view(acct.id, "Gone") is not None
            await s.delete_mailbox(acct.id, "Gone")
            assert await s.select_view(acct.id, "Gone") is None
    asyncio.run(t())
