"""AUTHENTICATE (RFC 5804 §2.1), STARTTLS (§2.2) and the authentication policy:
plaintext mechanisms only over TLS, failures counted, commands gated by state."""

from __future__ import annotations

import base64

from managesieve_harness import Harness

MANAGESIEVE_SETTINGS = "max_auth_failures = 3\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_plaintext_auth_needs_tls(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client(tls=False)
    try:
        r = c.authenticate_plain(acc.address, "secret")
        assert (r.status, r.code) == ("NO", "ENCRYPT-NEEDED"), r
        r = c.command('AUTHENTICATE "LOGIN"')
        assert (r.status, r.code) == ("NO", "ENCRYPT-NEEDED"), r
        r = c.command("LISTSCRIPTS")
        assert r.status == "NO"  # still not logged in
        c.starttls()
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
    finally:
        c.close()


def test_plain_forms(srv: Harness) -> None:
    acc = srv.new_user()
    blob = b64(f"\0{acc.address}\0secret".encode())
    # Initial response as a literal.
    c = srv.client()
    try:
        r = c.command(b'AUTHENTICATE "PLAIN" {%d+}\r\n' % len(blob) + blob.encode())
        assert r.status == "OK", r
    finally:
        c.close()
    # No initial response: an empty challenge, then the response as a quoted string.
    c = srv.client()
    try:
        c.send(b'AUTHENTICATE "PLAIN"\r\n')
        assert c.logical_line() == b'""'
        assert c.command(f'"{blob}"').status == "OK"
    finally:
        c.close()
    # ... or as a literal, with authzid = authcid.
    c = srv.client()
    try:
        c.send(b'AUTHENTICATE "plain"\r\n')
        assert c.logical_line() == b'""'
        blob2 = b64(f"{acc.address}\0{acc.address}\0secret".encode())
        assert c.command(b"{%d+}\r\n" % len(blob2) + blob2.encode()).status == "OK"
    finally:
        c.close()


def test_login_mechanism_and_cancel(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client()
    try:
        c.send(b'AUTHENTICATE "LOGIN"\r\n')
        assert c.logical_line() == b'"' + b64(b"Username:").encode() + b'"'
        c.send(f'"{b64(acc.address.encode())}"\r\n'.encode())
        assert c.logical_line() == b'"' + b64(b"Password:").encode() + b'"'
        assert c.command(f'"{b64(b"secret")}"').status == "OK"
    finally:
        c.close()
    c = srv.client()
    try:
        c.send(b'AUTHENTICATE "LOGIN"\r\n')
        c.logical_line()
        r = c.command('"*"')
        assert r.status == "NO" and "cancel" in r.text.lower(), r  # RFC 5804 §2.1
        assert c.authenticate_plain(acc.address, "secret").status == "OK"  # not counted as a failure
    finally:
        c.close()


def test_refusals(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client()
    try:
        r = c.command('AUTHENTICATE "ANONYMOUS"')
        assert (r.status, r.code) == ("NO", "AUTH-TOO-WEAK"), r
        r = c.command('AUTHENTICATE "X-UNKNOWN"')
        assert r.status == "NO" and r.code is None, r
        r = c.command('AUTHENTICATE "PLAIN" "not base64!"')
        assert r.status == "NO" and "base64" in r.text, r
        r = c.command("AUTHENTICATE")
        assert r.status == "NO", r
        assert c.command("STARTTLS").status == "NO"  # TLS is already on
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
        r = c.authenticate_plain(acc.address, "secret")
        assert r.status == "NO" and "before login" in r.text, r  # RFC 5804 §2.1: once only
        assert c.command("STARTTLS").status == "NO"
    finally:
        c.close()


def test_wrong_passwords_end_the_session(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client()
    try:
        assert c.authenticate_plain(acc.address, "wrong").status == "NO"
        # Acting as someone else is refused and counted.
        blob = b64(f"other@example.test\0{acc.address}\0secret".encode())
        assert c.command(f'AUTHENTICATE "PLAIN" "{blob}"').status == "NO"
        r = c.authenticate_plain("nobody@example.test", "secret")
        assert r.status == "BYE", r  # max_auth_failures = 3
        assert c.sock.recv(10) == b""
    finally:
        c.close()


def test_commands_before_login(srv: Harness) -> None:
    c = srv.client()
    try:
        for cmd in ("LISTSCRIPTS", 'GETSCRIPT "a"', 'PUTSCRIPT "a" "keep;"', 'SETACTIVE "a"', 'DELETESCRIPT "a"',
                    'RENAMESCRIPT "a" "b"', 'CHECKSCRIPT "keep;"', 'HAVESPACE "a" 1', "UNAUTHENTICATE"):
            r = c.command(cmd)
            assert r.status == "NO" and "after login" in r.text, (cmd, r)
        assert c.command("NOOP").status == "OK" and c.command("CAPABILITY").status == "OK"
    finally:
        c.close()


def test_login_log_line_is_the_common_one(srv: Harness, caplog) -> None:
    """Regression: ManageSieve wrote ``login ADDRESS`` where every other protocol writes
    ``auth ok user='ADDRESS'`` (docs/architecture.md "Logging"; what log tools match)."""
    acc = srv.new_user()
    import logging

    # postroom.log.setup (run by any earlier test that started a CLI) stops propagation at
    # "postroom": listen on the protocol's logger itself.
    logger = logging.getLogger("postroom.managesieve")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="postroom.managesieve"):
            c = srv.login(acc)
            c.close()
    finally:
        logger.removeHandler(caplog.handler)
    assert any(f"auth ok user={acc.address!r}" in r.getMessage() for r in caplog.records), caplog.text
