"""USER/PASS, APOP, AUTH PLAIN/LOGIN, STLS and POP3S against the real server."""

from __future__ import annotations

import base64
import hashlib
import poplib
import socket
import ssl

import pytest

from pop3_harness import Harness, client_tls, message


def test_user_pass_after_stls(srv: Harness) -> None:
    acc = srv.new_user()
    srv.deliver(acc, message(1))
    c = srv.login(acc)
    assert c.stat()[0] == 1
    c.quit()


def test_plaintext_refused_before_stls(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.pop3(stls=False)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext authentication disallowed"):
        c.user(acc.address)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        c._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0{acc.address}\0secret".encode()).decode())
    c.quit()


def test_wrong_password(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.pop3()
    c.user(acc.address)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
        c.pass_("wrong")
    c.user(acc.address)
    assert c.pass_("secret").startswith(b"+OK")
    c.quit()


def test_pop3s(srv: Harness) -> None:
    acc = srv.new_user()
    srv.deliver(acc, message(1))
    c = srv.pop3s()
    assert "STLS" not in c.capa()
    c.user(acc.address)
    c.pass_("secret")
    assert c.stat()[0] == 1
    with pytest.raises(poplib.error_proto):
        c._shortcmd("STLS")
    c.quit()


def test_stls_discards_pipelined_plaintext(srv: Harness) -> None:
    """RFC 2595 §3.1 / the STARTTLS injection class: commands sent with STLS don't run after it."""
    with socket.create_connection(("127.0.0.1", srv.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"STLS\r\nCAPA\r\n")
        assert f.readline().startswith(b"+OK Begin TLS")
        t = client_tls().wrap_socket(s, server_hostname="localhost")
        t.sendall(b"NOOP\r\n")
        tf = t.makefile("rb")
        # The injected CAPA never ran: the first reply over TLS is for our command.
        assert tf.readline() == b"-ERR NOOP is only valid after login\r\n"
        t.close()


def test_apop(srv: Harness) -> None:
    acc = srv.new_user(apop="tanstaaf")
    srv.deliver(acc, message(1))
    c = srv.pop3(stls=False)  # APOP sends no password, so plaintext rules don't apply
    assert c.apop(acc.address, "tanstaaf").startswith(b"+OK Logged in, 1 messages")
    c.quit()
    c = srv.pop3(stls=False)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        c.apop(acc.address, "wrong")
    c.quit()


def test_apop_not_enabled_says_so(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.pop3(stls=False)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] APOP is not enabled for this user"):
        c.apop(acc.address, "secret")
    c.quit()


def test_apop_timestamps_are_unique(srv: Harness) -> None:
    seen = set()
    for _ in range(5):
        c = srv.pop3(stls=False)
        seen.add(c.timestamp.search(c.getwelcome()).group(1))  # type: ignore[union-attr]
        c.quit()
    assert len(seen) == 5


def test_auth_plain_initial_response(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.pop3()
    cred = base64.b64encode(f"\0{acc.address}\0secret".encode()).decode()
    assert c._shortcmd(f"AUTH PLAIN {cred}").startswith(b"+OK Logged in")
    c.quit()


def test_auth_plain_and_login_with_challenges(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.pop3()
    # poplib's stls() leaves a raw socket file we can talk through for continuations.
    c._putcmd("AUTH PLAIN")
    assert c._getline()[0] == b"+ "
    c._putcmd(base64.b64encode(f"\0{acc.address}\0secret".encode()).decode())
    assert c._getresp().startswith(b"+OK Logged in")
    c.quit()
    c = srv.pop3()
    c._putcmd("AUTH LOGIN")
    assert c._getline()[0] == b"+ " + base64.b64encode(b"Username:")
    c._putcmd(base64.b64encode(acc.address.encode()).decode())
    assert c._getline()[0] == b"+ " + base64.b64encode(b"Password:")
    c._putcmd(base64.b64encode(b"wrong").decode())
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c._getresp()
    c._putcmd("AUTH LOGIN")
    c._getline()
    c._putcmd("*")
    with pytest.raises(poplib.error_proto, match="cancelled"):
        c._getresp()
    c.quit()


def test_utf8_user(srv: Harness) -> None:
    c = srv.pop3()
    assert c.utf8() == b"+OK UTF8 enabled"
    c.quit()


def test_tls_is_really_tls(srv: Harness) -> None:
    c = srv.pop3()
    assert isinstance(c.sock, ssl.SSLSocket)
    c.quit()


def test_connection_events_are_logged_one_line_each(srv: Harness, postroom_log: list[str]) -> None:
    """connect, STLS, each login attempt (user and result), the disconnect with its reason."""
    from sessionlog import check_failed_then_ok_login

    acc = srv.new_user()
    c = srv.pop3()
    c.user(acc.address)
    with pytest.raises(poplib.error_proto):
        c.pass_("wrong password")
    c.user(acc.address)
    c.pass_("secret")
    c.quit()
    check_failed_then_ok_login(postroom_log, acc.address, "quit")
    assert "wrong password" not in "\n".join(postroom_log)
