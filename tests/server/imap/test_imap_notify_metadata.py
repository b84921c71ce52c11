"""NOTIFY's metadata events (RFC 5465 §5.6 MailboxMetadataChange, §5.7 ServerMetadataChange)
with METADATA (RFC 5464 §4.4.2): raw exchanges over loopback while a second connection, or
another process, runs SETMETADATA on a mailbox and on the server; mailbox filters that take
the mailbox and filters that do not; a session's own changes left out (§5); removed entries
named; RENAME INBOX's copy; IDLE; [NOTIFICATIONOVERFLOW] when the store's change log no longer
reaches back; and the store's change numbers and account watch underneath."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from imap_harness import RawClient
from test_imap_notify import _same_store, events, login, ok, quiet

from postroom.storage.sqlite import store as sqlite_store

BOTH = b"(personal (MailboxMetadataChange ServerMetadataChange))"


def two(srv, select: bytes | None = None) -> tuple[object, RawClient, RawClient]:
    """A new account and two sessions: ``a`` (which sets NOTIFY) and ``b`` (which writes)."""
    acc = srv.new_user()
    return acc, login(srv, acc, select), login(srv, acc, None)


def test_mailbox_and_server_entries_from_another_session(srv):
    _, a, b = two(srv)
    ok(a, b"n NOTIFY SET " + BOTH)
    # §5.6: the names of the entries changed, without values (RFC 5464 §4.4.2 entry-list).
    ok(b, b'm SETMETADATA INBOX (/shared/comment "one" /private/Comment "two")')
    assert events(a, b"METADATA") == [b'* METADATA "INBOX" /shared/comment /private/comment\r\n']
    # §5.7: server entries, mailbox "".
    ok(b, b'm SETMETADATA "" (/private/vendor/test/x "v")')
    assert events(a, b"METADATA") == [b'* METADATA "" /private/vendor/test/x\r\n']
    # A removed entry MUST be named (§5.6, §5.7); a name that needs quoting is quoted.
    ok(b, b'm SETMETADATA INBOX (/shared/comment NIL "/private/a b" "x")')
    assert events(a, b"METADATA") == [b'* METADATA "INBOX" /shared/comment "/private/a b"\r\n']
    # Nothing changed (the same value again, removing what is not there): nothing to say.
    ok(b, b'm SETMETADATA INBOX (/private/comment "two" /shared/nothing NIL)')
    ok(b, b'm SETMETADATA "" (/private/vendor/test/x "v")')
    assert quiet(a) == []
    a.close()
    b.close()


def test_filters_take_or_leave_the_mailbox(srv):
    _, a, b = two(srv)
    for name in (b"Work", b"Lists", b"Lists/ietf", b"Other"):
        ok(b, b"c CREATE " + name)
    quiet(a, 0.3)
    # Only Work's entries and the subtree of Lists; server events asked for under a filter
    # that names no mailbox the account has (§5.7: a user event, whatever the filter).
    ok(a, b"n NOTIFY SET (mailboxes Work (MailboxMetadataChange)) (subtree Lists (MailboxMetadataChange))"
          b" (mailboxes Nope (ServerMetadataChange))")
    ok(b, b'm SETMETADATA INBOX (/private/comment "not watched")')
    ok(b, b'm SETMETADATA Other (/private/comment "not watched")')
    assert quiet(a) == []
    ok(b, b'm SETMETADATA Work (/private/comment "watched")')
    assert events(a, b"METADATA") == [b'* METADATA "Work" /private/comment\r\n']
    ok(b, b'm SETMETADATA Lists/ietf (/shared/comment "watched")')
    assert events(a, b"METADATA") == [b'* METADATA "Lists/ietf" /shared/comment\r\n']
    ok(b, b'm SETMETADATA "" (/shared/comment "server")')
    assert events(a, b"METADATA") == [b'* METADATA "" /shared/comment\r\n']
    # Mailbox events only: server entries are not reported.
    ok(a, b"n NOTIFY SET (personal (MailboxMetadataChange))")
    ok(b, b'm SETMETADATA "" (/shared/comment "again")')
    assert quiet(a) == []
    # Other events only (MailboxName): metadata changes are not reported.
    ok(a, b"n NOTIFY SET (personal (MailboxName SubscriptionChange))")
    ok(b, b'm SETMETADATA Work (/private/comment "unseen")')
    assert quiet(a) == []
    # The subscribed filter follows the subscription list (RFC 5465 §6.4).
    ok(a, b"n NOTIFY SET (subscribed (MailboxMetadataChange))")
    ok(b, b'm SETMETADATA Other (/private/comment "not subscribed")')
    assert quiet(a) == []
    ok(b, b"s SUBSCRIBE Other")
    ok(b, b'm SETMETADATA Other (/private/comment "subscribed")')
    assert events(a, b"METADATA") == [b'* METADATA "Other" /private/comment\r\n']
    # NOTIFY NONE: nothing more.
    ok(a, b"n NOTIFY NONE")
    ok(b, b'm SETMETADATA Other (/private/comment "off")')
    assert quiet(a) == []
    a.close()
    b.close()


def test_own_changes_are_not_reported(srv):
    _, a, b = two(srv)
    ok(a, b"n NOTIFY SET " + BOTH)
    # §5: the session's own SETMETADATA comes back neither with its reply nor afterwards.
    lines = ok(a, b'm SETMETADATA INBOX (/private/mine "1")')
    assert not [ln for ln in lines if b"METADATA" in ln and not ln.startswith(b"m ")], lines
    ok(a, b'm SETMETADATA "" (/private/mine "1")')
    assert quiet(a) == []
    # Its own write and another session's, close together: only the other one is named.
    ok(a, b'm SETMETADATA INBOX (/private/mine "2")')
    ok(b, b'm SETMETADATA INBOX (/private/theirs "1")')
    got = events(a, b"METADATA") + quiet(a, 0.5)
    assert got == [b'* METADATA "INBOX" /private/theirs\r\n'], got
    # RENAME INBOX copies INBOX's entries to the new mailbox (RFC 5464 §4.1): made by this
    # session, not reported to it; made by another, named under the new mailbox (all of
    # INBOX's entries: the new mailbox had none).
    ok(a, b"r RENAME INBOX Mine")
    assert quiet(a) == []
    ok(b, b'm SETMETADATA INBOX (/private/comment "x")')
    events(a, b"METADATA")
    ok(b, b"r RENAME INBOX Theirs")
    got = events(a, b"METADATA") + quiet(a, 0.5)
    assert got == [b'* METADATA "Theirs" /private/comment /private/mine /private/theirs\r\n'], got
    a.close()
    b.close()


def test_selected_mailbox_and_idle(srv):
    _, a, b = two(srv, b"INBOX")
    # The selected mailbox's metadata is reported like MailboxName is: its message events
    # come from the selected group, its mailbox events from the others (§6).
    ok(a, b"n NOTIFY SET (selected (MessageNew MessageExpunge)) " + BOTH)
    ok(b, b'm SETMETADATA INBOX (/private/comment "selected")')
    assert events(a, b"METADATA") == [b'* METADATA "INBOX" /private/comment\r\n']
    # During IDLE the same events go out (§4).
    a.send(b"i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    ok(b, b'm SETMETADATA "" (/private/idle "1")')
    assert events(a, b"METADATA") == [b'* METADATA "" /private/idle\r\n']
    a.send(b"DONE\r\n")
    assert a.until_tagged(b"i")[-1].startswith(b"i OK")
    a.close()
    b.close()


def test_change_from_another_process(srv):
    """Another process (another worker, the CLI) writes: the account watch's poll sees the
    account's metadata change number move."""
    acc = srv.new_user()
    a = login(srv, acc, None)
    ok(a, b"n NOTIFY SET " + BOTH)
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from postroom.config import from_dict
        from postroom.storage import open_store
        async def main():
            async with {_same_store(srv)} as st:
                inbox = await st.get_mailbox({acc.id}, "INBOX")
                await st.set_metadata({acc.id}, inbox.id, {{"/private/afar": b"1"}})
                await st.set_metadata({acc.id}, None, {{"/shared/afar": b"1"}})
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    got = events(a, b'"" ') + quiet(a, 0.5)
    assert b'* METADATA "INBOX" /private/afar\r\n' in got, got
    assert b'* METADATA "" /shared/afar\r\n' in got, got
    a.close()


@pytest.mark.sqlite_only("shrinks the SQLite store's metadata log")
def test_overflow_when_the_log_no_longer_reaches_back(srv, monkeypatch):
    """More writes since the last look than the store keeps: §5.8, NOTIFY is off."""
    _, a, b = two(srv)
    ok(a, b"n NOTIFY SET " + BOTH)
    monkeypatch.setattr(sqlite_store, "METADATA_LOG_KEEP", 0)  # keeps nothing: always too far back
    ok(b, b'm SETMETADATA INBOX (/private/comment "lost")')
    assert events(a, b"NOTIFICATIONOVERFLOW") == \
        [b"* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off\r\n"]
    monkeypatch.undo()
    ok(b, b'm SETMETADATA INBOX (/private/comment "after")')
    assert quiet(a) == []
    a.close()
    b.close()


def test_syntax_and_badevent(srv):
    acc = srv.new_user()
    a = login(srv, acc, b"INBOX")
    # §6.1: only message events with the selected filters: BAD, not NO [BADEVENT].
    assert a.cmd(b"n NOTIFY SET (selected (MailboxMetadataChange))")[-1].startswith(b"n BAD")
    assert a.cmd(b"n NOTIFY SET (selected-delayed (ServerMetadataChange))")[-1].startswith(b"n BAD")
    got = a.cmd(b"n NOTIFY SET (personal (AnnotationChange MessageNew MessageExpunge))")[-1]
    assert got.startswith(b"n NO [BADEVENT (") and b" MailboxMetadataChange ServerMetadataChange)]" in got, got
    ok(a, b"n NOTIFY SET STATUS (inboxes (mailboxmetadatachange)) (personal (SERVERMETADATACHANGE))")
    a.close()


@pytest.mark.sqlite_only("tests SqliteStore itself: two instances on one directory")
def test_store_change_numbers_and_account_watch(tmp_path):
    """``Store.set_metadata`` numbers the writes that change something; ``metadata_changes``
    lists them (not a deleted mailbox's); the account watch wakes on them from this process
    at once and from another within the poll; an upgraded store starts at 0."""
    from postroom.storage.api import METADATA_LOG_KEEP
    from postroom.storage.sqlite.store import SqliteStore

    async def main() -> None:
        async with SqliteStore(tmp_path) as here, SqliteStore(tmp_path) as there:
            await here.add_domain("example.test")
            acc = await here.create_account("w@example.test", "x")
            inbox = await here.get_mailbox(acc.id, "INBOX")
            assert (await here.metadata_changes(acc.id, None)).last == 0
            w = here.watch_account(acc.id)
            assert await w.wait(2)  # the first poll sees the account
            assert await here.set_metadata(acc.id, inbox.id, {"/private/A": b"1", "/private/b": b"2"}) == 1
            assert await w.wait(0.1)  # this process's commit wakes at once
            assert await here.set_metadata(acc.id, inbox.id, {"/private/a": b"1", "/private/c": None}) == 0
            await asyncio.sleep(0.6)
            w.pending()
            assert await there.set_metadata(acc.id, None, {"/shared/s": b"1"}) == 2
            assert await w.wait(2.0)  # another process: the poll sees the number move
            got = await here.metadata_changes(acc.id, 0)
            assert (got.last, got.complete) == (2, True)
            assert got.changes == ((1, inbox.id, "/private/a"), (1, inbox.id, "/private/b"), (2, None, "/shared/s"))
            assert (await here.metadata_changes(acc.id, 2)).changes == ()
            # A deleted mailbox takes its rows with it; the number goes on.
            await here.create_mailbox(acc.id, "Gone")
            gone = await here.get_mailbox(acc.id, "Gone")
            assert await here.set_metadata(acc.id, gone.id, {"/private/x": b"1"}) == 3
            await here.delete_mailbox(acc.id, "Gone")
            got = await here.metadata_changes(acc.id, 2)
            assert (got.last, got.changes) == (3, ())
            # Only the last METADATA_LOG_KEEP writes are listed.
            # (Concurrent writes share commits: quicker than one fsync each.)
            await asyncio.gather(*(here.set_metadata(acc.id, None, {"/private/n": str(i).encode()})
                                   for i in range(METADATA_LOG_KEEP + 2)))
            assert not (await here.metadata_changes(acc.id, 3)).complete
            last = (await here.metadata_changes(acc.id, None)).last
            assert (await here.metadata_changes(acc.id, last - METADATA_LOG_KEEP)).complete
            w.close()

    asyncio.run(main())
