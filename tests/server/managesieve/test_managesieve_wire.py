"""Malformed and hostile input on the wire: long lines, oversized literals, garbage,
pipelining, timeouts. Every case ends in a clear NO or BYE, never a hang or a traceback,
and the session stays in step when it goes on."""

from __future__ import annotations

import time

from managesieve_harness import Client, Harness, capabilities, client_tls

# Plaintext allowed here so the raw cases need no TLS; small limits so they are cheap to hit.
MANAGESIEVE_SETTINGS = "allow_plaintext_auth = true\nmax_bad_commands = 5\n"
SIEVE_SETTINGS = 'max_script_size = "1k"\nmax_scripts = 2\n'
LIMITS = 'login_timeout = "3s"\n'


def closed(c: Client, timeout: float = 10) -> bool:
    c.sock.settimeout(timeout)
    try:
        while c.sock.recv(65536):
            pass
    except (TimeoutError, ConnectionResetError):
        return False
    return True


def test_plaintext_allowed_by_setting(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client(tls=False)
    try:
        assert c.greeting is not None and capabilities(c.greeting)["SASL"] == "PLAIN LOGIN"
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
    finally:
        c.close()


def test_garbage_gets_no_and_too_much_gets_bye(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        for line in (b"\x00\x01\x02", b"FROB", b'NOOP "unterminated', b'NOOP "a" "b"'):
            r = c.command(line)
            assert r.status == "NO", (line, r)
        assert c.command("NOOP").status == "OK"  # good commands do not count
        r = c.command(b"\xff\xfe")
        assert r.status == "BYE", r  # the fifth invalid command: max_bad_commands = 5
        assert closed(c)
    finally:
        c.close()


def test_long_line_is_refused_and_the_session_goes_on(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        r = c.command(b'NOOP "' + b"x" * 10000 + b'"')
        assert r.status == "NO" and "too long" in r.text.lower(), r
        assert c.command("NOOP").status == "OK"
    finally:
        c.close()


def test_oversized_script_literal(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client(tls=False)
    try:
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
        # A little over max_script_size: read, dropped, refused with QUOTA/MAXSIZE.
        r = c.putscript("big", b"#" * 3000 + b"\r\nkeep;\r\n")
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSIZE"), r
        r = c.command('NOOP "still-here"')
        assert (r.status, r.code) == ("OK", 'TAG "still-here"'), r
        # A name sent as a literal is held to the name rules (RFC 5804 §1.6).
        r = c.command(b"GETSCRIPT {4000+}\r\n" + b"n" * 4000)
        assert r.status == "NO" and "longer than" in r.text, r
        # Far over any limit: not read at all, the session ends.
        c.send(b'PUTSCRIPT "huge" {50000000+}\r\n')
        assert c.response().status == "BYE"
        assert closed(c)
        assert srv.call(srv.store.list_sieve_scripts(acc.id)) == []
    finally:
        c.close()


def test_literals_before_login_are_small(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        c.send(b'AUTHENTICATE "PLAIN" {100000+}\r\n')
        assert c.response().status == "BYE"
        assert closed(c)
    finally:
        c.close()


def test_pipelined_commands_and_bare_lf(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.client(tls=False)
    try:
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
        c.send(b'PUTSCRIPT "p" {5+}\r\nkeep;\r\nSETACTIVE "p"\nLISTSCRIPTS\r\nNOOP "end"\r\n')
        assert c.response().status == "OK"
        assert c.response().status == "OK"
        assert c.response().lines == [b'"p" ACTIVE']
        assert c.response().code == 'TAG "end"'
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) == ("p", "keep;")
    finally:
        c.close()


def test_quota_counts_concurrent_sessions(srv: Harness) -> None:
    acc = srv.new_user()
    clients = [srv.client(tls=False) for _ in range(4)]
    try:
        for c in clients:
            assert c.authenticate_plain(acc.address, "secret").status == "OK"
        for i, c in enumerate(clients):
            c.send(b'PUTSCRIPT "s%d" {5+}\r\nkeep;\r\n' % i)
        codes = sorted(str(c.response().code) for c in clients)
        assert codes == ["None", "None", "QUOTA/MAXSCRIPTS", "QUOTA/MAXSCRIPTS"]  # max_scripts = 2
    finally:
        for c in clients:
            c.close()


def test_login_timeout(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        start = time.monotonic()
        # Keep busy without logging in: the deadline holds however active the client is.
        while time.monotonic() - start < 10:
            try:
                r = c.command("NOOP")
            except ConnectionError:
                break
            if r.status == "BYE":
                break
            time.sleep(0.3)
        assert 2 < time.monotonic() - start < 9
    finally:
        c.close()


def test_plaintext_injected_before_starttls_is_dropped(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        # The classic STARTTLS injection: a command sent in the same packet, before the
        # handshake, must not run as if it had come over TLS.
        c.send(b'STARTTLS\r\nNOOP "injected"\r\n')
        assert c.response().status == "OK"
        c.sock = client_tls().wrap_socket(c.sock)
        c.file = c.sock.makefile("rb")
        assert c.response().status == "OK"  # the capabilities again
        r = c.command('NOOP "after"')
        assert r.code == 'TAG "after"', r
    finally:
        c.close()
