"""The store contract: what every backend must do (run over each backend)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from postroom.errors import AccountExists, DomainNotFound, MailboxExists, MailboxNotFound, MaildropLocked
from postroom.storage.models import DeliveryTarget, FlagOp

MSG = b"From: a@x.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def msg(n: int) -> bytes:
    return b"From: a@x.test\r\nSubject: m%d\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n" % (n, n, n)


async def _seen(store, mailbox_id):
    """Wait until another store's write to the mailbox reached ``store``. On PostgreSQL a node
    learns of other nodes' changes by notification (milliseconds after their commit) and
    serves its cache until then (docs/storage.md, PostgreSQL backend); SQLite reads the shared file at
    each call."""
    current = getattr(store, "_current", None)  # PostgresStore: mailboxes whose cache is trusted
    deadline = time.monotonic() + 5
    while current is not None and mailbox_id in current:
        assert time.monotonic() < deadline, "no notification arrived"
        await asyncio.sleep(0.005)


async def _account(store, address="u@example.test"):
    await store.add_domain("example.test")
    return await store.create_account(address, "{PLAIN}pw")


async def _inbox_with(store, count, pad=b""):
    """A new account u@example.test whose INBOX holds msg(i) + pad for i < count."""
    a = await _account(store)
    inbox = await store.get_mailbox(a.id, "INBOX")
    for i in range(count):
        await store.deliver(msg(i) + pad, [DeliveryTarget(a.id)])
    return a, inbox


async def _inbox_of(data_dir) -> list[bytes]:
    """The messages of u@example.test's INBOX in the store at ``data_dir``, read back."""
    from postroom.storage.sqlite.store import SqliteStore

    async with SqliteStore(data_dir) as b:
        acct = await b.get_account("u@example.test")
        inbox = await b.get_mailbox(acct.id, "INBOX")
        return [await b.read_message(m) for m in await b.list_messages(inbox.id)]


def test_accounts_domains_aliases(store_factory):
    async def t():
        async with store_factory() as s:
            with pytest.raises(DomainNotFound):
                await s.create_account("u@nodomain.test", "x")
            acct = await _account(s)
            with pytest.raises(AccountExists):
                await s.create_account("U@example.test", "x")
            assert (await s.get_account("U@Example.test")).id == acct.id
            names = {m.name: m.special_use for m in await s.list_mailboxes(acct.id)}
            assert names == {"INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
                             "Junk": "\\Junk", "Archive": "\\Archive"}
            assert set(await s.list_subscriptions(acct.id)) == set(names)
            await s.set_alias("team@example.test", ["u@example.test", "x@remote.test"])
            assert (await s.get_alias("TEAM@example.test")).targets == ("u@example.test", "x@remote.test")
            await s.set_password_hash("u@example.test", "new")
            assert (await s.get_account("u@example.test")).password_hash == "new"
            await s.delete_account("u@example.test")
            assert await s.get_account("u@example.test") is None
            assert await s.list_domains() == ["example.test"]
    asyncio.run(t())


def test_default_internaldate_is_now_in_local_zone(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            before = int(time.time())
            await s.deliver(MSG, [DeliveryTarget(a.id)], crlf=True)
            after = time.time()
            [m] = await s.list_messages((await s.get_mailbox(a.id, "INBOX")).id)
            assert before <= m.internaldate.timestamp() <= after
            local = datetime.fromtimestamp(m.internaldate.timestamp()).astimezone().utcoffset()
            assert m.internaldate.utcoffset() == local
            assert await s.read_message(m) == MSG
    asyncio.run(t())


def test_deliver_read_flags_expunge(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            b = await _account(s, "v@example.test")
            date = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
            res = await s.deliver(MSG, [DeliveryTarget(a.id), DeliveryTarget(b.id, "Nope")], date)
            assert [d.uid for d in res] == [1, 1]
            inbox = await s.get_mailbox(a.id, "inbox")
            [m] = await s.list_messages(inbox.id)
            assert await s.read_message(m) == MSG
            assert m.size == len(MSG) and m.internaldate == date and m.internaldate.utcoffset() == timedelta(hours=2)
            st = await s.read_structure(m)
            assert st is not None
            # b's target mailbox did not exist: delivery fell back to INBOX
            assert (await s.get_mailbox(b.id, "INBOX")).uidnext == 2
            r = await s.store_flags(inbox.id, [1], FlagOp.ADD, frozenset({"\\Seen", "work"}))
            assert r.updated[0].flags == {"\\Seen", "work"} and r.updated[0].modseq > m.modseq
            r2 = await s.store_flags(inbox.id, [1], FlagOp.ADD, frozenset({"\\Seen"}))
            assert r2.updated == ()  # no real change, no new MODSEQ
            r3 = await s.store_flags(inbox.id, [1], FlagOp.REMOVE, frozenset({"work"}), unchangedsince=m.modseq)
            assert r3.failed == (1,)
            status = await s.mailbox_status(inbox.id)
            assert (status.messages, status.unseen) == (1, 0)
            assert await s.expunge(inbox.id) == []
            await s.store_flags(inbox.id, [1], FlagOp.ADD, frozenset({"\\Deleted"}))
            before = (await s.get_mailbox_by_id(inbox.id)).highestmodseq
            assert await s.expunge(inbox.id) == [1]
            ch = await s.changes_since(inbox.id, before)
            assert ch.expunged == (1,) and ch.mailbox.highestmodseq > before
            # the other copy still reads fine (bytes are shared, refcounted)
            [m2] = await s.list_messages((await s.get_mailbox(b.id, "INBOX")).id)
            assert await s.read_message(m2) == MSG
    asyncio.run(t())


def test_uid_and_modseq_monotonic(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            results = await asyncio.gather(*(s.deliver(msg(i), [DeliveryTarget(a.id)]) for i in range(200)))
            uids = sorted(r[0].uid for r in results)
            assert uids == list(range(1, 201))
            msgs = await s.list_messages(inbox.id)
            modseqs = [m.modseq for m in msgs]
            assert len(set(modseqs)) == 200 and modseqs == sorted(modseqs)
            last = (await s.get_mailbox_by_id(inbox.id)).highestmodseq
            for op in range(20):
                await s.store_flags(inbox.id, [op + 1], FlagOp.ADD, frozenset({"\\Flagged"}))
                hm = (await s.get_mailbox_by_id(inbox.id)).highestmodseq
                assert hm > last
                last = hm
            await s.store_flags(inbox.id, [1, 2], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
            r = await s.deliver(msg(999), [DeliveryTarget(a.id)])
            assert r[0].uid == 201  # UIDs are never reused
            # group commit really batched the concurrent deliveries (SQLite's writer thread;
            # PostgreSQL's group commit is its own and not visible from here)
            if hasattr(s, "engine"):
                assert s.engine.batches < 200
    asyncio.run(t())


def test_mailboxes_copy_move_rename_recent(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            work = await s.create_mailbox(a.id, "Work")
            await s.create_mailbox(a.id, "Work/Sub")
            with pytest.raises(MailboxExists):
                await s.create_mailbox(a.id, "Work")
            for i in range(3):
                await s.deliver(msg(i), [DeliveryTarget(a.id)])
            assert await s.claim_recent(inbox.id) == 1
            assert await s.claim_recent(inbox.id) == 4
            res = await s.copy_messages(inbox.id, [1, 3], work.id)
            assert res.pairs == ((1, 1), (3, 2)) and res.uidvalidity == work.uidvalidity
            mv = await s.move_messages(inbox.id, [2], work.id)
            assert mv.pairs == ((2, 3),)
            assert [m.uid for m in await s.list_messages(inbox.id)] == [1, 3]
            await s.rename_mailbox(a.id, "Work", "Jobs")
            names = [m.name for m in await s.list_mailboxes(a.id)]
            assert "Jobs" in names and "Jobs/Sub" in names and "Work" not in names
            jobs = await s.get_mailbox(a.id, "Jobs")
            assert jobs.uidvalidity == work.uidvalidity and len(await s.list_messages(jobs.id)) == 3
            await s.delete_mailbox(a.id, "Jobs")
            with pytest.raises(MailboxNotFound):
                await s.delete_mailbox(a.id, "Jobs")
            again = await s.create_mailbox(a.id, "Jobs")
            assert again.uidvalidity > work.uidvalidity  # never reused for the same name
            with pytest.raises(MailboxNotFound):
                await s.append(a.id, "Missing", MSG)
            d = await s.append(a.id, "Jobs", MSG, frozenset({"\\Seen"}))
            assert d.uid == 1
    asyncio.run(t())


def test_watch_and_maildrop_lock(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            w = s.watch(inbox.id)
            assert await w.wait(0.05) is False
            assert w.pending() is False
            await s.deliver(MSG, [DeliveryTarget(a.id)])
            assert await w.wait(2) is True
            assert w.pending() is False  # reset by the wait
            await w.wait(0.6)  # the cross-process poller's first sighting may wake once
            other = await s.create_mailbox(a.id, "Other")
            await s.append(a.id, "Other", MSG)
            assert await w.wait(0.6) is False  # a change elsewhere does not wake this watch
            await s.store_flags(inbox.id, [1], FlagOp.ADD, frozenset({"\\Seen"}))
            assert await w.wait(2) is True
            w.close()
            assert other.id != inbox.id
            async with s.lock_maildrop(a.id):
                with pytest.raises(MaildropLocked):
                    async with s.lock_maildrop(a.id):
                        pass
            async with s.lock_maildrop(a.id):
                pass
    asyncio.run(t())


def test_bare_lf_stored_as_crlf(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            d = await s.append(a.id, "INBOX", b"Subject: x\n\nline\r\nbare\n")
            [m] = await s.get_messages(d.mailbox_id, [d.uid])
            raw = await s.read_message(m)
            assert raw == b"Subject: x\r\n\r\nline\r\nbare\r\n" and m.size == len(raw)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_purge_reclaims_expunged_space(store_factory):
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            for i in range(20):
                await s.deliver(msg(i) + b"x" * 5000, [DeliveryTarget(a.id)])
            await s.store_flags(inbox.id, list(range(1, 16)), FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
            old = await s.list_messages(inbox.id)
        seg_dir = s.dir / "segments"
        before = {p.name for p in seg_dir.glob("*.seg")}
        async with store_factory() as s2:  # the first writer's segment is no longer open
            assert await s2.purge(min_age=3600) == (0, 0)  # too young: left alone
            removed, freed = await s2.purge(min_age=0)
            assert removed == 1 and freed > 15 * 5000
            after = {p.name for p in seg_dir.glob("*.seg")}
            assert not (before & after)
            for m, n in zip(old, range(15, 20)):
                # records read before the purge still work (the store finds the new place)
                assert await s2.read_message(m) == msg(n) + b"x" * 5000
            fresh = await s2.list_messages(inbox.id)
            assert [await s2.read_message(m) for m in fresh] == [msg(n) + b"x" * 5000 for n in range(15, 20)]
            # all expunged: the next purge deletes the whole segment
            await s2.store_flags(inbox.id, [m.uid for m in fresh], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s2.expunge(inbox.id)
        async with store_factory() as s3:
            removed, _ = await s3.purge(min_age=0)
            assert removed == 1 and not list(seg_dir.glob("*.seg"))
    asyncio.run(t())


def test_message_index_and_batch_reads(store_factory):
    """message_index: current at each call (also for other processes' writes), immutable,
    and agreeing with list_messages and mailbox_status; read_messages/read_structures."""
    async def t():
        async with store_factory() as s, store_factory() as other:  # other: a second process
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            for i in range(5):
                await s.deliver(msg(i), [DeliveryTarget(a.id)])
            await s.store_flags(inbox.id, [2, 4], FlagOp.ADD, frozenset({"\\Seen", "work"}))
            idx = await s.message_index(inbox.id)
            assert list(idx.uids) == [1, 2, 3, 4, 5] and len(idx) == 5 and 3 in idx and 9 not in idx
            assert idx.messages([5, 9, 1]) == [m for m in await s.list_messages(inbox.id) if m.uid in (5, 1)][::-1]
            assert idx.get(2) == (await s.get_messages(inbox.id, [2]))[0] and idx.get(9) is None
            assert idx.with_flag("\\Seen") == {2, 4} == idx.with_flag("work") and idx.with_flag("x") == set()
            assert idx.uid_set() == {1, 2, 3, 4, 5} and idx.size_of(1) == len(msg(0)) and idx.size_of(9) is None
            assert idx.status() == await s.mailbox_status(inbox.id)
            assert idx.mailbox == await s.get_mailbox_by_id(inbox.id)
            assert await s.message_index(inbox.id) is idx  # nothing changed: the same index
            assert await s.mailbox_index(a.id, "inbox") is idx  # by name (INBOX in any case)
            assert await s.mailbox_index(a.id, "Nope") is None
            msgs = idx.messages(idx.uids)
            assert await s.read_messages(msgs[::-1]) == [msg(i) for i in range(4, -1, -1)]
            assert await s.read_messages([]) == []
            structures = await s.read_structures(msgs)
            assert [p.size for p in structures] == [len(msg(i)) for i in range(5)]
            assert structures == [await s.read_structure(m) for m in msgs]
            # Changes by "another process" are seen at the next call; the old index stays as it was.
            await other.store_flags(inbox.id, [1], FlagOp.ADD, frozenset({"\\Flagged"}))
            await other.store_flags(inbox.id, [2], FlagOp.ADD, frozenset({"\\Deleted"}))
            assert await other.expunge(inbox.id) == [2]
            await other.deliver(msg(7), [DeliveryTarget(a.id)])
            await _seen(s, inbox.id)
            idx2 = await s.mailbox_index(a.id, "INBOX")
            assert idx2 is not None and idx2 is await s.message_index(inbox.id)
            assert list(idx2.uids) == [1, 3, 4, 5, 6] and idx2.with_flag("\\Flagged") == {1}
            assert idx2.with_flag("\\Seen") == {4} and idx2.messages(idx2.uids) == await s.list_messages(inbox.id)
            assert idx2.status() == await s.mailbox_status(inbox.id)
            assert list(idx.uids) == [1, 2, 3, 4, 5] and idx.with_flag("\\Flagged") == set()
            # \Recent boundary: claimed by the first caller, visible in the index.
            assert idx2.recent_uid == 1
            assert await s.claim_recent(inbox.id) == 1
            idx3 = await s.message_index(inbox.id)
            assert idx3.recent_uid == idx3.mailbox.uidnext == 7 and idx3.status().recent == 0
            # A deleted mailbox is gone; one re-created under that name starts empty.
            work = await s.create_mailbox(a.id, "Work")
            await s.append(a.id, "Work", msg(8))
            assert len(await s.message_index(work.id)) == 1
            await other.delete_mailbox(a.id, "Work")
            await _seen(s, work.id)
            with pytest.raises(MailboxNotFound):
                await s.message_index(work.id)
            assert await s.mailbox_index(a.id, "Work") is None
            again = await other.create_mailbox(a.id, "Work")
            assert len(await s.message_index(again.id)) == 0
            by_name = await s.mailbox_index(a.id, "Work")
            assert by_name is not None and by_name.mailbox == again and len(by_name) == 0
    asyncio.run(t())



def test_segment_reader_descriptors_survive_eviction(tmp_path):
    """Many segments read from many threads with a tiny descriptor cache: every read
    returns its own bytes (a closed-and-reused descriptor would return another file's)."""
    import os
    import threading

    from postroom.storage.sqlite.segments import SegmentReader

    names = []
    for i in range(12):
        name = f"seg{i}"
        (tmp_path / f"{name}.seg").write_bytes(bytes([65 + i]) * 4096)
        names.append(name)
    reader = SegmentReader(tmp_path, max_open=2)
    errors = []

    def work(k):
        for j in range(300):
            n = names[(k * 7 + j) % len(names)]
            want = bytes([65 + names.index(n)]) * 100
            got = reader.read(n, 100, 100)
            cached = reader.read_cached(n, 200, 100)
            if got != want or (cached is not None and cached != want):
                errors.append((n, got[:5]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader.close()
    assert not errors, errors[:3]
    assert os.listdir(tmp_path)


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_structure_from_an_older_parser_is_parsed_again(store_factory):
    import json

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            d = await s.deliver(MSG, [DeliveryTarget(a.id)])
            [m] = await s.get_messages(d[0].mailbox_id, [d[0].uid])
            good = await s.read_structure(m)

            def downgrade(c):
                row = json.loads(c.execute("SELECT structure FROM blobs").fetchone()[0])
                row["version"] = 1
                row["size"] = 1  # visibly wrong, as an old parser's offsets may be
                c.execute("UPDATE blobs SET structure = ?", (json.dumps(row),))
            await s.engine.write(downgrade)
            s._structures.clear()
            again = await s.read_structure(m)
            assert again == good and again.size == len(MSG)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_batched_deliveries_one_bad_request_fails_alone(store_factory):
    """Concurrent deliveries and APPENDs share one commit (the bulk path, also with
    several targets per message); an APPEND to a missing mailbox in the middle of a
    batch fails alone and the others keep their places."""
    async def t():
        async with store_factory() as s:
            a = await _account(s)
            b = await _account(s, "v@example.test")
            inbox = await s.get_mailbox(a.id, "INBOX")
            vbox = await s.get_mailbox(b.id, "INBOX")
            for bad in (None, 17):
                calls = []
                for i in range(40):
                    if i == bad:
                        calls.append(s.append(a.id, "No such box", msg(i)))
                    elif i % 3 == 0:  # to two accounts, and to one account twice
                        calls.append(s.deliver(msg(i), [DeliveryTarget(a.id), DeliveryTarget(b.id),
                                                        DeliveryTarget(a.id, "Archive")]))
                    else:
                        calls.append(s.deliver(msg(i), [DeliveryTarget(a.id)]))
                before = (await s.mailbox_status(inbox.id)).mailbox
                batches = s.engine.batches
                results = await asyncio.gather(*calls, return_exceptions=True)
                assert s.engine.batches - batches <= 3  # they really were committed together
                if bad is not None:
                    assert isinstance(results.pop(bad), MailboxNotFound)
                mine = [d for r in results for d in r if d.mailbox_id == inbox.id]
                assert sorted(d.uid for d in mine) == list(range(before.uidnext, before.uidnext + len(mine)))
                assert len({d.modseq for d in mine}) == len(mine) and min(d.modseq for d in mine) > \
                    before.highestmodseq
                for i, r in enumerate(results):
                    for d in r:
                        [m] = await s.get_messages(d.mailbox_id, [d.uid])
                        assert m.modseq == d.modseq
                        text = await s.read_message(m)
                        assert (await s.read_structure(m)).root.envelope.subject == \
                            text.split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                after = (await s.mailbox_status(inbox.id)).mailbox
                assert after.uidnext == before.uidnext + len(mine)
                assert after.highestmodseq == max(d.modseq for d in mine)
            assert [m.uid for m in await s.list_messages(vbox.id)] == list(range(1, 29))
    asyncio.run(t())


def test_structure_with_8bit_header_garbage_round_trips(store_factory):
    """Header bytes that are not UTF-8 become lone surrogates in the parsed model,
    which the fast JSON encoder refuses; the stored structure must still read back."""
    from postroom.mime import parse

    raw = b"From: \xff\xfe <a@x.test>\r\nSubject: caf\xe9 \xc3\xa9\r\n\r\nbody\r\n"

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            [d] = await s.deliver(raw, [DeliveryTarget(a.id)])
            [m] = await s.get_messages(d.mailbox_id, [d.uid])
            s._structures.clear()
            assert await s.read_structure(m) == parse(raw)
    asyncio.run(t())



def test_structures_read_back_as_parsed_whichever_way_stored(store_factory):
    """The stored structure (compact JSON, line counts given by the caller or counted
    while checking line ends) reads back from the database as parsing the stored bytes gives."""
    from postroom.mime import parse
    from postroom.storage.models import NewMessage

    single = b"From: a@x.test\r\nSubject: one\r\n\r\n" + b"line\r\n" * 50
    multi = (b"From: \"A\" <a@x.test>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\nx\r\ny\r\n"
             b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nz\r\n--b--\r\nepilogue\r\n")
    bare = b"Subject: lf\n\nline\nbare\n"

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            got = [*await s.deliver(single, [DeliveryTarget(a.id)], crlf=True, newlines=single.count(b"\n")),
                   *await s.deliver(multi, [DeliveryTarget(a.id)], crlf=True, newlines=multi.count(b"\n")),
                   *await s.deliver(multi, [DeliveryTarget(a.id)], crlf=True),
                   *await s.deliver(bare, [DeliveryTarget(a.id)]),
                   await s.append(a.id, "INBOX", bare),
                   *await s.append_many(a.id, "INBOX", [NewMessage(single), NewMessage(bare)])]
            msgs = await s.get_messages(got[0].mailbox_id, [d.uid for d in got])
            assert len(msgs) == 7
            s._structures.clear()
            for m, st in zip(msgs, await s.read_structures(msgs)):
                raw = await s.read_message(m)
                assert b"\n" not in raw.replace(b"\r\n", b"")
                assert st == parse(raw)
    asyncio.run(t())

def test_segment_append_many_rolls_over(tmp_path):
    from postroom.storage.sqlite.segments import SegmentReader, SegmentWriter

    w = SegmentWriter(tmp_path, limit=1000)
    datas = [bytes([65 + i]) * (300 + i) for i in range(10)]
    where = w.append_many(datas)
    w.sync()
    assert len({seg for seg, _ in where}) >= 4  # 3 fit per 1000-byte segment
    r = SegmentReader(tmp_path)
    for data, (seg, off) in zip(datas, where):
        assert r.read(seg, off, len(data)) == data
    assert w.append(b"") == (w.name, w.size)
    w.close()
    r.close()


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_writes_queued_at_close_are_committed_and_later_ones_refused(store_factory):
    """close() lets every write already queued commit (they were promised); a write
    that comes after close() began fails at once instead of waiting forever."""
    from postroom.storage.sqlite.engine import StoreClosed

    async def t():
        s = store_factory()
        await s.open()
        a = await _account(s)
        pending = [asyncio.ensure_future(s.deliver(msg(i), [DeliveryTarget(a.id)])) for i in range(30)]
        await asyncio.sleep(0)  # they are queued now
        closing = asyncio.ensure_future(s.close())
        await asyncio.sleep(0)
        with pytest.raises(StoreClosed):
            await s.deliver(msg(99), [DeliveryTarget(a.id)])
        await closing
        delivered = [d for r in await asyncio.gather(*pending) for d in r]
        assert sorted(d.uid for d in delivered) == list(range(1, 31))
        async with store_factory() as again:
            inbox = await again.get_mailbox(a.id, "INBOX")
            assert (await again.mailbox_status(inbox.id)).messages == 30
    asyncio.run(t())


@pytest.mark.parametrize("fail_in", ["writev", "fdatasync"])
@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_disk_full_or_io_error_fails_the_batch_and_later_messages_read_back_whole(store_factory, monkeypatch,
                                                                                 fail_in):
    """A disk that fills up in the middle of a batch's writev (ENOSPC after a short
    write), or an fsync that reports an I/O error, fails that batch's deliveries; the
    segment is then in an unknown state (bytes past where the writer thinks it ends,
    pages the kernel may have dropped), so later deliveries must not be placed after
    it: every later message reads back byte for byte."""
    import errno

    from diskfault import fail_next_segment_sync, fail_next_segment_write
    from postroom.errors import StorageFull

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            inbox = await s.get_mailbox(a.id, "INBOX")
            await s.deliver(msg(0), [DeliveryTarget(a.id)])
            (fail_next_segment_write if fail_in == "writev" else fail_next_segment_sync)(monkeypatch)
            failed = await asyncio.gather(*(s.deliver(msg(i), [DeliveryTarget(a.id)]) for i in range(1, 4)),
                                          return_exceptions=True)
            if fail_in == "writev":  # what the protocols turn into 452 4.3.1 and NO [OVERQUOTA]
                assert all(isinstance(r, StorageFull) and isinstance(r.__cause__, OSError) and
                           r.__cause__.errno == errno.ENOSPC for r in failed), failed
            else:
                assert all(isinstance(r, OSError) and r.errno == errno.EIO for r in failed), failed
            later = [await s.deliver(msg(i), [DeliveryTarget(a.id)]) for i in range(4, 8)]
            assert [d.uid for [d] in later] == [2, 3, 4, 5]  # the failed ones took no UIDs
            got = {m.uid: await s.read_message(m) for m in await s.list_messages(inbox.id)}
            assert got == {1: msg(0), 2: msg(4), 3: msg(5), 4: msg(6), 5: msg(7)}
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_damaged_segment_reads_fail_alone_and_purge_goes_on(store_factory, postroom_log):
    """Bytes short or missing on disk (a partial restore, a lost block): reading that message
    raises MessageDamaged, naming where its bytes should be; the others still read; expunged
    and purged stays FileNotFoundError; purge keeps a damaged segment and goes on with the rest."""
    from postroom.errors import MessageDamaged

    big = b"x" * 5000

    async def t():
        async with store_factory() as s:
            a, inbox = await _inbox_with(s, 6, big)
            first = s.engine.current_segment()
        async with store_factory() as s:  # a second segment, with one message to purge away
            for i in range(6, 8):
                await s.deliver(msg(i) + big, [DeliveryTarget(a.id)])
            second = s.engine.current_segment()
        seg_dir = s.dir / "segments"
        (seg_dir / f"{first}.seg").write_bytes((seg_dir / f"{first}.seg").read_bytes()[:-3000])
        async with store_factory() as s:
            msgs = await s.list_messages(inbox.id)
            with pytest.raises(MessageDamaged) as exc:
                await s.read_message(msgs[5])
            assert f"uid 6 of mailbox {inbox.id}" in str(exc.value) and first in str(exc.value)
            assert "shorter" in str(exc.value)
            with pytest.raises(MessageDamaged):
                await s.read_messages(msgs)
            assert [await s.read_message(m) for m in msgs[:5]] == [msg(i) + big for i in range(5)]
            assert await s.read_messages(msgs[:5]) == [msg(i) + big for i in range(5)]
            # Both segments sparse: the damaged one is kept (its message 6 cannot move), the other,
            # which comes after it, is still purged.
            await s.store_flags(inbox.id, [1, 2, 3, 4, 7, 8], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
            removed, _ = await s.purge(min_age=0)
            assert removed == 1
            assert (seg_dir / f"{first}.seg").exists() and not (seg_dir / f"{second}.seg").exists()
            left = await s.list_messages(inbox.id)
            assert [m.uid for m in left] == [5, 6] and await s.read_message(left[0]) == msg(4) + big
            assert any(f"purge: segment {first} keeps its space" in line for line in postroom_log)
        (seg_dir / f"{first}.seg").unlink()  # the whole file lost
        async with store_factory() as s:
            m5 = (await s.list_messages(inbox.id))[0]
            with pytest.raises(MessageDamaged) as exc:
                await s.read_message(m5)
            assert "No such file" in str(exc.value)
            # Expunged and purged is "gone", not damaged.
            await s.store_flags(inbox.id, [m5.uid], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
            with pytest.raises(FileNotFoundError):
                await s.read_message(m5)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_backup_is_a_store_of_its_own_and_copies_only_what_changed(store_factory, tmp_path):
    dest = tmp_path / "backup"
    big = b"y" * 3000

    async def t():
        async with store_factory() as s:
            a, inbox = await _inbox_with(s, 5, big)
            r = await s.backup(dest)
            assert (r.messages, r.segments, r.removed) == (5, 1, 0) and r.copied >= 5 * 3000
            again = await s.backup(dest)
            assert (again.messages, again.copied) == (5, 0)  # nothing new
            with pytest.raises(ValueError):
                await s.backup(s.dir / "inside")
        assert not (dest / "store.db-wal").exists()  # a standalone file
        assert await _inbox_of(dest) == [msg(i) + big for i in range(5)]
        async with store_factory() as s:  # a second segment
            await s.deliver(msg(5) + big, [DeliveryTarget(a.id)])
            r = await s.backup(dest)
            assert (r.messages, r.segments) == (6, 2) and 3000 < r.copied < 2 * 3000 + 1000
            # everything in the first segment expunged and purged: it goes from the backup too
            await s.store_flags(inbox.id, [1, 2, 3, 4, 5], FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
        async with store_factory() as s:
            assert (await s.purge(min_age=0))[0] >= 1
            r = await s.backup(dest)
            assert r.messages == 1 and r.removed >= 1
        assert await _inbox_of(dest) == [msg(5) + big]
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite internals: its writer, segments or backup
def test_a_backup_cut_short_leaves_the_previous_one_whole(store_factory, tmp_path, monkeypatch):
    from postroom.storage.sqlite import backup as backup_mod

    dest = tmp_path / "backup"

    async def t():
        async with store_factory() as s:
            a, _ = await _inbox_with(s, 3)
            await s.backup(dest)
        async with store_factory() as s:  # more mail, in a second segment
            for i in range(3, 6):
                await s.deliver(msg(i), [DeliveryTarget(a.id)])
            real = backup_mod._copy_segment

            def failing(src, dst):
                if not dst.exists():
                    raise OSError(28, "No space left on device")  # the new segment cannot be copied
                return real(src, dst)

            monkeypatch.setattr(backup_mod, "_copy_segment", failing)
            with pytest.raises(OSError):
                await s.backup(dest)
        assert await _inbox_of(dest) == [msg(i) for i in range(3)]  # the previous backup, whole
        monkeypatch.setattr(backup_mod, "_copy_segment", real)
        async with store_factory() as s:
            assert (await s.backup(dest)).messages == 6
        assert await _inbox_of(dest) == [msg(i) for i in range(6)] and not (dest / "store.db.tmp").exists()
    asyncio.run(t())


def test_append_many_is_all_or_nothing(store_factory):
    """IMAP MULTIAPPEND (RFC 3502): one transaction, consecutive UIDs, nothing on failure."""
    from postroom.storage.models import NewMessage

    async def t():
        async with store_factory() as s:
            a = await _account(s)
            when = datetime(2021, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
            with pytest.raises(MailboxNotFound):
                await s.append_many(a.id, "Missing", [NewMessage(msg(1)), NewMessage(msg(2))])
            await s.deliver(msg(0), [DeliveryTarget(a.id)])
            inbox = await s.get_mailbox(a.id, "INBOX")
            out = await s.append_many(a.id, "inbox", [NewMessage(msg(1), frozenset({"\\Seen"}), when),
                                                      NewMessage(b"Subject: lf\n\nbare\n")])
            assert [d.uid for d in out] == [2, 3] and {d.uidvalidity for d in out} == {inbox.uidvalidity}
            msgs = await s.list_messages(inbox.id)
            assert [m.uid for m in msgs] == [1, 2, 3]
            assert msgs[1].flags == frozenset({"\\Seen"}) and msgs[2].flags == frozenset()
            assert msgs[1].internaldate == when
            assert await s.read_message(msgs[1]) == msg(1)
            assert await s.read_message(msgs[2]) == b"Subject: lf\r\n\r\nbare\r\n"
            assert (await s.append_many(a.id, "INBOX", [])) == []
    asyncio.run(t())
