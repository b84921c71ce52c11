"""UNAUTHENTICATE (RFC 8437): back to the not-authenticated state, then a new login works."""

import imaplib

from imap_harness import PASSWORD, msg

imaplib.Commands.setdefault("UNAUTHENTICATE", ("AUTH", "SELECTED"))


def _login(r, acc, tag=b"l"):
    return r.cmd(tag + b' LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))


def test_unauthenticate_then_login_as_another_user(srv):
    a, b = srv.new_user(), srv.new_user()
    srv.deliver(a, msg("for a"))
    r = srv.raw()
    assert b"UNAUTHENTICATE" in r.greeting
    assert _login(r, a)[-1].startswith(b"l OK")
    got = r.cmd(b"s SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in got
    assert r.cmd(b"u UNAUTHENTICATE") == [b"u OK Not authenticated any more\r\n"]
    # Not authenticated now: mailbox commands are refused, the selected mailbox is gone.
    assert r.cmd(b"f FETCH 1 FLAGS")[-1].startswith(b"f BAD")
    assert r.cmd(b"x SELECT INBOX") == [b"x BAD Log in first\r\n"]
    assert b"AUTH=PLAIN" in r.cmd(b"c CAPABILITY")[0]
    assert r.cmd(b"u2 UNAUTHENTICATE") == [b"u2 BAD Log in first\r\n"]
    assert _login(r, b, b"l2")[-1].startswith(b"l2 OK")
    assert b"* 0 EXISTS\r\n" in r.cmd(b"s2 SELECT INBOX")  # b's INBOX, not a's
    assert r.cmd(b"o LOGOUT")[-1] == b"o OK Logout completed\r\n"
    r.close()


def test_unauthenticate_keeps_messages_and_flags(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("keep"), flags=frozenset({"\\Deleted"}))
    c = srv.imaplib(acc, select="INBOX")
    typ, _ = c._simple_command("UNAUTHENTICATE")
    assert typ == "OK"
    c.state = "NONAUTH"
    c.login(acc.address, PASSWORD)  # imaplib itself works again after it
    typ, data = c.select("INBOX")
    assert data == [b"1"]  # no implicit expunge (RFC 8437 §2, like UNSELECT)
    c.logout()


def test_unauthenticate_malformed(srv):
    acc = srv.new_user()
    r = srv.raw()
    _login(r, acc)
    assert r.cmd(b"u UNAUTHENTICATE now") == [b"u BAD Unexpected extra arguments\r\n"]
    assert r.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]  # still logged in
    assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    r.close()


def test_unauthenticate_resets_enable(srv):
    # RFC 8437 §2: the session is as if just connected: ENABLEd extensions are off again.
    acc = srv.new_user()
    r = srv.raw()
    _login(r, acc)
    assert r.cmd(b"e ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE\r\n"
    assert r.cmd(b"u UNAUTHENTICATE")[-1].startswith(b"u OK")
    _login(r, acc, b"l2")
    assert r.cmd(b"e2 ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE\r\n"  # not already enabled
    r.close()
