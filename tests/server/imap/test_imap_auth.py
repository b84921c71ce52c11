"""Not-authenticated state: greeting, CAPABILITY, LOGIN, AUTHENTICATE, LOGOUT, state gate."""

import base64
import imaplib

import pytest
from imapclient import IMAPClient

from imap_harness import PASSWORD, tls_client_context


def test_greeting_and_capability(srv):
    r = srv.raw()
    assert r.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    lines = r.cmd(b"a CAPABILITY")
    caps = lines[0].split()
    assert lines[0].startswith(b"* CAPABILITY ") and b"IMAP4rev1" in caps
    for c in (b"IDLE", b"UIDPLUS", b"MOVE", b"STARTTLS", b"AUTH=PLAIN", b"AUTH=LOGIN", b"LITERAL+"):
        assert c in caps
    assert lines[-1] == b"a OK Capability completed\r\n"
    r.close()


def test_login_imaplib(srv):
    acc = srv.new_user()
    c = srv.imaplib()
    typ, data = c.login(acc.address, PASSWORD)
    assert typ == "OK"
    assert b"AUTH=PLAIN" not in c.capability()[1][0]  # no AUTH= once logged in
    assert c.logout()[0] == "BYE"


def test_login_failure(srv):
    acc = srv.new_user()
    c = srv.imaplib()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(acc.address, "wrong")
    with pytest.raises(imaplib.IMAP4.error):
        c.login("nobody@example.test", "x")
    c.logout()


def test_login_with_literals(srv):
    acc = srv.new_user()
    r = srv.raw()
    r.send(b"a LOGIN {%d}\r\n" % len(acc.address))
    assert r.line().startswith(b"+ ")
    r.send(acc.address.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    assert r.until_tagged(b"a")[-1].startswith(b"a OK [CAPABILITY ")
    r.close()


def test_authenticate_plain_and_login(srv):
    acc = srv.new_user()
    c = srv.imaplib()
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{acc.address}\0{PASSWORD}".encode())
    assert typ == "OK"
    c.logout()
    answers = iter([acc.address.encode(), PASSWORD.encode()])
    c = srv.imaplib()
    assert c.authenticate("LOGIN", lambda _: next(answers))[0] == "OK"
    c.logout()


def test_authenticate_sasl_ir_and_cancel(srv):
    acc = srv.new_user()
    r = srv.raw()
    ir = base64.b64encode(f"\0{acc.address}\0wrong".encode())
    assert b"AUTHENTICATIONFAILED" in r.cmd(b"a AUTHENTICATE PLAIN " + ir)[-1]
    r.send(b"b AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(b"*\r\n")
    assert r.until_tagged(b"b")[-1].startswith(b"b BAD")
    assert r.cmd(b"c AUTHENTICATE CRAM-MD5")[-1].startswith(b"c NO")
    ir = base64.b64encode(f"\0{acc.address}\0{PASSWORD}".encode())
    assert r.cmd(b"d AUTHENTICATE PLAIN " + ir)[-1].startswith(b"d OK")
    r.close()


def test_imapclient_login(srv):
    acc = srv.new_user()
    with IMAPClient("127.0.0.1", srv.port, ssl=False, timeout=30) as c:
        assert b"IMAP4REV1" in c.capabilities()
        c.login(acc.address, PASSWORD)
        assert c.noop()[0] == b"NOOP completed"
        c.logout()


def test_states_gate(srv):
    r = srv.raw()
    assert r.cmd(b"a SELECT INBOX")[-1] == b"a BAD Log in first\r\n"
    assert r.cmd(b"b FETCH 1 FLAGS")[-1].startswith(b"b BAD")
    assert r.cmd(b"c NOOP")[-1] == b"c OK NOOP completed\r\n"
    r.close()
    acc = srv.new_user()
    r = srv.raw()
    assert r.cmd(b'a LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"a OK")
    assert r.cmd(b"b FETCH 1 FLAGS")[-1] == b"b BAD No mailbox selected\r\n"
    assert r.cmd(b"c LOGIN a b")[-1].startswith(b"c BAD")
    assert r.cmd(b"d CLOSE")[-1].startswith(b"d BAD")
    r.close()


def test_starttls_then_login(srv):
    acc = srv.new_user()
    c = srv.imaplib()
    c.starttls(tls_client_context())
    assert "STARTTLS" not in c.capabilities
    assert c.login(acc.address, PASSWORD)[0] == "OK"
    c.logout()


def test_imaps_implicit_tls(srv):
    acc = srv.new_user()
    c = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_client_context(), timeout=30)
    assert "STARTTLS" not in c.capabilities
    assert c.login(acc.address, PASSWORD)[0] == "OK"
    c.logout()


def test_logout_sends_bye_then_ok(srv):
    r = srv.raw()
    lines = r.cmd(b"z LOGOUT")
    assert lines[0].startswith(b"* BYE") and lines[1] == b"z OK Logout completed\r\n"
    r.close()


def test_connection_events_are_logged_one_line_each(srv, postroom_log):
    """connect, STARTTLS, each login attempt (user and result: what fail2ban reads), and
    the disconnect with its reason, byte counts and user, tied together by the session tag."""
    from sessionlog import check_failed_then_ok_login

    acc = srv.new_user()
    c = srv.imaplib()
    c.starttls(tls_client_context())
    with pytest.raises(imaplib.IMAP4.error):
        c.login(acc.address, "wrong password")
    c.login(acc.address, PASSWORD)
    c.logout()
    check_failed_then_ok_login(postroom_log, acc.address, "logout")
    assert "wrong password" not in "\n".join(postroom_log)
