"""Basic commands over a real socket: greeting, HELO/EHLO, NOOP, RSET, QUIT, HELP, VRFY,
EXPN, sequence errors, limits on errors and line length (RFC 5321 §4.1, §4.2)."""

import smtplib

from conftest import DOMAIN, Raw


def test_greeting_ehlo_and_extensions(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    assert raw.reply() == f"220 mx.{DOMAIN} ESMTP Postroom"
    ehlo = raw.cmd("EHLO client.example").split("\n")
    assert ehlo[0] == f"250-mx.{DOMAIN} Hello client.example [127.0.0.1]"
    assert ehlo[1:] == ["250-PIPELINING", "250-SIZE 204800", "250-8BITMIME", "250-ENHANCEDSTATUSCODES",
                        "250-STARTTLS", "250-DSN", "250-SMTPUTF8", "250-CHUNKING", "250-ETRN", "250 HELP"]
    assert raw.cmd("HELO client.example") == f"250 mx.{DOMAIN} Hello client.example [127.0.0.1]"
    assert raw.cmd("QUIT") == f"221 2.0.0 mx.{DOMAIN} closing connection"
    assert raw.closed()


def test_smtplib_commands(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        assert c.ehlo()[0] == 250
        assert c.has_extn("pipelining") and c.has_extn("chunking") and not c.has_extn("auth")
        assert c.noop() == (250, b"2.0.0 OK")
        assert c.rset() == (250, b"2.0.0 OK")
        code, text = c.docmd("HELP")
        assert code == 214 and b"EHLO" in text
        assert c.verify("joe@example.test")[0] == 252  # off by default (RFC 5321 §3.5.3)
        assert c.expn("team@example.test")[0] == 502
        assert c.docmd("NOOP", "ignored argument")[0] == 250


def test_out_of_order_commands(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    assert raw.cmd("MAIL FROM:<a@remote.example>") == "503 5.5.1 Send HELO/EHLO first"
    assert raw.cmd("EHLO x").startswith("250-")
    assert raw.cmd("RCPT TO:<joe@example.test>") == "503 5.5.1 Bad sequence of commands"
    assert raw.cmd("DATA") == "503 5.5.1 Bad sequence of commands"
    assert raw.cmd("MAIL FROM:<a@remote.example>") == "250 2.1.0 Sender OK"
    assert raw.cmd("MAIL FROM:<a@remote.example>") == "503 5.5.1 Bad sequence of commands"
    assert raw.cmd("DATA") == "554 5.5.1 No valid recipients"
    assert raw.cmd("RSET") == "250 2.0.0 OK"
    assert raw.cmd("RCPT TO:<joe@example.test>") == "503 5.5.1 Bad sequence of commands"
    assert raw.cmd("XYZZY") == "500 5.5.2 Syntax error, command unrecognized"
    assert raw.cmd("QUIT").startswith("221 ")


def test_too_many_errors_disconnects(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    for _ in range(19):
        assert raw.cmd("BOGUS").startswith("500 ")
    assert raw.cmd("BOGUS") == "421 4.7.0 Too many errors, closing connection"
    assert raw.closed()


def test_long_line_is_refused_and_session_continues(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    assert raw.cmd(b"NOOP " + b"x" * 20000 + b"\r\n") == "500 5.5.2 Line too long"
    assert raw.cmd("NOOP") == "250 2.0.0 OK"


def test_http_request_is_dropped(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    assert raw.cmd("GET / HTTP/1.0").startswith("421 ")
    assert raw.closed()
