"""STARTTLS (RFC 3207), implicit TLS (RFC 8314) and AUTH (RFC 4954) on each listener."""

import base64
import smtplib

import pytest

from conftest import PASSWORD, Raw, client_tls, make_server, server_fixture


def test_starttls_on_mx_then_auth_offered(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        assert c.has_extn("starttls") and not c.has_extn("auth")
        assert c.starttls(context=client_tls())[0] == 220
        c.ehlo()
        assert not c.has_extn("starttls")
        assert c.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert c.sock.version().startswith("TLSv1.")


def test_submission_requires_tls_then_auth(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.ehlo()
        assert not c.has_extn("auth")
        assert c.mail("joe@example.test") == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert c.docmd("AUTH", "PLAIN AGpvZQB4")[0] == 538
        c.starttls(context=client_tls())
        c.ehlo()
        assert c.mail("joe@example.test") == (530, b"5.7.0 Authentication required")
        c.rset()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_on_submission(smtp_server, mech):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.ehlo()
        c.user, c.password = "joe@example.test", PASSWORD
        code, text = c.auth(mech, getattr(c, f"auth_{mech.lower()}"))
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        assert c.docmd("AUTH", "PLAIN")[0] == 503  # once per session


def test_implicit_tls_submissions(smtp_server):
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.ports["submissions"], context=client_tls()) as c:
        c.ehlo()
        assert not c.has_extn("starttls") and c.has_extn("auth")
        c.login("ann@example.test", PASSWORD)
        assert c.sendmail("ann@example.test", ["bob@example.test"], b"Subject: 465\r\n\r\nx\r\n") == {}
    assert b"Subject: 465" in smtp_server.inbox("bob")[-1]


def test_implicit_tls_refuses_plaintext(smtp_server):
    raw = Raw(smtp_server.ports["submissions"])
    raw.send(b"EHLO x\r\n")
    assert raw.closed()


def test_wrong_password_and_throttle_reply(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("joe@example.test", "wrong")
        assert e.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("nobody@example.test", "wrong")
        assert c.mail("joe@example.test")[0] == 530


def test_auth_cancel_and_garbage(smtp_server):
    raw = Raw(smtp_server.ports["submissions"], tls=True)
    raw.reply()
    raw.cmd("EHLO x")
    assert raw.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert raw.cmd("*") == "501 5.0.0 Authentication cancelled"
    assert raw.cmd("AUTH PLAIN") == "334"
    assert raw.cmd("%%%") == "501 5.5.2 Cannot decode response"
    assert raw.cmd("AUTH FOO") == "504 5.5.4 Unrecognized authentication type"
    plain = base64.b64encode(b"someone-else\0joe@example.test\0" + PASSWORD.encode()).decode()
    assert raw.cmd(f"AUTH PLAIN {plain}").startswith("535 5.7.8")  # no proxy authorization
    plain = base64.b64encode(b"\0joe@example.test\0" + PASSWORD.encode()).decode()
    assert raw.cmd(f"AUTH PLAIN {plain}") == "235 2.7.0 Authentication successful"


def test_sender_must_belong_to_login(smtp_server):
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.ports["submissions"], context=client_tls()) as c:
        c.login("joe@example.test", PASSWORD)
        assert c.mail("ann@example.test") == (553, b"5.7.1 Sender address not owned by the authenticated user")
        assert c.mail("team@example.test")[0] == 250  # an alias that includes joe
        c.rset()
        assert c.mail("joe+news@example.test")[0] == 250
        c.rset()
        assert c.mail("<>")[0] == 250


def test_starttls_twice_and_with_argument(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    raw.cmd("EHLO x")
    assert raw.cmd("STARTTLS now") == "501 5.5.4 Syntax: STARTTLS"
    assert raw.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    raw.starttls()
    assert raw.cmd("MAIL FROM:<a@remote.example>") == "503 5.5.1 Send HELO/EHLO first"  # state reset
    raw.cmd("EHLO x")
    assert raw.cmd("STARTTLS") == "503 5.5.1 TLS already active"


plaintext_auth_server = server_fixture("allow_plaintext_auth = true\nrequire_sender_match = false")


def test_plaintext_auth_when_configured(plaintext_auth_server):
    with smtplib.SMTP("127.0.0.1", plaintext_auth_server.ports["submission"]) as c:
        c.ehlo()
        assert c.has_extn("auth")
        c.login("joe@example.test", PASSWORD)
        assert c.mail("ann@example.test")[0] == 250  # sender match switched off


def test_tls_handshake_failure_is_harmless(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    raw.cmd("EHLO x")
    raw.cmd("STARTTLS")
    raw.send(b"this is not a TLS client hello\r\n" * 10)
    assert raw.closed()
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:  # the server is fine
        assert c.noop()[0] == 250


@pytest.fixture(scope="module")
def throttle_server(tmp_path_factory):
    srv = make_server(tmp_path_factory)
    srv.ctx.auth.base_delay = 0.0001  # the delays double per failure; keep the test quick
    yield srv
    srv.stop()


def test_auth_failures_are_throttled(throttle_server):
    raw = Raw(throttle_server.ports["submissions"], tls=True)
    raw.reply()
    raw.cmd("EHLO x")
    bad = base64.b64encode(b"\0joe@example.test\0wrong").decode()
    replies = [raw.cmd(f"AUTH PLAIN {bad}")[:3] for _ in range(11)]
    assert replies[:10] == ["535"] * 10 and replies[10] == "454"
    good = base64.b64encode(b"\0joe@example.test\0" + PASSWORD.encode()).decode()
    assert raw.cmd(f"AUTH PLAIN {good}").startswith("454 4.7.0")  # even the right password, for a while
