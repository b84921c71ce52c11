"""STARTTLS (RFC 4642), NNTPS, and AUTHINFO USER/PASS and SASL (RFC 4643) with mail accounts."""

from __future__ import annotations

import base64

from nntp_harness import Harness


def test_authinfo_refused_without_tls(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("none") as c:
        assert not c.tls_active
        assert c.cmd(f"AUTHINFO USER {acc.address}")[0] == 483
        assert c.cmd("AUTHINFO PASS secret")[0] == 483
        assert c.cmd("AUTHINFO SASL PLAIN " + base64.b64encode(f"\0{acc.address}\0secret".encode()).decode())[0] == 483
        assert c.cmd("AUTHINFO SASL NOPE")[0] == 503  # an unknown mechanism is unknown either way


def test_starttls_then_user_pass(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("none") as c:
        assert c.starttls()[0] == 382
        assert c.tls_active
        caps = c.cmd_multi("CAPABILITIES")[2]
        assert b"STARTTLS" not in caps and b"AUTHINFO USER SASL" in caps
        assert c.cmd("STARTTLS")[0] == 502  # not twice
        assert c.authinfo(acc.address, "secret")[0] == 281
        caps = c.cmd_multi("CAPABILITIES")[2]
        assert not any(cap.startswith((b"AUTHINFO", b"SASL")) for cap in caps)
        assert c.cmd(f"AUTHINFO USER {acc.address}")[0] == 502  # already logged in
        assert c.cmd("GROUP no.such.group")[0] == 411


def test_starttls_refused_after_login(srv: Harness) -> None:
    """With plaintext allowed nowhere, a login implies TLS; on NNTPS STARTTLS is refused too."""
    acc = srv.new_user()
    with srv.login(acc, tls="implicit") as c:
        assert c.cmd("STARTTLS")[0] == 502


def test_wrong_password_and_sequence(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("implicit") as c:
        assert c.cmd("AUTHINFO PASS secret")[0] == 482  # PASS before USER
        assert c.authinfo(acc.address, "wrong")[0] == 481
        assert c.authinfo("nobody@nowhere.test", "secret")[0] == 481
        assert c.cmd("AUTHINFO PASS secret")[0] == 482  # a failed PASS needs a new USER
        assert c.cmd("AUTHINFO")[0] == 501
        assert c.cmd("AUTHINFO BOGUS x")[0] == 501
        assert c.cmd("AUTHINFO USER")[0] == 501
        assert c.authinfo(acc.address, "secret")[0] == 281


def test_password_with_spaces(srv: Harness) -> None:
    acc = srv.new_user(password="two words here")
    with srv.client("implicit") as c:
        assert c.authinfo(acc.address, "two words here")[0] == 281


def test_sasl_plain_initial_and_challenge(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("implicit") as c:
        assert c.authinfo_sasl_plain(acc.address, "secret")[0] == 281
    with srv.client("starttls") as c:
        assert c.authinfo_sasl_plain(acc.address, "secret", initial=False)[0] == 281
    with srv.client("implicit") as c:
        assert c.authinfo_sasl_plain(acc.address, "bad")[0] == 481
        assert c.authinfo_sasl_plain(acc.address, "secret")[0] == 281


def test_sasl_login_cancel_and_bad_base64(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("implicit") as c:
        code, challenge = c.cmd("AUTHINFO SASL LOGIN")
        assert code == 383 and base64.b64decode(challenge) == b"Username:"
        assert c.cmd("*")[0] == 481  # cancelled
        assert c.cmd("AUTHINFO SASL PLAIN !!!notbase64")[0] == 504
        code, _ = c.cmd("AUTHINFO SASL PLAIN")
        assert code == 383
        assert c.cmd("%%%")[0] == 504
        # LOGIN to the end
        assert c.cmd("AUTHINFO SASL LOGIN")[0] == 383
        code, challenge = c.cmd(base64.b64encode(acc.address.encode()).decode())
        assert code == 383 and base64.b64decode(challenge) == b"Password:"
        assert c.cmd(base64.b64encode(b"secret").decode())[0] == 281
        assert c.cmd("AUTHINFO SASL PLAIN =")[0] == 502


def test_proxy_authorization_refused(srv: Harness) -> None:
    acc = srv.new_user()
    other = srv.new_user()
    token = base64.b64encode(f"{other.address}\0{acc.address}\0secret".encode()).decode()
    with srv.client("implicit") as c:
        assert c.cmd(f"AUTHINFO SASL PLAIN {token}")[0] == 481


def test_too_many_failures_close(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.client("implicit") as c:
        codes = [c.authinfo(acc.address, f"wrong{i}")[0] for i in range(5)]
        assert codes == [481] * 5
        assert c.closed()


def test_starttls_drops_injected_commands(srv: Harness) -> None:
    """Commands sent in plaintext after STARTTLS, before the handshake, are never run."""
    from nntpclient import client_tls

    with srv.client("none") as c:
        c.send(b"STARTTLS\r\nQUIT\r\n")
        assert c.status()[0] == 382
        c.sock = client_tls().wrap_socket(c.sock, server_hostname="localhost")
        assert c.cmd("DATE")[0] == 111  # QUIT was dropped: the session is still open


def test_long_sasl_line_allowed_other_long_lines_not(srv: Harness) -> None:
    """RFC 4643 §2.4.2: AUTHINFO SASL lines may exceed 512 octets (up to 12288); others may not."""
    password = "p" * 600
    acc = srv.new_user(password=password)
    with srv.client("implicit") as c:
        assert c.cmd(f"AUTHINFO USER {'u' * 600}")[0] == 500
        assert c.cmd("AUTHINFO SASL PLAIN " + "A" * 13000)[0] == 500  # over 12288: too long even so
        line = "AUTHINFO SASL PLAIN " + base64.b64encode(f"\0{acc.address}\0{password}".encode()).decode()
        assert len(line) > 512
        assert c.cmd(line)[0] == 281
