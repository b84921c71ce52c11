"""Every RFC 1939 command through poplib against the real server."""

from __future__ import annotations

import poplib

import pytest

from pop3_harness import Harness, client_tls, message


def test_greeting_has_apop_timestamp(srv: Harness) -> None:
    c = srv.pop3(stls=False)
    welcome = c.getwelcome()
    assert welcome.startswith(b"+OK ") and welcome.endswith(b"@mail.example.test>")
    assert c.timestamp.match(welcome)
    c.quit()


def test_transaction_commands(srv: Harness) -> None:
    acc = srv.new_user()
    raws = [message(i) for i in range(1, 4)]
    uids = [srv.deliver(acc, r) for r in raws]
    box_validity = srv.call(srv.store.get_mailbox(acc.id, "INBOX")).uidvalidity
    c = srv.login(acc)
    assert c.stat() == (3, sum(map(len, raws)))
    resp, lines, _ = c.list()
    assert lines == [f"{i} {len(r)}".encode() for i, r in enumerate(raws, 1)]
    assert c.list(2) == f"+OK 2 {len(raws[1])}".encode()
    resp, lines, _ = c.uidl()
    assert lines == [f"{i} {box_validity}.{u}".encode() for i, u in enumerate(uids, 1)]
    assert c.uidl(3) == f"+OK 3 {box_validity}.{uids[2]}".encode()
    resp, lines, octets = c.retr(1)
    assert resp == f"+OK {len(raws[0])} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == raws[0]
    resp, lines, _ = c.top(2, 0)
    assert b"Subject: message 2" in lines and lines[-1] == b""
    assert c.noop() == b"+OK"
    assert c.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="deleted"):
        c.retr(1)
    with pytest.raises(poplib.error_proto):
        c.list(9)
    assert c.stat() == (2, len(raws[1]) + len(raws[2]))
    assert c.rset().startswith(b"+OK")
    assert c.stat()[0] == 3
    c.dele(3)
    assert c.quit().startswith(b"+OK")
    left = srv.inbox(acc)
    assert [m.uid for m in left] == uids[:2]
    assert left[0].seen and not left[1].seen  # RETR marks \Seen; TOP does not


def test_commands_in_wrong_state(srv: Harness) -> None:
    c = srv.pop3()
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL"):
        with pytest.raises(poplib.error_proto, match="only valid after login"):
            c._shortcmd(cmd)
    c.quit()


def test_quit_in_authorization(srv: Harness) -> None:
    c = srv.pop3()
    assert c.quit() == b"+OK Bye"


def test_capa(srv: Harness) -> None:
    c = srv.pop3(stls=False)
    caps = c.capa()
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE", "IMPLEMENTATION",
                "STLS", "UTF8"):
        assert cap in caps, cap
    assert "USER" not in caps and "SASL" not in caps  # not before TLS
    c.stls(context=client_tls())
    caps = c.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"] and "STLS" not in caps
    c.quit()


def test_empty_maildrop(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.login(acc)
    assert c.stat() == (0, 0)
    assert c.list()[1] == []
    assert c.uidl()[1] == []
    assert c.quit().startswith(b"+OK")
