"""Snapshot semantics, deletion only at QUIT, the IN-USE lock, and the shared store."""

from __future__ import annotations

import poplib
import socket

import pytest

from pop3_harness import Harness, message


def test_deletion_only_at_quit(srv: Harness) -> None:
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, message(i))
    c = srv.login(acc)
    c.dele(1)
    c.dele(2)
    assert len(srv.inbox(acc)) == 3  # marked, not removed
    c.quit()
    assert len(srv.inbox(acc)) == 1


def test_dropped_connection_deletes_nothing(srv: Harness) -> None:
    acc = srv.new_user()
    for i in range(2):
        srv.deliver(acc, message(i))
    c = srv.login(acc)
    c.dele(1)
    c.dele(2)
    c.sock.shutdown(socket.SHUT_RDWR)
    c.sock.close()
    # The lock is released once the server notices; then a new session sees both.
    c2 = _login_retrying(srv, acc)
    assert c2.stat()[0] == 2
    c2.quit()
    assert len(srv.inbox(acc)) == 2


def _login_retrying(srv: Harness, acc) -> poplib.POP3:  # type: ignore[no-untyped-def]
    import time

    for _ in range(50):
        try:
            return srv.login(acc)
        except poplib.error_proto as exc:
            if b"IN-USE" not in exc.args[0]:
                raise
            time.sleep(0.1)
    raise AssertionError("lock never released")


def test_second_session_gets_in_use(srv: Harness) -> None:
    acc = srv.new_user()
    c1 = srv.login(acc)
    c2 = srv.pop3()
    c2.user(acc.address)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        c2.pass_("secret")
    c1.quit()
    c2.user(acc.address)
    assert c2.pass_("secret").startswith(b"+OK")  # same connection, after the first one left
    c2.quit()


def test_mail_arriving_during_session_shows_up_next_session(srv: Harness) -> None:
    acc = srv.new_user()
    srv.deliver(acc, message(1))
    c = srv.login(acc)
    assert c.stat()[0] == 1
    if not srv.deliver_by_smtp(acc, message(2)):
        srv.deliver(acc, message(2))  # this build has no SMTP listener yet
    assert len(srv.inbox(acc)) == 2
    assert c.stat()[0] == 1  # the snapshot does not change (RFC 1939 §8)
    assert len(c.list()[1]) == 1
    c.dele(1)
    c.quit()
    c = srv.login(acc)
    assert c.stat()[0] == 1
    assert b"Subject: message 2" in c.retr(1)[1]
    c.quit()


def test_uidl_stable_across_sessions(srv: Harness) -> None:
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, message(i))
    c = srv.login(acc)
    first = dict(line.split() for line in c.uidl()[1])
    c.dele(1)
    c.quit()
    srv.deliver(acc, message(9))
    c = srv.login(acc)
    second = [line.split()[1] for line in c.uidl()[1]]
    c.quit()
    assert second[:2] == [first[b"2"], first[b"3"]]
    assert second[2] not in first.values()
    box = srv.call(srv.store.get_mailbox(acc.id, "INBOX"))
    assert second == [f"{box.uidvalidity}.{m.uid}".encode() for m in srv.inbox(acc)]


def test_imap_side_deletions_are_seen_by_pop3(srv: Harness) -> None:
    """What IMAP expunges is gone from the next POP3 session, and \\Deleted ones are hidden."""
    acc = srv.new_user()
    uids = [srv.deliver(acc, message(i)) for i in range(3)]
    srv.imap_delete(acc, [uids[0]])
    srv.imap_delete(acc, [uids[1]], expunge=False)
    c = srv.login(acc)
    assert c.stat()[0] == 1
    assert b"Subject: message 2" in c.retr(1)[1]
    c.quit()


def test_expunged_by_imap_during_session(srv: Harness) -> None:
    acc = srv.new_user()
    uids = [srv.deliver(acc, message(i)) for i in range(2)]
    c = srv.login(acc)
    srv.imap_delete(acc, [uids[0]])
    try:
        c.retr(1)  # a store that keeps the bytes until the last reader goes may still serve it
    except poplib.error_proto as exc:
        assert exc.args[0].startswith(b"-ERR [SYS/TEMP]")
    c.dele(1)
    c.dele(2)
    assert c.quit().startswith(b"+OK")
    assert srv.inbox(acc) == []


def test_pop3_deletions_are_gone_for_imap(srv: Harness) -> None:
    acc = srv.new_user()
    uids = [srv.deliver(acc, message(i)) for i in range(2)]
    c = srv.login(acc)
    c.dele(2)
    c.quit()
    box = srv.call(srv.store.get_mailbox(acc.id, "INBOX"))
    assert [m.uid for m in srv.call(srv.store.list_messages(box.id))] == uids[:1]
    changes = srv.call(srv.store.changes_since(box.id, 0))
    assert uids[1] in changes.expunged  # IMAP sessions get EXPUNGE / VANISHED for it


def test_with_a_real_imap_client(srv: Harness) -> None:
    """POP3 deletions vanish from IMAP, IMAP expunges vanish from POP3 (imaplib, if IMAP is built)."""
    import imaplib

    from pop3_harness import client_tls

    if "imap" not in srv.ports:
        pytest.skip("this build has no IMAP listener")
    acc = srv.new_user()
    for i in range(4):
        srv.deliver(acc, message(i))
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=30)
    imap.starttls(client_tls())
    imap.login(acc.address, "secret")
    imap.select("INBOX")
    c = srv.login(acc)
    c.dele(1)
    c.quit()
    imap.noop()
    typ, data = imap.uid("SEARCH", "ALL")
    uids = data[0].split()
    assert len(uids) == 3
    imap.uid("STORE", uids[0], "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()
    c = srv.login(acc)
    assert [line.split()[1].split(b".")[1] for line in c.uidl()[1]] == uids[1:]
    c.quit()
