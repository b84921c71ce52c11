"""``postroom migrate-store``: an embedded installation copied into PostgreSQL, compared
through the Store interface of both backends, and (slow) seen by an IMAP client that
must not notice the move."""

from __future__ import annotations

import asyncio
import fcntl
import imaplib
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from postroom.auth import hash_password
from postroom.cli import main
from postroom.config import PgSettings, load
from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.pgqueue import PgQueue
from postroom.outbound.queue import SqliteQueue
from postroom.storage.models import DeliveryTarget, FlagOp, NewMessage
from postroom.storage.postgresql.store import PostgresStore
from postroom.storage.sqlite.store import SqliteStore

from .serving import make_server_dir

PY = [sys.executable, "-m", "postroom.cli"]
ALICE, BOB = "alice@example.test", "bob@example.test"


def _msg(i: int, extra: str = "") -> bytes:
    return (f"From: sender{i}@example.org\r\nTo: {ALICE}\r\nSubject: message {i}\r\n"
            f"Message-ID: <m{i}@example.org>\r\n\r\nbody {i}\r\n{extra}").encode()


async def _populate(data_dir: Path) -> None:
    """A store with what a client or admin would notice if it were lost."""
    async with SqliteStore(data_dir) as s:
        await s.add_domain("example.test")
        alice = await s.create_account(ALICE, hash_password("pw"))
        bob = await s.create_account(BOB, "{SHA512-CRYPT}$6$salt$notreallyahash")
        await s.set_apop_secret(ALICE, "apop-secret")
        await s.set_quota(BOB, 10_000_000, 500)
        # Web administration's attributes and credentials (postroom.accounts).
        await s.set_account_attributes(ALICE, admin=True, totp_secret="JBSWY3DPEHPK3PXP", bump_epoch=True)
        await s.set_account_attributes(BOB, disabled=True)
        phone = await s.add_credential(alice.id, "app", "phone", b"\x01" * 32)
        await s.touch_credential(phone.id, 1_700_000_000.5)
        await s.add_credential(alice.id, "token", "ci", b"\x02" * 32)
        await s.set_alias("postmaster@example.test", [ALICE])
        await s.set_alias("team@example.test", [ALICE, BOB])
        await s.create_mailbox(alice.id, "Work")
        await s.create_mailbox(alice.id, "Work/Old")
        await s.subscribe(alice.id, "Work")
        when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        for i in range(30):
            await s.deliver(_msg(i), [DeliveryTarget(alice.id), DeliveryTarget(bob.id)], when)
        await s.append(alice.id, "Work", _msg(100, "x" * 3_000_000), frozenset({"\\Seen", "$Important"}), when)
        # The same bytes stored twice (two deliveries): one blob in PostgreSQL.
        await s.append(alice.id, "Work", _msg(101), frozenset(), when)
        await s.append(alice.id, "Work", _msg(101), frozenset({"\\Flagged"}), when)
        inbox = await s.get_mailbox(alice.id, "INBOX")
        assert inbox is not None
        await s.store_flags(inbox.id, [1, 2, 3, 4], FlagOp.ADD, frozenset({"\\Deleted"}))
        await s.store_flags(inbox.id, [5, 6], FlagOp.ADD, frozenset({"\\Answered", "custom"}))
        assert await s.expunge(inbox.id) == [1, 2, 3, 4]
        work = await s.get_mailbox(alice.id, "Work")
        assert work is not None
        await s.copy_messages(inbox.id, [7, 8], work.id)
        await s.put_sieve_script(alice.id, "vacation", 'require "vacation"; vacation "away";', activate=True)
        await s.put_sieve_script(alice.id, "spare", "keep;")
        await s.sieve_track(alice.id, "vacation", "someone@example.org", time.time(), time.time() + 86400)
        await s.set_metadata(alice.id, None, {"/private/comment": b"server note"})
        await s.set_metadata(alice.id, work.id, {"/shared/comment": b"\x00binary\xff"})
        # A mailbox deleted after it had expunged messages (its log rows must not travel).
        gone = await s.create_mailbox(bob.id, "Gone")
        await s.append(bob.id, "Gone", _msg(200))
        await s.store_flags(gone.id, [1], FlagOp.ADD, frozenset({"\\Deleted"}))
        await s.expunge(gone.id)
        await s.delete_mailbox(bob.id, "Gone")
    q = await SqliteQueue(data_dir / "queue").open()
    try:
        await q.enqueue(Envelope("alice@example.test", (Recipient("x@remote.example", ("FAILURE",), "rfc822;x@remote.example"),
                                                      Recipient("y@other.example"))), b"Subject: out\r\n\r\nhi\r\n")
        qid = await q.enqueue(Envelope("", (Recipient("z@remote.example"),), ret="HDRS", envid="e1"), b"bounce\r\n")
        await q.set_held(qid, True)
    finally:
        await q.close()


async def _snapshot(s: Any) -> dict[str, Any]:
    """Everything the Store interface shows, in a form both backends give alike."""
    out: dict[str, Any] = {"domains": sorted(await s.list_domains()),
                           "aliases": [(a.source, tuple(a.targets)) for a in await s.list_aliases()]}
    for acct in await s.list_accounts():
        a: dict[str, Any] = {"id": acct.id, "hash": acct.password_hash, "apop": acct.apop_secret,
                             "subscriptions": sorted(await s.list_subscriptions(acct.id)),
                             "web": (acct.admin, acct.disabled, acct.session_epoch, acct.totp_secret),
                             "credentials": [(c.kind, c.name, c.created, c.last_used)
                                             for kind in ("app", "token")
                                             for c in await s.list_credentials(acct.id, kind)]}
        q = await s.get_quota(acct.id, with_usage=True)
        a["quota"] = (q.storage_limit, q.message_limit, q.storage_used, q.messages_used) if q else None
        a["scripts"] = sorted((i.name, i.active) for i in await s.list_sieve_scripts(acct.id))
        a["active"] = await s.get_active_sieve_script(acct.id)
        a["tracked"] = await s.sieve_tracked(acct.id, "vacation", "someone@example.org", time.time())
        boxes = {}
        for mb in await s.list_mailboxes(acct.id):
            msgs = await s.list_messages(mb.id)
            raws = await s.read_messages(msgs)
            changes = await s.changes_since(mb.id, 1)
            meta = await s.get_metadata(acct.id, mb.id, ["/shared/comment", "/private/comment"])
            boxes[mb.name] = {
                "id": mb.id, "uidvalidity": mb.uidvalidity, "uidnext": mb.uidnext,
                "highestmodseq": mb.highestmodseq,
                "messages": [(m.uid, m.modseq, sorted(m.flags), m.internaldate, m.size, m.savedate) for m in msgs],
                "bytes": raws, "expunged": sorted(changes.expunged), "metadata": meta,
            }
        a["mailboxes"] = boxes
        a["server_metadata"] = await s.get_metadata(acct.id, None, ["/private/comment"])
        out[acct.address] = a
    return out


def _queue_view(msgs: list[Any]) -> list[Any]:
    return sorted((m.id, m.envelope, m.size, m.created, m.held,
                   [(r.address, r.notify, r.orcpt, r.state, r.attempts, r.next_attempt, r.delay_notified)
                    for r in m.recipients]) for m in msgs)


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    cfgp = make_server_dir(tmp_path / "srv")
    asyncio.run(_populate(load(cfgp).data_dir))
    return cfgp


def _migrate(cfgp: Path, url: str, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, "-c", str(cfgp), "migrate-store", "--to", url, *more],
                          capture_output=True, text=True, timeout=300, check=False)


def test_copy_is_the_same_through_both_stores(installation: Path, pg_database: str) -> None:
    data_dir = load(installation).data_dir
    p = _migrate(installation, pg_database)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verification: no differences" in p.stdout
    assert "copying" in p.stderr  # the progress bar
    assert 'backend = "postgresql"' in p.stdout and f'url = "{pg_database}"' in p.stdout
    # Counted per table, both sides equal.
    assert re.search(r"^messages\s+(\d+)\s+\1\s+ok$", p.stdout, re.MULTILINE)
    assert "1 duplicate copies of bytes stored once" in p.stdout

    async def compare() -> None:
        async with SqliteStore(data_dir) as old:
            before = await _snapshot(old)
        new = PostgresStore(PgSettings(url=pg_database), data_dir)
        await new.open()
        try:
            after = await _snapshot(new)
            # The credentials' digests came along: a login still finds its app password.
            found = await new.find_credential("app", b"\x01" * 32)
            assert found is not None and found.name == "phone"
        finally:
            await new.close()
        assert before[ALICE]["web"] == (True, False, 1, "JBSWY3DPEHPK3PXP") and before[BOB]["web"][1]
        assert len(before[ALICE]["credentials"]) == 2
        assert before[ALICE]["mailboxes"]["INBOX"]["expunged"] == [1, 2, 3, 4]
        assert len(before[ALICE]["mailboxes"]["Work"]["messages"]) == 5
        for key in before:
            assert after[key] == before[key], key
        assert after == before
        old_q = await SqliteQueue(data_dir / "queue").open()
        try:
            queued = _queue_view(await old_q.messages())
        finally:
            await old_q.close()
        new_q = await PgQueue(PgSettings(url=pg_database)).open()
        try:
            assert _queue_view(await new_q.messages()) == queued
            assert len(queued) == 2
            assert {m.id: await new_q.read_body(m.id) for m in await new_q.messages()}[queued[0][0]]
        finally:
            await new_q.close()

    asyncio.run(compare())

    # Run again: the target now has data, and is refused even with --force.
    again = _migrate(installation, pg_database, "--force", "--no-progress")
    assert again.returncode == 1 and "already holds data" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr


def test_refusals(installation: Path, pg_cluster: Any, pg_database: str) -> None:
    data_dir = load(installation).data_dir
    # A running server holds the scheduler lock.
    (data_dir / "queue").mkdir(exist_ok=True)
    fd = os.open(data_dir / "queue" / "scheduler.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        p = _migrate(installation, pg_database, "--no-progress")
    finally:
        os.close(fd)
    assert p.returncode == 1 and "a Postroom server is running" in p.stderr and "stop the server" in p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    # A process in the middle of queueing mail (postroom sendmail) holds the queue's database.
    q = sqlite3.connect(data_dir / "queue" / "queue.db", isolation_level=None)
    try:
        q.execute("BEGIN IMMEDIATE")
        p = _migrate(installation, pg_database, "--no-progress")
    finally:
        q.close()
    assert p.returncode == 1 and "queue.db is being written" in p.stderr, p.stderr
    # A password in the URL, or a URL that is not one.
    p = _migrate(installation, re.sub(r"://([^@/]+)@", r"://\1:secret@", pg_database), "--no-progress")
    assert p.returncode == 2 and "must not contain a password" in p.stderr, p.stderr
    p = _migrate(installation, "mysql://db.example/postroom", "--no-progress")
    assert p.returncode == 2 and "must start with postgresql://" in p.stderr
    # A target with the schema but no data (a node was started on it): only with --force.
    assert main(["-c", str(installation), "migrate-store", "--to", pg_database, "--no-progress"]) == 0
    empty = pg_cluster.create_database(f"t{os.getpid()}_schema_only")

    async def start_a_node() -> None:  # what a node's start leaves: the schema, the config's domains
        store = PostgresStore(PgSettings(url=empty))
        await store.open()
        await store.add_domain("example.test")
        await store.close()

    asyncio.run(start_a_node())
    p = _migrate(installation, empty, "--no-progress")
    assert p.returncode == 1 and "--force" in p.stderr and "Traceback" not in p.stderr
    p = _migrate(installation, empty, "--no-progress", "--force", "--password-env", "POSTROOM_TEST_NO_PW")
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'password_env = "POSTROOM_TEST_NO_PW"' in p.stdout  # for the [storage] to write
    # Nothing listens there: one line.
    p = _migrate(installation, "postgresql://postroom@127.0.0.1:1/none", "--no-progress")
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.startswith("postroom: "), p.stderr


def test_verification_finds_a_difference(installation: Path, pg_database: str,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy that went wrong (here: one message's bytes changed on the way) exits 1."""
    from postroom import migrate_store as migrate

    real = migrate.chunks

    def corrupt(raw: bytes) -> list[bytes]:
        return real(raw.replace(b"body 9\r\n", b"body X\r\n"))

    monkeypatch.setattr(migrate, "chunks", corrupt)
    assert main(["-c", str(installation), "migrate-store", "--to", pg_database, "--no-progress"]) == 1
    cap = capsys.readouterr()
    assert "blob 10: its chunks do not hash to its sha256" in cap.out, cap.out
    assert "verification: 1 difference" in cap.out and "the copy differs" in cap.err
    assert 'backend = "postgresql"' not in cap.out


# -- 10,000 messages, and an IMAP client that synced before ---------------------------------------

def _imap_view(port: int, user: str) -> tuple[int, int, int, list[int]]:
    with imaplib.IMAP4("127.0.0.1", port) as c:
        c.login(user, "pw")
        c.enable("CONDSTORE")
        typ, _ = c.select("INBOX")
        assert typ == "OK"
        uidvalidity = int(c.untagged_responses["UIDVALIDITY"][0])
        uidnext = int(c.untagged_responses["UIDNEXT"][0])
        hms = c.untagged_responses.get("HIGHESTMODSEQ")
        assert hms, c.untagged_responses
        typ, data = c.uid("SEARCH", "ALL")
        uids = [int(x) for x in data[0].split()]
        c.logout()
    return uidvalidity, uidnext, int(hms[0]), uids


@pytest.mark.slow
def test_ten_thousand_messages_and_an_imap_client(tmp_path: Path, pg_database: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from threaded_runtime import ThreadedRuntime

    cfgp = make_server_dir(tmp_path / "srv")
    cfgp.write_text(cfgp.read_text() + "\n[imap]\nallow_plaintext_auth = true\n")  # loopback, no TLS
    data_dir = load(cfgp).data_dir

    async def fill() -> None:
        async with SqliteStore(data_dir) as s:
            await s.add_domain("example.test")
            acct = await s.create_account(ALICE, hash_password("pw"))
            for start in range(0, 10_000, 500):
                await s.append_many(acct.id, "INBOX", [NewMessage(_msg(i), frozenset({"\\Seen"} if i % 3 else ()))
                                                      for i in range(start, start + 500)])
            inbox = await s.get_mailbox(acct.id, "INBOX")
            assert inbox is not None
            await s.store_flags(inbox.id, list(range(1, 10_001, 7)), FlagOp.ADD, frozenset({"\\Deleted"}))
            await s.expunge(inbox.id)
            await s.store_flags(inbox.id, [10_000], FlagOp.ADD, frozenset({"\\Flagged"}))

    asyncio.run(fill())
    rt = ThreadedRuntime(cfgp)
    try:
        before = _imap_view(rt.ports["imap"], ALICE)
        running = _migrate(cfgp, pg_database, "--no-progress")  # a real running server is noticed
        assert running.returncode == 1 and "a Postroom server is running" in running.stderr, running.stderr
    finally:
        rt.close()
    assert len(before[3]) == 10_000 - len(range(1, 10_001, 7))

    p = _migrate(cfgp, pg_database)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert re.search(r"^messages\s+8571\s+8571\s+ok$", p.stdout, re.MULTILINE), p.stdout
    section = p.stdout.split("Now change [storage]")[1].split("\n\n")[1]
    text = cfgp.read_text()
    text = re.sub(r"\[storage\]\n(?:[^\[\n][^\n]*\n|\n)*?(?=\[)", section + "\n\n", text, count=1)
    cfgp.write_text(text)
    assert load(cfgp).backend == "postgresql"

    rt = ThreadedRuntime(cfgp)
    try:
        assert type(rt.store).__name__ == "PostgresStore"
        after = _imap_view(rt.ports["imap"], ALICE)
    finally:
        rt.close()
    assert after == before


def test_damaged_store_copies_nothing(installation: Path, pg_cluster: Any, pg_database: str) -> None:
    """A segment file cut short (a disk fault): one line naming the bytes, and the target left
    without data, so that after repairing the store the copy runs again with --force."""
    segments = sorted((load(installation).data_dir / "segments").glob("*.seg"))
    assert segments
    with open(segments[-1], "r+b") as f:
        f.truncate(100)
    p = _migrate(installation, pg_database, "--no-progress")
    assert p.returncode == 1 and "cannot be read" in p.stderr and "postroom verify" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    db = pg_database.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*) FROM messages", db) == "0"
    assert pg_cluster.psql("SELECT count(*) FROM accounts", db) == "0"


# -- the news state: groups are mailboxes of a reserved account, plus the news tables ---------------

NEWS_HOST = "news.example.test"


def _article(groups: str, mid: str, subject: str, refs: str = "") -> bytes:
    return (f"From: Ann <ann@example.test>\r\nNewsgroups: {groups}\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\n{refs}\r\nline one\r\n..dot-stuffed? no: stored as is\r\n").encode()


async def _populate_news(data_dir: Path) -> dict[str, Any]:
    """Groups with crossposted articles, a cancelled one, refused IDs and feed rows."""
    from postroom.news.account import NEWS_DOMAIN
    from postroom.news.service import News, NewsSettings

    async with SqliteStore(data_dir) as s:
        news = await News.for_store(s, NewsSettings(NEWS_HOST, admins=(ALICE,)))
        try:
            await news.add_group("local.talk", description="Talk", read="anyone", post="anyone")
            await news.add_group("local.misc", posting="m", retention=30, list_address="misc@example.test")
            await news.add_group("comp.lang.x", read=ALICE, post=ALICE)
            posted = {}
            for i in range(12):
                groups = ("local.talk", "local.talk,local.misc", "local.talk,comp.lang.x,local.misc")[i % 3]
                approved = "Approved: alice@example.test\r\n" if "local.misc" in groups else ""
                refs = f"References: <n{i - 1}@example.test>\r\n" if i else ""
                p = await news.post(_article(groups, f"<n{i}@example.test>", f"news {i}", refs + approved),
                                    user=ALICE)
                posted[p.message_id] = p.locations
            await news.cancel("<n5@example.test>", by=ALICE)  # a crosspost; history keeps the ID
            await news.cancel("<later@example.test>", by=ALICE)  # not here yet: remembered as refused
            await news.state.execute([
                ("INSERT INTO feed(peer, message_id, next_try, attempts) VALUES (?, ?, ?, ?)",
                 (peer, mid, 1_700_000_000.0 + n, n))
                for n, (peer, mid) in enumerate([("peer.example", "<n1@example.test>"),
                                                  ("peer.example", "<n2@example.test>"),
                                                  ("other.example", "<n2@example.test>")])])
        finally:
            await news.close()
        # What a crash between adding the reserved domain and removing it would leave behind.
        await s.add_domain(NEWS_DOMAIN)
    return posted


async def _news_view(store: Any) -> dict[str, Any]:
    """What readers and peers see of the news state, through the News API."""
    from postroom.news.service import News, NewsSettings

    news = await News.for_store(store, NewsSettings(NEWS_HOST, admins=(ALICE,)))
    try:
        out: dict[str, Any] = {"infos": await news.list_groups()}
        for info in out["infos"]:
            g = await news.group(info.name, user=ALICE)
            assert g is not None
            numbers = await news.numbers(info.name, 1, 1000)
            out[info.name] = {
                "status": (g.count, g.low, g.high, g.posting, g.description, g.created),
                "numbers": numbers,
                "over": await news.overview(info.name, 1, 1000),
                "hdr": await news.header(info.name, "references", 1, 1000),
                "articles": [await news.article(info.name, n) for n in numbers],
            }
        out["history"] = sorted(await news.state.query(
            "SELECT message_id, state, locations, poster, arrived, expires FROM history"))
        out["feed"] = sorted(await news.state.query("SELECT peer, message_id, next_try, attempts FROM feed"))
    finally:
        await news.close()
    return out


def test_news_groups_history_and_feed_move(installation: Path, pg_database: str) -> None:
    from postroom.news.account import NEWS_ACCOUNT, NEWS_DOMAIN
    from postroom.news.service import News, NewsSettings

    data_dir = load(installation).data_dir
    posted = asyncio.run(_populate_news(data_dir))
    p = _migrate(installation, pg_database, "--no-progress")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verification: no differences" in p.stdout
    for table, n in (("news_groups", 3), ("news_history", 13), ("news_overview", 21), ("news_feed", 3)):
        assert re.search(rf"^{table}\s+{n}\s+{n}\s+ok$", p.stdout, re.MULTILINE), (table, p.stdout)

    async def compare() -> None:
        async with SqliteStore(data_dir) as old:
            before = await _news_view(old)
            old_boxes = {m.name: (m.id, m.uidvalidity, m.uidnext)
                         for m in await old.list_mailboxes((await old.get_account(NEWS_ACCOUNT)).id)}
        new = PostgresStore(PgSettings(url=pg_database), data_dir)
        await new.open()
        try:
            after = await _news_view(new)
            # The reserved account stays invisible: no domain row, its locked hash.
            assert NEWS_DOMAIN not in await new.list_domains()
            assert not await new.has_domain(NEWS_DOMAIN)
            acct = await new.get_account(NEWS_ACCOUNT)
            assert acct is not None and acct.password_hash == "!"
            assert {m.name: (m.id, m.uidvalidity, m.uidnext)
                    for m in await new.list_mailboxes(acct.id)} == old_boxes
            assert after == before
            # Same numbers (= UIDs), same overview with Xref, the history remembers every ID.
            talk = after["local.talk"]
            assert talk["numbers"] == [n for n in range(1, 13) if n != 6]  # <n5> was cancelled
            assert talk["status"][:3] == (11, 1, 12)
            assert after["comp.lang.x"]["numbers"] == [1, 3, 4]  # <n2>, <n8>, <n11>; <n5> was 2
            over = {o.message_id: o for o in after["local.misc"]["over"]}
            assert over["<n2@example.test>"].xref == f"{NEWS_HOST} local.talk:3 comp.lang.x:1 local.misc:2"
            assert over["<n2@example.test>"].references == "<n1@example.test>"
            assert over["<n2@example.test>"].subject == "news 2"
            news = await News.for_store(new, NewsSettings(NEWS_HOST, admins=(ALICE,)))
            try:
                for mid in [*posted, "<later@example.test>"]:
                    assert await news.seen(mid), mid
                art = await news.article_by_id("<n11@example.test>", user=ALICE)
                assert art is not None and art.raw.endswith(b"stored as is\r\n")
                # Posting goes on after the last number each group gave.
                nxt = await news.post(_article("local.talk,comp.lang.x", "<after@example.test>", "after"),
                                      user=ALICE)
                assert nxt.locations == [("local.talk", 13), ("comp.lang.x", 5)]
                assert not await news.seen("<never@example.test>")
            finally:
                await news.close()
        finally:
            await new.close()

    asyncio.run(compare())
    # The installation switched to PostgreSQL: the admin's listings leave the reserved account out.
    section = p.stdout.split("Now change [storage]")[1].split("\n\n")[1]
    text = re.sub(r"\[storage\]\n(?:[^\[\n][^\n]*\n|\n)*?(?=\[)", section + "\n\n", installation.read_text(), count=1)
    installation.write_text(text)
    for what, shown in (("user", {ALICE, BOB}), ("domain", {"example.test"})):
        out = subprocess.run([*PY, "-c", str(installation), what, "list"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        listed = [line.split()[0] for line in out.splitlines() if line.strip()]  # `user list`: then flags
        assert set(listed) == shown, (what, listed)
    groups = subprocess.run([*PY, "-c", str(installation), "group", "list"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert all(g in groups for g in ("local.talk", "local.misc", "comp.lang.x")), groups


def test_verification_finds_lost_news_rows(installation: Path, pg_database: str,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy that dropped the history's rows exits 1 and names them."""
    from postroom import migrate_store as migrate

    asyncio.run(_populate_news(load(installation).data_dir))
    real = migrate.copy_news

    async def losing_history(src: sqlite3.Connection, dst: Any) -> dict[str, int]:
        counts = await real(src, dst)
        await dst.execute("DELETE FROM news_history")
        return counts

    monkeypatch.setattr(migrate, "copy_news", losing_history)
    assert main(["-c", str(installation), "migrate-store", "--to", pg_database, "--no-progress"]) == 1
    cap = capsys.readouterr()
    assert re.search(r"^news_history\s+13\s+0\s+DIFFERENT$", cap.out, re.MULTILINE), cap.out
    assert "news_history: not in PostgreSQL: ('<n0@example.test>', 'ok'" in cap.out
    assert "the copy differs" in cap.err and 'backend = "postgresql"' not in cap.out


def test_older_news_tables_are_brought_up_to_date_first(tmp_path: Path) -> None:
    """A store whose news tables an older release made gets this release's before the copy
    (on the copy's connection: it holds the writer lock), so every column can travel."""
    from postroom.migrate_store import MigrationRefused, migrate_sqlite_news
    from postroom.news.state import SQLITE_MIGRATIONS
    from postroom.storage.sqlite.schema import _statements

    def schema(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'news%' ORDER BY name").fetchall()

    fresh = sqlite3.connect(tmp_path / "fresh.db", isolation_level=None)
    fresh.execute("CREATE TABLE news_schema(version INTEGER NOT NULL)")
    fresh.execute("INSERT INTO news_schema VALUES (0)")
    migrate_sqlite_news(fresh)
    assert fresh.execute("SELECT version FROM news_schema").fetchall() == [(len(SQLITE_MIGRATIONS),)]
    old = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    old.execute("CREATE TABLE news_schema(version INTEGER NOT NULL)")
    old.execute("INSERT INTO news_schema VALUES (1)")
    for stmt in _statements(SQLITE_MIGRATIONS[0]):
        old.execute(stmt)
    old.execute("INSERT INTO news_history(message_id, state, arrived) VALUES ('<a@b>', 'ok', 1.0)")
    migrate_sqlite_news(old)
    assert schema(old) == schema(fresh)
    assert old.execute("SELECT message_id FROM news_history").fetchall() == [("<a@b>",)]
    migrate_sqlite_news(old)  # up to date: nothing to do
    none = sqlite3.connect(tmp_path / "none.db", isolation_level=None)
    migrate_sqlite_news(none)  # never had a group: no news tables made
    assert schema(none) == []
    old.execute("UPDATE news_schema SET version = version + 1")
    with pytest.raises(MigrationRefused, match="newer than this Postroom"):
        migrate_sqlite_news(old)
