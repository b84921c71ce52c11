"""The News API over every store backend (store_factory: SQLite, and PostgreSQL when the
test cluster is available; POSTROOM_TEST_STORE=postgresql runs the servers on it too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from postroom.news.account import NEWS_ACCOUNT, NEWS_DOMAIN
from postroom.news.records import GroupError, GroupExists, GroupNotFound, PostRefused
from postroom.news.service import DAY, News, NewsSettings
from postroom.news.wildmat import WildmatError

HOST = "news.example.org"
ANN = "ann@example.org"
BOB = "bob@example.org"
ADMIN = "root@example.org"


def art(groups: str = "local.test", subject: str = "hello", mid: str | None = None, frm: str = ANN,
        extra: str = "", body: str = "body line\r\n") -> bytes:
    head = f"From: Ann <{frm}>\r\nNewsgroups: {groups}\r\nSubject: {subject}\r\n"
    if mid:
        head += f"Message-ID: {mid}\r\n"
    return (head + extra + "\r\n" + body).encode()


def peer_art(mid: str, groups: str = "local.test", path: str = "peer.example!x", extra: str = "") -> bytes:
    return (f"Path: {path}\r\nFrom: p@peer.example\r\nNewsgroups: {groups}\r\nSubject: relayed\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: {mid}\r\n{extra}\r\nrelayed body\r\n").encode()


@asynccontextmanager
async def news_on(store_factory: Any, sub: str = "data", **kw: Any) -> AsyncIterator[News]:
    async with store_factory(sub) as store:
        news = await News.for_store(store, NewsSettings(HOST, admins=(ADMIN,), **kw))
        try:
            yield news
        finally:
            await news.close()


def test_groups_post_read(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.test", description="Tests")
            await news.add_group("local.other")
            await news.add_group("alt.open", read="anyone", post="anyone")
            g = await news.group("local.test", user=ANN)
            assert (g.count, g.low, g.high, g.posting, g.description) == (0, 1, 0, "y", "Tests")
            assert [s.name for s in await news.groups(user=ANN)] == ["alt.open", "local.other", "local.test"]
            assert [s.name for s in await news.groups("local.*", user=ANN)] == ["local.other", "local.test"]
            assert [s.name for s in await news.groups(user=None)] == ["alt.open"]  # read=accounts needs a login
            assert await news.group("local.test", user=None) is None
            with pytest.raises(WildmatError):
                await news.groups("a[b", user=ANN)

            posted = await news.post(art(subject="first", extra="References: <r0@x> <r1@x>\r\n"), user=ANN)
            assert posted.locations == [("local.test", 1)]
            second = await news.post(art(subject="second", body="a\r\nb\r\nc\r\n"), user=ANN)
            assert second.locations == [("local.test", 2)]
            assert await news.numbers("local.test", 1, 100) == [1, 2]
            assert await news.numbers("local.test", 2, 2) == [2]
            ov = await news.overview("local.test", 1, 2)
            assert [o.subject for o in ov] == ["first", "second"]
            assert ov[0].from_ == f"Ann <{ANN}>" and ov[0].references == "<r0@x> <r1@x>"
            assert ov[0].message_id == posted.message_id and ov[1].lines == 3
            assert ov[0].xref == f"{HOST} local.test:1"
            assert ov[0].bytes == len((await news.article("local.test", 1)).raw) - len(f"Xref: {ov[0].xref}\r\n")
            assert await news.header("local.test", "subject", 1, 2) == [(1, "first"), (2, "second")]
            assert await news.header("local.test", ":lines", 2, 2) == [(2, "3")]
            assert await news.header("local.test", "Path", 1, 1) == [(1, f"{HOST}!not-for-mail")]
            assert await news.header("local.test", "X-None", 1, 1) == [(1, "")]
            a = await news.article("local.test", 1)
            assert a.number == 1 and a.message_id == posted.message_id
            assert f"Xref: {HOST} local.test:1\r\n".encode() in a.raw
            by_id = await news.article_by_id(posted.message_id, user=BOB)
            assert by_id.number == 0 and by_id.raw == a.raw
            assert await news.article_by_id(posted.message_id, user=None) is None  # not readable anonymously
            assert await news.header_by_id(posted.message_id, "Subject", user=BOB) == "first"
            assert await news.header_by_id(posted.message_id, "Subject") is None  # anonymous: not readable
            assert await news.header_by_id(posted.message_id, "X-None", user=BOB) == ""
            assert await news.article("local.test", 3) is None
            assert await news.article_by_id("<nope@x>") is None
            assert await news.seen(posted.message_id) and not await news.seen("<nope@x>")
            assert await news.new_news("local.*", 0, user=ANN) == [posted.message_id, second.message_id]
            assert await news.new_news("alt.*", 0, user=ANN) == []
            assert [g.name for g in await news.new_groups(0, user=None)] == ["alt.open"]
            g = await news.group("local.test", user=ANN)
            assert (g.count, g.low, g.high) == (2, 1, 2)
    asyncio.run(t())


def test_crosspost_stored_once_and_duplicates_refused(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.a")
            await news.add_group("local.b")
            posted = await news.post(art("local.a, local.b", mid="<x1@example.org>"), user=ANN)
            assert posted.locations == [("local.a", 1), ("local.b", 1)]
            ia = await news.store.message_index((await news.get_group("local.a")).mailbox_id)
            ib = await news.store.message_index((await news.get_group("local.b")).mailbox_id)
            assert ia.get(1).email_id == ib.get(1).email_id  # one stored copy of the bytes
            a = await news.article("local.b", 1)
            assert f"Xref: {HOST} local.a:1 local.b:1".encode() in a.raw
            with pytest.raises(PostRefused) as exc:
                await news.post(art("local.a", mid="<x1@example.org>"), user=ANN)
            assert exc.value.code == 441
            with pytest.raises(PostRefused) as exc:
                await news.post(peer_art("<x1@example.org>", "local.a"), user=None, peer="peer.example")
            assert exc.value.code == 437
            # nothing was stored by the refusals
            assert await news.numbers("local.a", 1, 10) == [1]
    asyncio.run(t())


def test_post_refusals(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory, max_crosspost=2) as news:
            await news.add_group("local.open")
            await news.add_group("local.ro", posting="n")
            await news.add_group("local.staff", post="ann@example.org")
            await news.add_group("local.mod", posting="m", post="ann@example.org")
            cases = [
                (art("local.nothere"), ANN, "No such newsgroup"),
                (art("local.ro"), ANN, "not allowed"),
                (art("local.staff"), BOB, "may not post"),
                (art("local.open"), None, "may not post"),  # post=accounts needs a login
                (art("local.mod"), ANN, "moderated"),  # no Approved header
                (art("local.mod", extra="Approved: ann@example.org\r\n"), BOB, "may not post"),
                (art("local.open,local.ro,local.staff"), ANN, "Too many newsgroups"),
                (b"Newsgroups: local.open\r\nSubject: x\r\n\r\nno from\r\n", ANN, "Missing From"),
                (art("local.open", body="x" * 2000), ANN, "too large"),
            ]
            news.settings = NewsSettings(HOST, admins=(ADMIN,), max_crosspost=2, max_article_size=1500)
            for raw, user, why in cases:
                with pytest.raises(PostRefused) as exc:
                    await news.post(raw, user=user)
                assert exc.value.code == 441 and why.lower() in exc.value.text.lower(), exc.value.text
            # An approver's post with Approved goes in; admins approve anywhere.
            ok = await news.post(art("local.mod", extra="Approved: ann@example.org\r\n"), user=ANN)
            assert ok.locations == [("local.mod", 1)]
            ok = await news.post(art("local.mod", extra="Approved: root\r\n"), user=ADMIN)
            assert ok.locations == [("local.mod", 2)]
            assert await news.can_post(user=BOB) and not await news.can_post(user=None)
            for name in ("local.open", "local.ro", "local.staff", "local.mod"):
                assert await news.numbers(name, 1, 10) == ([1, 2] if name == "local.mod" else [])
    asyncio.run(t())


def test_peer_articles(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.test", posting="n")
            # A peer's article goes into the groups carried here, whatever the posting status.
            p = await news.post(peer_art("<p1@peer>", "local.test,not.carried"), user=None, peer="peer.example")
            assert p.locations == [("local.test", 1)]
            a = await news.article("local.test", 1)
            assert f"Path: {HOST}!peer.example!x\r\n".encode() in a.raw
            with pytest.raises(PostRefused) as exc:  # none carried: refused and remembered
                await news.post(peer_art("<p2@peer>", "not.carried"), user=None, peer="peer.example")
            assert exc.value.code == 437 and await news.seen("<p2@peer>")
            with pytest.raises(PostRefused) as exc:  # already passed through us
                await news.post(peer_art("<p3@peer>", path=f"peer.example!{HOST}!x"), user=None, peer="peer.example")
            assert exc.value.code == 437
            with pytest.raises(PostRefused) as exc:  # peers must send every required header
                await news.post(peer_art("<p4@peer>").replace(b"Date:", b"X-Date:"), user=None, peer="peer.example")
            assert exc.value.code == 437
    asyncio.run(t())


def test_numbers_survive_reopen_and_deletes(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.test")
            for i in range(3):
                await news.post(art(subject=f"s{i}", mid=f"<n{i}@example.org>"), user=ANN)
            assert await news.cancel("<n2@example.org>", by=ANN) == [("local.test", 3)]
        async with news_on(store_factory) as news:  # the same data, reopened
            g = await news.group("local.test", user=ANN)
            assert (g.count, g.low, g.high) == (2, 1, 3)
            p = await news.post(art(subject="s3"), user=ANN)
            assert p.locations == [("local.test", 4)]  # 3 is never reused
            for mid in ("<n0@example.org>", "<n1@example.org>", p.message_id):
                await news.cancel(mid, by=ADMIN)
            g = await news.group("local.test", user=ANN)
            # RFC 3977 §6.1.1.2: empty, high one less than low
            assert (g.count, g.low, g.high) == (0, 4, 3)
            assert await news.numbers("local.test", 1, 10) == []
            assert await news.overview("local.test", 1, 10) == []
    asyncio.run(t())


def test_cancel(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.a")
            await news.add_group("local.b")
            p = await news.post(art("local.a,local.b", mid="<c1@example.org>"), user=ANN)
            with pytest.raises(PostRefused):  # not the author
                await news.cancel(p.message_id, by=BOB)
            with pytest.raises(PostRefused):  # a cancel article from Bob, posted by Bob
                await news.post(art("local.a", frm=BOB, extra="Control: cancel <c1@example.org>\r\n"), user=BOB)
            assert await news.numbers("local.a", 1, 5) == [1]
            # The author cancels with a control article: gone from both groups.
            c = await news.post(art("local.a", extra="Control: cancel <c1@example.org>\r\n"), user=ANN)
            assert c.locations == []
            assert await news.numbers("local.a", 1, 5) == [] and await news.numbers("local.b", 1, 5) == []
            assert await news.article_by_id(p.message_id, user=ANN) is None
            assert await news.seen(p.message_id) and await news.seen(c.message_id)
            with pytest.raises(PostRefused):  # re-offered by a peer after the cancel
                await news.post(peer_art("<c1@example.org>", "local.a"), user=None, peer="peer.example")
            # A cancel arriving before its article keeps the article out.
            await news.cancel("<later@example.org>", by=BOB)
            with pytest.raises(PostRefused):
                await news.post(peer_art("<later@example.org>", "local.a"), user=None, peer="peer.example")
            # Other control messages are refused.
            with pytest.raises(PostRefused) as exc:
                await news.post(art("local.a", extra="Control: newgroup local.c\r\n"), user=ANN)
            assert "cancel" in exc.value.text
    asyncio.run(t())


def test_expire_and_history(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory, history_days=10) as news:
            await news.add_group("local.short", retention=1)
            await news.add_group("local.keep")
            p = await news.post(art("local.short,local.keep", mid="<e1@example.org>"), user=ANN)
            q = await news.post(art("local.short", mid="<e2@example.org>"), user=ANN)
            assert await news.expire() == 0  # nothing is a day old yet
            import time

            later = time.time() + 2 * DAY
            assert await news.expire(later) == 2
            assert await news.numbers("local.short", 1, 10) == []
            assert await news.numbers("local.keep", 1, 10) == [1]
            a = await news.article("local.keep", 1)
            assert f"Xref: {HOST} local.keep:1\r\n".encode() in a.raw  # its history lost local.short
            # q is gone but remembered: a peer re-offering it is refused
            assert await news.seen(q.message_id)
            assert await news.article_by_id(q.message_id, user=ANN) is None
            with pytest.raises(PostRefused):
                await news.post(peer_art(q.message_id, "local.keep"), user=None, peer="peer.example")
            # after history_days, its ID is forgotten; p (still stored in local.keep) is not
            await news.expire(later + 11 * DAY)
            assert not await news.seen(q.message_id) and await news.seen(p.message_id)
    asyncio.run(t())


def test_pending_post_repaired(store_factory: Any) -> None:
    """A crash between the history reservation and its completion (simulated by running the
    steps by hand): repair completes the row when the article is stored, drops it when not."""
    async def t() -> None:
        async with news_on(store_factory) as news:
            info = await news.add_group("local.test")
            from postroom.storage.models import DeliveryTarget

            aid = await news._account_id()
            await news.state.execute([
                ("INSERT INTO history(message_id, state, marks, arrived) VALUES (?, 'pending', ?, ?)",
                 ("<stored@x>", "local.test:1", 0.0)),
                ("INSERT INTO history(message_id, state, marks, arrived) VALUES (?, 'pending', ?, ?)",
                 ("<lost@x>", "local.test:1", 0.0)),
            ])
            await news.store.deliver(peer_art("<stored@x>"), [DeliveryTarget(aid, "news/local.test")])
            assert await news.seen("<stored@x>") and await news.article_by_id("<stored@x>", user=ANN) is None
            assert await news.repair() == 2
            assert (await news.article_by_id("<stored@x>", user=ANN)).message_id == "<stored@x>"
            assert not await news.seen("<lost@x>")
            assert info.mailbox_id == (await news.get_group("local.test")).mailbox_id
    asyncio.run(t())


def test_group_admin_and_reserved_account(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            with pytest.raises(GroupError):
                await news.add_group("Bad Name")
            with pytest.raises(GroupError):
                await news.add_group("local.x", posting="q")
            with pytest.raises(GroupError):
                await news.add_group("local.x", read="not an address")
            with pytest.raises(GroupError):
                await news.add_group("local.x", retention=0)
            g = await news.add_group("local.x", description="d", read="B@example.org, a@example.org")
            assert g.read == "a@example.org,b@example.org" and g.post == "accounts"
            with pytest.raises(GroupExists):
                await news.add_group("local.x")
            g = await news.set_group("local.x", posting="m", retention=5, list_address="list@example.org")
            assert (g.posting, g.retention, g.list_address, g.description) == ("m", 5, "list@example.org", "d")
            assert await news.groups_for_list("LIST@example.org") == ["local.x"]
            g = await news.set_group("local.x", clear_retention=True, clear_list=True, description="new")
            assert (g.retention, g.list_address, g.description) == (None, None, "new")
            with pytest.raises(GroupNotFound):
                await news.set_group("local.none", posting="y")
            assert await news.group("local.x", user="a@example.org") is not None
            assert await news.group("local.x", user=ANN) is None  # not in the read list
            await news.set_group("local.x", posting="y", post="anyone", read="anyone")
            p = await news.post(art("local.x", mid="<d1@example.org>"), user=None)
            await news.delete_group("local.x")
            assert await news.group("local.x", user=ANN) is None and await news.list_groups() == []
            assert await news.seen(p.message_id) and await news.raw_by_id(p.message_id) is None
            with pytest.raises(GroupNotFound):
                await news.delete_group("local.x")
            await news.add_group("local.x")  # again: a fresh mailbox
            assert (await news.group("local.x", user=ANN)).count == 0
            # the reserved account: no domain row, no usable password, not a listed domain
            store = news.store
            assert NEWS_DOMAIN not in await store.list_domains() and not await store.has_domain(NEWS_DOMAIN)
            acct = await store.get_account(NEWS_ACCOUNT)
            from postroom.auth.passwords import verify_password

            assert acct is not None and not verify_password(acct.password_hash, "")
            assert not verify_password(acct.password_hash, "!")
    asyncio.run(t())


def test_raw_by_id_ignores_read_permission(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.secret", read=ADMIN)
            p = await news.post(art("local.secret"), user=ANN)
            assert await news.article_by_id(p.message_id, user=ANN) is None
            raw = await news.raw_by_id(p.message_id)
            assert raw is not None and b"Xref:" not in raw and b"body line" in raw
    asyncio.run(t())


@pytest.mark.sqlite_only
def test_backup_carries_groups_history_and_articles(store_factory: Any, tmp_path: Any) -> None:
    """On SQLite the news tables are in store.db: a backup restores them with the articles."""
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.test", description="kept")
            p = await news.post(art(mid="<b1@example.org>"), user=ANN)
            await news.store.backup(tmp_path / "copy")
        from postroom.storage.sqlite.store import SqliteStore

        async with SqliteStore(tmp_path / "copy") as copy:
            news = await News.for_store(copy, NewsSettings(HOST))
            try:
                assert (await news.get_group("local.test")).description == "kept"
                got = await news.article_by_id(p.message_id, user=ANN)
                assert got is not None and got.message_id == "<b1@example.org>"
                assert await news.seen(p.message_id)
            finally:
                await news.close()
    asyncio.run(t())


def test_group_removed_during_post(store_factory: Any) -> None:
    """The store files a delivery to a vanished mailbox in INBOX: post takes that copy out
    and refuses, leaving no history row and nothing in the reserved account."""
    async def t() -> None:
        async with news_on(store_factory) as news:
            for name in ("local.gone", "local.gone2", "local.stays"):
                await news.add_group(name)
            store = news.store
            aid = await news._account_id()
            real_deliver = store.deliver
            doomed = ["news/local.gone2", "news/local.gone"]

            async def deliver_after_delete(raw: bytes, targets: Any, *a: Any, **kw: Any) -> Any:
                await store.delete_mailbox(aid, doomed.pop())
                return await real_deliver(raw, targets, *a, **kw)

            store.deliver = deliver_after_delete
            try:
                with pytest.raises(PostRefused) as exc:
                    await news.post(art("local.gone", mid="<g1@example.org>"), user=ANN)
                assert exc.value.code == 441 and not await news.seen("<g1@example.org>")
                p = await news.post(art("local.gone2,local.stays", mid="<g2@example.org>"), user=ANN)
            finally:
                store.deliver = real_deliver
            assert p.locations == [("local.stays", 1)]
            inbox = await store.get_mailbox(aid, "INBOX")
            assert len(await store.message_index(inbox.id)) == 0
    asyncio.run(t())


def test_overview_stored_at_post_and_filled_for_older_articles(store_factory: Any) -> None:
    """OVER reads the overview rows written when the article was accepted (no bytes); an
    article without its row (a database from before the table) gets it on first read;
    cancel and expiry take the rows away; ARTICLE finds a folded Message-ID/Newsgroups."""
    cols = "number, subject, from_, date, message_id, refs, bytes, lines, xref"

    async def t() -> None:
        async with news_on(store_factory, history_days=10) as news:
            a = await news.add_group("local.a", retention=1)
            b = await news.add_group("local.b")
            await news.post(art("local.a", subject="one\r\n folded", mid="<o1@example.org>",
                                extra="References: <r0@example.org>\r\n", body="l1\r\nl2\r\n"), user=ANN)
            await news.post(peer_art("<o2@example.org>", "local.a,\r\n local.b"), user=None, peer="peer.example")
            rows = await news.state.query(f"SELECT {cols} FROM overview WHERE mailbox_id = ? ORDER BY number",
                                          a.mailbox_id)
            raw1 = await news.raw_by_id("<o1@example.org>")
            assert rows[0][:6] == (1, "one folded", f"Ann <{ANN}>", rows[0][3], "<o1@example.org>",
                                   "<r0@example.org>")
            assert (rows[0][6], rows[0][7], rows[0][8]) == (len(raw1), 2, "local.a:1")
            assert rows[1][8] == "local.a:2 local.b:1"
            before = await news.overview("local.a", 1, 10)
            assert [(o.number, o.subject, o.bytes, o.lines, o.xref) for o in before] == [
                (1, "one folded", len(raw1), 2, f"{HOST} local.a:1"),
                (2, "relayed", before[1].bytes, 1, f"{HOST} local.a:2 local.b:1")]
            # OVER is the table: a changed row shows (the bytes are not read) ...
            await news.state.execute([("UPDATE overview SET subject = 'from the table' WHERE mailbox_id = ?",
                                       (a.mailbox_id,))])
            assert [o.subject for o in await news.overview("local.a", 1, 10)] == ["from the table"] * 2
            assert await news.header("local.a", "Subject", 2, 2) == [(2, "from the table")]
            # ... and rows missing (an older database) are made from the bytes and written.
            await news.state.execute([("DELETE FROM overview", ())])
            assert await news.overview("local.a", 1, 10) == before
            assert len(await news.state.query("SELECT number FROM overview WHERE mailbox_id = ?",
                                              a.mailbox_id)) == 2
            # ARTICLE: a folded Newsgroups still gets the crosspost's Xref; the Message-ID is found.
            got = await news.article("local.b", 1)
            assert got.message_id == "<o2@example.org>"
            assert f"\r\nXref: {HOST} local.a:2 local.b:1\r\n\r\nrelayed body".encode() in got.raw
            # Expiry from local.a: its rows go, local.b's copy names only local.b.
            import time

            assert await news.expire(time.time() + 2 * DAY) == 2
            assert await news.state.query("SELECT number FROM overview WHERE mailbox_id = ?", a.mailbox_id) == []
            assert [o.xref for o in await news.overview("local.b", 1, 1)] == [f"{HOST} local.b:1"]
            # Cancel takes the row too.
            p = await news.post(art("local.b", mid="<o3@example.org>"), user=ANN)
            await news.cancel(p.message_id, by=ANN)
            assert [r[0] for r in await news.state.query("SELECT number FROM overview WHERE mailbox_id = ?",
                                                         b.mailbox_id)] == [1]
            await news.delete_group("local.b")
            assert await news.state.query("SELECT number FROM overview") == []
    asyncio.run(t())


def test_reader_sees_other_writers_changes_at_once(store_factory: Any) -> None:
    """Two News on one store (two worker processes): a reader that keeps its group index
    between reads sees the other's post, cancel and expiry at once on SQLite (the shared
    change number); on PostgreSQL the store's own index follows its change notices, so
    there the reader is given a moment."""
    async def t() -> None:
        async with news_on(store_factory) as writer, news_on(store_factory) as reader:
            at_once = reader.state.articles_changed() is not None

            async def sees(check: Callable[[], Awaitable[bool]]) -> bool:
                for _ in range(1 if at_once else 50):
                    if await check():
                        return True
                    await asyncio.sleep(0.1)
                return False

            async def number(n: int) -> str | None:
                a = await reader.article("local.a", n)
                return a.message_id if a is not None else None

            await writer.add_group("local.a", retention=1)
            await writer.post(art("local.a", mid="<w1@example.org>"), user=ANN)
            assert await sees(lambda: _eq(number(1), "<w1@example.org>"))
            assert await reader.article("local.a", 2) is None
            await writer.post(art("local.a", mid="<w2@example.org>"), user=ANN)
            assert await sees(lambda: _eq(number(2), "<w2@example.org>"))
            assert (await reader.group("local.a", user=ANN)).high == 2
            await writer.cancel("<w1@example.org>", by=ANN)
            assert await sees(lambda: _eq(number(1), None))
            assert [o.number for o in await reader.overview("local.a", 1, 5)] == [2]
            import time

            await writer.expire(time.time() + 2 * DAY)
            assert await sees(lambda: _eq(number(2), None))
            assert await reader.numbers("local.a", 1, 5) == []
    asyncio.run(t())


async def _eq(value: Awaitable[Any], want: Any) -> bool:
    return await value == want
