"""NOTIFY (RFC 5465): raw exchanges with a real server while a second connection, SMTP
delivery or another process changes the account; events between commands, during IDLE and
with command responses; the STATUS option; NOTIFY NONE; BAD and NO [BADEVENT] refusals;
[NOTIFICATIONOVERFLOW]; no watch left behind. The last test runs one exchange against
Dovecot (bench/dovecot_peer.py) when it is installed."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from imap_harness import PASSWORD, RawClient, msg

from postroom.imap.handlers import notify as hnotify

ALL_EVENTS = (b"(selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
              b"(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))")


def login(srv, acc, select: bytes | None = b"INBOX") -> RawClient:
    c = srv.raw()
    assert c.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    if select:
        assert c.cmd(b"s SELECT " + select)[-1].startswith(b"s OK")
    return c


def ok(c: RawClient, cmd: bytes) -> list[bytes]:
    lines = c.cmd(cmd)
    assert lines[-1].split(b" ")[1] == b"OK", lines
    return lines


def events(c: RawClient, until: bytes, timeout: float = 5.0) -> list[bytes]:
    """Unsolicited lines read without sending anything, up to one containing ``until``."""
    out: list[bytes] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        c.sock.settimeout(max(0.05, deadline - time.time()))
        try:
            line = c.line()
        except TimeoutError:
            break
        out.append(line)
        if until in line:
            c.sock.settimeout(10)
            return out
    c.sock.settimeout(10)
    raise AssertionError(f"{until!r} not received; got {out!r}")


def quiet(c: RawClient, secs: float = 0.8) -> list[bytes]:
    """What arrives unsolicited within ``secs`` (expected: nothing)."""
    out: list[bytes] = []
    c.sock.settimeout(secs)
    try:
        while True:
            out.append(c.line())
    except TimeoutError:
        pass
    finally:
        c.sock.settimeout(10)
    return out


def account_watches(srv) -> int:
    return sum(len(w) for w in srv.store.hub._accounts.values())


def test_capability(srv):
    c = srv.raw()
    assert b" NOTIFY" in c.cmd(b"c CAPABILITY")[0]
    c.close()


def test_new_mail_everywhere_between_commands(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("first"))
    a, b = login(srv, acc), login(srv, acc, None)
    ok(b, b"c CREATE Lists")
    quiet(a, 0.3)
    ok(a, b"n NOTIFY SET " + ALL_EVENTS)
    # Another mailbox: one STATUS, while the client sends nothing (§5.2).
    srv.deliver(acc, msg("to lists"), mailbox="Lists")
    got = events(a, b"STATUS")
    assert re.fullmatch(rb'\* STATUS "Lists" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)\r\n', got[-1]), got
    # The selected mailbox: EXISTS, then the FETCH MessageNew asked for (§5.2), over SMTP.
    if not srv.deliver_by_smtp(acc, msg("via smtp")):
        srv.deliver(acc, msg("via smtp"))
    got = events(a, b"FETCH")
    assert b"* 2 EXISTS\r\n" in got
    assert re.fullmatch(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Recent\)\)\r\n", got[-1]), got
    assert got.index(b"* 2 EXISTS\r\n") < len(got) - 1
    assert quiet(a) == []
    a.close()
    b.close()


def three_messages_two_sessions(srv):
    """An account with three messages in INBOX, which two sessions select (``a`` first)."""
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(str(i)))
    return acc, login(srv, acc), login(srv, acc)


def test_flag_changes_and_expunges(srv):
    acc, a, b = three_messages_two_sessions(srv)
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    srv.deliver(acc, msg("o"), mailbox="Other")
    ok(a, b"n NOTIFY SET " + ALL_EVENTS)
    ok(b, b"f STORE 2 +FLAGS (\\Flagged)")
    assert events(a, b"FETCH") == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n"]
    # §6.1.1 "selected": the EXPUNGE comes at once, between commands.
    ok(b, b"f STORE 1 +FLAGS (\\Deleted)")
    ok(b, b"e EXPUNGE")
    assert events(a, b"EXPUNGE")[-1] == b"* 1 EXPUNGE\r\n"
    # Flags and expunges in a mailbox that is not selected: STATUS (§5.1, §5.3).
    ok(b, b"s SELECT Other")
    ok(b, b"f STORE 1 +FLAGS (\\Seen)")
    assert re.match(rb'\* STATUS "Other" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0\)', events(a, b"STATUS")[-1])
    ok(b, b"f STORE 1 +FLAGS (\\Deleted)")  # a flag change too: a STATUS of its own
    ok(b, b"e EXPUNGE")
    assert re.match(rb'\* STATUS "Other" \(MESSAGES 0 UIDNEXT 2 ', events(a, b"MESSAGES 0")[-1])
    # CONDSTORE on: HIGHESTMODSEQ in every STATUS (§5.2).
    ok(a, b"e ENABLE CONDSTORE")
    srv.deliver(acc, msg("o2"), mailbox="Other")
    assert re.match(rb'\* STATUS "Other" \(MESSAGES 1 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 1 HIGHESTMODSEQ \d+\)',
                    events(a, b"STATUS")[-1])
    a.close()
    b.close()


def test_selected_delayed_holds_expunges_and_no_flagchange(srv):
    acc, a, b = three_messages_two_sessions(srv)
    ok(a, b"n NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
    ok(b, b"f STORE 1 +FLAGS (\\Deleted \\Flagged)")
    ok(b, b"e EXPUNGE")
    srv.deliver(acc, msg("new"))
    # New mail is told at once (without FETCH: none was asked for); the expunge waits for a
    # command that may carry it (§6.1.2), and the flag change was not asked for.
    got = events(a, b"EXISTS")
    assert got[0] == b"* 4 EXISTS\r\n", got
    assert not [ln for ln in got + quiet(a) if b"EXPUNGE" in ln or b"FETCH" in ln]
    assert a.cmd(b"f FETCH 2 (UID)")[0] == b"* 2 FETCH (UID 2)\r\n"  # still numbered as before
    lines = ok(a, b"n NOOP")
    assert lines[0] == b"* 1 EXPUNGE\r\n"
    a.close()
    b.close()


def test_qresync_vanished_and_uid_in_fetch(srv):
    acc = srv.new_user()
    for i in range(2):
        srv.deliver(acc, msg(str(i)))
    a, b = login(srv, acc, None), login(srv, acc)
    ok(a, b"e ENABLE QRESYNC")
    ok(a, b"s SELECT INBOX")
    ok(a, b"n NOTIFY SET (selected (MessageNew (FLAGS) MessageExpunge))")
    ok(b, b"f STORE 1 +FLAGS (\\Deleted)")
    ok(b, b"e EXPUNGE")
    assert events(a, b"VANISHED") == [b"* VANISHED 1\r\n"]  # §5.3 with QRESYNC (RFC 7162 §3.2.10)
    srv.deliver(acc, msg("new"))
    got = events(a, b"FETCH")
    assert got[0] == b"* 2 EXISTS\r\n"
    assert got[-1] == b"* 2 FETCH (UID 3 FLAGS (\\Recent))\r\n"  # UID added (RFC 7162 §3.2.4)
    a.close()
    b.close()


def test_own_append_and_idle_with_selected_delayed(srv):
    _, a, b = three_messages_two_sessions(srv)
    ok(a, b"n NOTIFY SET (selected-delayed (MessageNew (UID) MessageExpunge FlagChange))")
    # §5.2: no FETCH for a message this session appended itself (its EXISTS comes with APPEND).
    lines = ok(a, b"a APPEND INBOX {12+}\r\nSubject: 1\r\n\r\n")
    assert b"* 4 EXISTS\r\n" in lines
    assert quiet(a, 0.5) == []
    # An expunge held back by selected-delayed goes out when IDLE starts (§4).
    ok(b, b"f STORE 1 +FLAGS (\\Deleted)")
    ok(b, b"e EXPUNGE")
    assert events(a, b"FETCH") == [b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))\r\n"]
    assert quiet(a, 0.5) == []
    a.send(b"i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    assert events(a, b"EXPUNGE") == [b"* 1 EXPUNGE\r\n"]
    a.send(b"DONE\r\n")
    assert a.until_tagged(b"i") == [b"i OK Idle completed\r\n"]
    a.close()
    b.close()


def test_mailbox_names_and_subscriptions(srv):
    acc = srv.new_user()
    a, b = login(srv, acc), login(srv, acc, None)
    ok(b, b"c CREATE Folder/Sub")
    ok(a, b"n NOTIFY SET (personal (MailboxName SubscriptionChange))")
    ok(b, b"c CREATE Fresh")
    assert events(a, b"Fresh") == [b'* LIST (\\HasNoChildren) "/" "Fresh"\r\n']
    ok(b, b"r RENAME Folder Renamed")
    got = sorted(events(a, b"Sub") + quiet(a, 0.5))
    assert got == [b'* LIST (\\HasChildren) "/" "Renamed" ("OLDNAME" ("Folder"))\r\n',
                   b'* LIST (\\HasNoChildren) "/" "Renamed/Sub" ("OLDNAME" ("Folder/Sub"))\r\n'], got
    ok(b, b"u SUBSCRIBE Fresh")
    assert events(a, b"Fresh") == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fresh"\r\n']
    ok(b, b"u UNSUBSCRIBE Fresh")
    assert events(a, b"Fresh") == [b'* LIST (\\HasNoChildren) "/" "Fresh"\r\n']
    ok(b, b"d DELETE Fresh")
    assert events(a, b"Fresh") == [b'* LIST (\\NonExistent) "/" "Fresh"\r\n']
    # §5: the client's own changes do not come back to it.
    ok(a, b"c CREATE Mine/Deep")
    ok(a, b"c SUBSCRIBE Mine/Deep")
    ok(a, b"c RENAME Mine Yours")
    ok(a, b"c DELETE Yours/Deep")
    assert quiet(a) == []
    assert ok(a, b"n NOOP") == [b"n OK NOOP completed\r\n"]
    a.close()
    b.close()


def test_filters_subtree_mailboxes_subscribed(srv):
    acc = srv.new_user()
    for name in ("Lists", "Lists/a", "Lists/b", "Other", "Sub"):
        srv.call(srv.store.create_mailbox(acc.id, name))
    srv.call(srv.store.subscribe(acc.id, "Sub"))
    a = login(srv, acc)
    lines = ok(a, b"n NOTIFY SET STATUS (subtree Lists (MessageNew MessageExpunge)) "
                  b"(mailboxes (Other Missing) (MessageNew MessageExpunge)) (subscribed (MessageNew MessageExpunge))")
    # STATUS option (§3.1): one STATUS per watched mailbox before the tagged OK (new accounts
    # have their special-use mailboxes subscribed); INBOX is selected and no "selected"
    # group was given: none for it.
    names = sorted(re.match(rb'\* STATUS "([^"]+)"', ln).group(1) for ln in lines[:-1])
    assert names == [b"Archive", b"Drafts", b"Junk", b"Lists", b"Lists/a", b"Lists/b", b"Other", b"Sent", b"Sub",
                     b"Trash"], lines
    srv.deliver(acc, msg("inbox"))  # not watched (selected NONE)
    srv.deliver(acc, msg("b"), mailbox="Lists/b")
    assert events(a, b"STATUS")[-1].startswith(b'* STATUS "Lists/b" (MESSAGES 1 ')
    # A subscription made later brings its mailbox under "subscribed" (§6.4).
    srv.call(srv.store.create_mailbox(acc.id, "Later"))
    srv.call(srv.store.subscribe(acc.id, "Later"))
    quiet(a, 0.5)
    srv.deliver(acc, msg("later"), mailbox="Later")
    assert events(a, b"STATUS")[-1].startswith(b'* STATUS "Later" (MESSAGES 1 ')
    assert quiet(a, 0.5) == []
    a.close()


def test_status_option_with_condstore_and_implicit_noop(srv):
    acc = srv.new_user()
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    a, b = login(srv, acc), login(srv, acc, None)
    ok(a, b"e ENABLE CONDSTORE")
    srv.deliver(acc, msg("before"))
    lines = ok(a, b"n NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
    # §3.1: an implicit NOOP (the pending EXISTS) and the initial STATUS of the other mailboxes.
    assert b"* 1 EXISTS\r\n" in lines
    status = [ln for ln in lines if ln.startswith(b"* STATUS")]
    assert len(status) == 6  # Sent, Drafts, Trash, Junk, Archive, Other; not the selected INBOX
    assert all(re.search(rb"UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)", ln) for ln in status)
    a.close()
    b.close()


def test_idle_after_notify(srv):
    acc = srv.new_user()
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    a = login(srv, acc)
    ok(a, b"n NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge MailboxName))")
    a.send(b"i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    srv.deliver(acc, msg("other"), mailbox="Other")
    assert events(a, b"STATUS")[-1].startswith(b'* STATUS "Other" (MESSAGES 1 ')
    srv.deliver(acc, msg("inbox"))
    assert events(a, b"EXISTS")[-1] == b"* 1 EXISTS\r\n"
    assert quiet(a, 0.3) == [b"* 1 RECENT\r\n"]
    srv.call(srv.store.create_mailbox(acc.id, "Made"))
    assert events(a, b"LIST") == [b'* LIST (\\HasNoChildren) "/" "Made"\r\n']
    a.send(b"DONE\r\n")
    assert a.until_tagged(b"i")[-1] == b"i OK Idle completed\r\n"
    # IDLE after NOTIFY NONE is RFC 2177's again: the selected mailbox only.
    ok(a, b"n NOTIFY NONE")
    a.send(b"j IDLE\r\n")
    assert a.line().startswith(b"+ ")
    srv.deliver(acc, msg("other2"), mailbox="Other")
    srv.deliver(acc, msg("inbox2"))
    assert events(a, b"EXISTS") == [b"* 2 EXISTS\r\n"]
    a.send(b"DONE\r\n")
    assert [ln for ln in a.until_tagged(b"j") if b"STATUS" in ln or b"LIST" in ln] == []
    a.close()


def test_notify_none_and_session_end_stop_everything(srv):
    acc = srv.new_user()
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    before = account_watches(srv)
    a = login(srv, acc)
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    assert account_watches(srv) == before + 1
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")  # replaces, no second watch
    assert account_watches(srv) == before + 1
    ok(a, b"n NOTIFY NONE")
    assert account_watches(srv) == before
    srv.deliver(acc, msg("x"), mailbox="Other")
    assert quiet(a) == []
    # LOGOUT, UNAUTHENTICATE and a dropped connection close the watch too.
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    a.cmd(b"o LOGOUT")
    a.close()
    b = login(srv, acc)
    ok(b, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    ok(b, b"u UNAUTHENTICATE")
    c = login(srv, acc)
    ok(c, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    c.close()
    deadline = time.time() + 5
    while account_watches(srv) != before and time.time() < deadline:
        time.sleep(0.05)
    assert account_watches(srv) == before
    b.close()


BAD_ARGS = [
    b"",
    b" SET",
    b" SET ()",
    b" FOO",
    b" NONE extra",
    b" SET (selected (MessageNew))",  # §5: with MessageExpunge or not at all
    b" SET (selected (MessageExpunge))",
    b" SET (personal (FlagChange))",  # §5: FlagChange needs both
    b" SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)",  # §6.1
    b" SET (selected (MailboxName))",  # §6.1: message events only
    b" SET (personal (MessageNew (UID) MessageExpunge))",  # fetch-atts for the selected mailbox only
    b" SET (selected (MessageNew () MessageExpunge))",
    b" SET (selected (MessageNew (NOSUCH) MessageExpunge))",
    b" SET (nosuch (MessageNew MessageExpunge))",
    b" SET (subtree (MessageNew MessageExpunge))",
    b" SET (mailboxes () (MessageNew MessageExpunge))",
    b" SET (personal ())",
    b" SET (personal (MailboxName MailboxName))",
    b" SET (personal NONE)(inboxes NONE)",
    b" SET (personal NONE",
]


def test_bad_syntax(srv):
    acc = srv.new_user()
    a = login(srv, acc)
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    for args in BAD_ARGS:
        assert a.cmd(b"n NOTIFY" + args)[-1].startswith(b"n BAD "), args
        ok(a, b"p NOOP")  # the session goes on
    # A refused NOTIFY leaves the one in force (§3.1 says nothing else).
    srv.deliver(acc, msg("x"), mailbox="Trash")
    assert events(a, b"STATUS")[-1].startswith(b'* STATUS "Trash" (MESSAGES 1 ')
    a.close()


def test_unsupported_events_and_state(srv):
    acc = srv.new_user()
    a = login(srv, acc)
    supported = (b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"
                 b" MailboxMetadataChange ServerMetadataChange)]")  # the metadata events: test_imap_notify_metadata.py
    for events_ in (b"(selected (MessageNew MessageExpunge AnnotationChange))",
                    b"(personal (SomethingNew))"):
        assert a.cmd(b"n NOTIFY SET " + events_)[-1] == b"n NO " + supported + b" Unsupported NOTIFY events\r\n"
    c = srv.raw()
    assert c.cmd(b"n NOTIFY NONE")[-1].startswith(b"n BAD")  # authenticated state only
    c.close()
    # A NOTIFY for names that do not exist is fine (§6.6: ignored).
    ok(a, b"n NOTIFY SET STATUS (mailboxes (Nope) (MessageNew MessageExpunge))")
    a.close()


def test_overflow(srv, monkeypatch):
    acc = srv.new_user()
    for i in range(4):
        srv.call(srv.store.create_mailbox(acc.id, f"Box{i}"))
    for name in ("Tree", *(f"Tree/c{i}" for i in range(4))):
        srv.call(srv.store.create_mailbox(acc.id, name))
    a, b = login(srv, acc), login(srv, acc, None)
    monkeypatch.setattr(hnotify, "MAX_WATCHED", 3)
    # Refused up front when too many mailboxes would be watched (§3.1) ...
    assert a.cmd(b"n NOTIFY SET (personal (MessageNew MessageExpunge))")[-1].startswith(
        b"n NO [NOTIFICATIONOVERFLOW]")
    ok(a, b"n NOTIFY SET (personal (MailboxName)) (subtree Box0 (MessageNew MessageExpunge))")
    # ... and switched off (untagged, §5.8) when too much piles up at once (one RENAME of a
    # tree of five mailboxes: five LIST responses).
    monkeypatch.setattr(hnotify, "MAX_LINES", 3)
    ok(b, b"r RENAME Tree Moved")
    assert events(a, b"NOTIFICATIONOVERFLOW")[-1] == \
        b"* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off\r\n"
    ok(b, b"c CREATE After")
    srv.deliver(acc, msg("x"), mailbox="Box0")
    assert quiet(a) == []
    a.close()
    b.close()


def test_overflow_on_new_mail_and_unread_output(srv, monkeypatch):
    acc = srv.new_user()
    srv.deliver(acc, msg("0"))
    a, b = login(srv, acc), login(srv, acc, None)
    ok(a, b"n NOTIFY SET (selected (MessageNew (UID ENVELOPE) MessageExpunge)) (personal (MessageNew MessageExpunge))")
    # More new messages at once than NOTIFY FETCHes: EXISTS still goes (the view has moved),
    # the FETCHes do not, and NOTIFY is off (§5.8).
    monkeypatch.setattr(hnotify, "MAX_NEW_FETCH", 1)
    ok(b, b"a APPEND INBOX {12+}\r\nSubject: 1\r\n {12+}\r\nSubject: 2\r\n\r\n")  # MULTIAPPEND: one commit
    got = events(a, b"NOTIFICATIONOVERFLOW")
    assert got[0] == b"* 3 EXISTS\r\n" and not [ln for ln in got if b"FETCH" in ln], got
    srv.deliver(acc, msg("x"), mailbox="Trash")
    assert quiet(a) == []
    # A client that leaves our output unread (here: any backlog at all counts as too much).
    monkeypatch.setattr(hnotify, "MAX_BACKLOG", -1)
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    srv.deliver(acc, msg("y"), mailbox="Trash")
    assert events(a, b"NOTIFICATIONOVERFLOW") == [_OVERFLOW_LINE]
    a.close()
    b.close()


_OVERFLOW_LINE = b"* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off\r\n"


def _same_store(srv) -> str:
    """Python source opening the server's store (either backend) in another process, which
    does not inherit the tests' POSTROOM_TEST_STORE switch: the [storage] table is spelt out.
    The script imports Path, from_dict and open_store."""
    cfg = srv.server.cfg
    storage = {"path": str(cfg.data_dir)}
    if cfg.pg is not None:
        storage |= {"backend": "postgresql", "url": cfg.pg.url}
    return f"open_store(from_dict({{'storage': {storage!r}}}, Path({str(cfg.path)!r})))"


def test_change_from_another_process(srv):
    """Another process (another worker, the CLI) writes: the account watch's poll sees it."""
    acc = srv.new_user()
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    a = login(srv, acc)
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from postroom.config import from_dict
        from postroom.storage import open_store
        from postroom.storage.models import DeliveryTarget
        async def main():
            async with {_same_store(srv)} as st:
                await st.deliver(b"Subject: elsewhere\\r\\n\\r\\nhi\\r\\n", [DeliveryTarget({acc.id}, "Other")])
                await st.create_mailbox({acc.id}, "FromAfar")
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    got = events(a, b"FromAfar") + quiet(a, 0.5)
    assert any(ln.startswith(b'* STATUS "Other" (MESSAGES 1 ') for ln in got), got
    assert b'* LIST (\\HasNoChildren) "/" "FromAfar"\r\n' in got
    a.close()


def test_pipelined_commands_and_unsolicited_ordering(srv):
    """Events never land inside a command's responses: after its tagged reply or before it."""
    acc = srv.new_user()
    srv.call(srv.store.create_mailbox(acc.id, "Other"))
    a = login(srv, acc)
    ok(a, b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    srv.deliver(acc, msg("x"), mailbox="Other")
    a.send(b"1 NOOP\r\n2 NOOP\r\n3 NOOP\r\n")
    got = a.until_tagged(b"3")
    tagged = [ln for ln in got if not ln.startswith(b"*")]
    assert tagged == [b"1 OK NOOP completed\r\n", b"2 OK NOOP completed\r\n", b"3 OK NOOP completed\r\n"]
    statuses = [ln for ln in got if ln.startswith(b"* STATUS")] + [ln for ln in quiet(a, 0.5) if b"STATUS" in ln]
    assert len(statuses) == 1, got
    a.close()


# -- Dovecot, side by side ---------------------------------------------------------------------
sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))
from dovecot_peer import PASSWORD as DPASS
from dovecot_peer import DovecotPeer, unavailable

# What each server answers to the same NOTIFY commands. Known differences (docs/imap.md,
# "NOTIFY"), left out here: Dovecot 2.3 accepts a non-message event with "selected" (§6.1
# calls it an error), an unknown filter such as "(foo NONE)" and a bare "NOTIFY SET" (both
# outside the §8 grammar), and its BADEVENT lists the unsupported event rather than the
# supported ones (§3.1: "MUST list names of all events supported by the server").
_REFUSALS = [
    (b"SET (selected (MessageNew))", b"BAD"),
    (b"SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))", b"BAD"),
    (b"SET (personal (MessageNew (UID) MessageExpunge))", b"BAD"),
    (b"SET (selected (MessageNew MessageExpunge AnnotationChange))", b"NO"),
    (b"SET (mailboxes Nope (MessageNew MessageExpunge))", b"OK"),
    (b"SET (subtree (Sub Other) (MessageNew MessageExpunge))", b"OK"),
    (b"SET (inboxes NONE)", b"OK"),
    (b"NONE", b"OK"),
]


def _exchange(port: int, user: bytes, password: bytes, deliver) -> dict[str, object]:
    a, b = RawClient("127.0.0.1", port), RawClient("127.0.0.1", port)
    for c in (a, b):
        assert c.cmd(b"l LOGIN " + user + b" " + password)[-1].startswith(b"l OK")
    ok(b, b"c CREATE Other")
    ok(a, b"s SELECT INBOX")
    out: dict[str, object] = {}
    out["refusals"] = [a.cmd(b"n NOTIFY " + cmd)[-1].split(b" ")[1] for cmd, _ in _REFUSALS]
    lines = ok(a, b"n NOTIFY SET STATUS (selected (MessageNew (UID) MessageExpunge)) "
                  b"(personal (MessageNew MessageExpunge MailboxName SubscriptionChange))")
    unquoted = [ln.replace(b'"', b"") for ln in lines]
    out["initial"] = sorted(re.sub(rb" \d+", b" N", ln) for ln in unquoted if ln.startswith(b"* STATUS Other"))
    deliver(b)
    got: list[bytes] = []
    deadline = time.time() + 5
    while not any(b"Other" in ln and b"MESSAGES 1" in ln for ln in got) and time.time() < deadline:
        got += quiet(a, 0.3)
    out["status"] = any(ln.startswith(b"* STATUS") and b"Other" in ln and b"MESSAGES 1" in ln
                        and b"UIDNEXT 2" in ln for ln in got)
    ok(b, b"c CREATE Brand")
    got = []
    deadline = time.time() + 5
    while not any(b"Brand" in ln for ln in got) and time.time() < deadline:
        got += quiet(a, 0.3)
    out["list"] = [ln.replace(b'"', b"") for ln in got if b"LIST" in ln]
    a.close()
    b.close()
    return out


@pytest.mark.slow
@pytest.mark.skipif(unavailable("imap") is not None, reason=str(unavailable("imap")))
def test_same_exchange_as_dovecot(srv):
    acc = srv.new_user()
    ours = _exchange(srv.port, b'"' + acc.address.encode() + b'"', PASSWORD.encode(),
                     lambda b: srv.deliver(acc, msg("x"), mailbox="Other"))
    assert ours["refusals"] == [want for _, want in _REFUSALS]
    with DovecotPeer(users=["alice"], imap_port=0) as peer:
        theirs = _exchange(peer.imap_port, b"alice", DPASS.encode(),
                           lambda b: ok(b, b"a APPEND Other {20}\r\nSubject: x\r\n\r\nhello"))
    assert theirs["refusals"] == ours["refusals"]
    assert theirs["initial"] == ours["initial"]  # STATUS Other (MESSAGES N UIDNEXT N UIDVALIDITY N UNSEEN N)
    assert theirs["status"] and ours["status"]
    # The same LIST response; we add the CHILDREN attribute LIST itself would give (§5.4 SHOULD).
    assert theirs["list"] == [b"* LIST () / Brand\r\n"]
    assert ours["list"] == [b"* LIST (\\HasNoChildren) / Brand\r\n"]


@pytest.mark.sqlite_only("tests SqliteStore itself: two instances on one directory")
def test_account_watch_of_the_store(tmp_path):
    """``Store.watch_account``: woken by this process's commits at once, and by another
    connection's (another process's) within the poll, for every kind of change NOTIFY
    reports, a rename (names only) and a subscription included; not by another account."""
    import asyncio

    from postroom.storage.models import DeliveryTarget
    from postroom.storage.sqlite.store import SqliteStore

    raw = b"Subject: x\r\n\r\nx\r\n"

    async def main() -> None:
        async with SqliteStore(tmp_path) as here, SqliteStore(tmp_path) as there:
            await here.add_domain("example.test")
            acc = await here.create_account("w@example.test", "x")
            other = await here.create_account("o@example.test", "x")
            w = here.watch_account(acc.id)
            assert await w.wait(2)  # the first poll sees the account
            steps = [(here, lambda st: st.create_mailbox(acc.id, "A")),
                     (there, lambda st: st.rename_mailbox(acc.id, "A", "B")),
                     (here, lambda st: st.subscribe(acc.id, "B")),
                     (there, lambda st: st.unsubscribe(acc.id, "B")),
                     (there, lambda st: st.deliver(raw, [DeliveryTarget(acc.id, "B")])),
                     (here, lambda st: st.deliver(raw, [DeliveryTarget(acc.id, "B")])),
                     (there, lambda st: st.subscribe(acc.id, "B")),
                     (here, lambda st: st.delete_mailbox(acc.id, "B")),
                     (there, lambda st: st.create_mailbox(acc.id, "C"))]
            for n, (st, change) in enumerate(steps):
                await asyncio.sleep(0.6)  # the poll's second look at a local change
                w.pending()
                await change(st)
                # Here: woken by the commit itself, long before the poll would.
                assert await w.wait(0.1 if st is here else 2.0), n
            await asyncio.sleep(0.6)
            w.pending()
            await there.create_mailbox(other.id, "Elsewhere")
            await there.deliver(raw, [DeliveryTarget(other.id, "INBOX")])
            assert not await w.wait(1.0)
            w.close()
            assert not here.hub._accounts and not here.hub._account_of

    asyncio.run(main())


@pytest.mark.parametrize(("args", "want"), [
    (b" none", "none"),
    (b" SET STATUS (Selected-Delayed (messagenew (UID BODY.PEEK[HEADER.FIELDS (FROM)]) MESSAGEEXPUNGE))",
     "status SELECTED-DELAYED MessageExpunge,MessageNew UID,BODY.PEEK[HEADER.FIELDS (FROM)]"),
    (b' SET (subtree ("Lists" INBOX/x) (MailboxName)) (mailboxes inbox NONE)',
     "SUBTREE Lists,INBOX/x MailboxName | MAILBOXES INBOX -"),
    (b" SET (personal (MessageNew MessageExpunge X-Later))", "PERSONAL MessageExpunge,MessageNew unsupported X-Later"),
])
def test_parser_table(args, want):
    """The §8 grammar, case-insensitive atoms, decoded names; what the handler gets."""
    from postroom.imap.parser.base import Reader
    from postroom.imap.parser.notify import notify

    a = notify(Reader(args))
    if a.none:
        got = "none"
    else:
        parts = []
        for g in a.groups:
            atts = ",".join(x if isinstance(x, str) else x.kind + ".PEEK[" + x.spec().decode() + "]"
                            for x in g.fetch_atts)
            parts.append(" ".join(filter(None, [g.filter, ",".join(g.mailboxes), ",".join(sorted(g.events)) or "-",
                                                atts])))
        got = ("status " if a.status else "") + " | ".join(parts)
        if a.unsupported:
            got += " unsupported " + ",".join(a.unsupported)
    assert got == want
