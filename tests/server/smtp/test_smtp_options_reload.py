"""The session options of a listener are made once per config (smtp/server.py ``_options``):
a SIGHUP reload must still reach the next connection, and a listener's options must not
leak to another listener's sessions."""

from __future__ import annotations

import smtplib

from conftest import server_fixture

smtp_server = server_fixture('banner = "ESMTP Before"')


def _hello(port: int) -> tuple[str, dict[str, str]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        return c.ehlo_resp.decode() if c.ehlo_resp else "", dict(c.esmtp_features)


def _greeting(port: int) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), 10) as s:
        line = s.makefile("rb").readline().decode()
        s.sendall(b"QUIT\r\n")
        return line


def test_options_follow_a_reload(smtp_server) -> None:
    port = smtp_server.ports["smtp"]
    assert "ESMTP Before" in _greeting(port)
    assert "ESMTP Before" in _greeting(port)  # the second connection: the kept options
    _, features = _hello(port)
    assert features["size"] == str(200 * 1024)
    assert "auth" not in features  # plaintext AUTH is not offered before STARTTLS

    path = smtp_server.root / "postroom.toml"
    text = path.read_text()
    path.write_text(text.replace('banner = "ESMTP Before"', 'banner = "ESMTP After"')
                    .replace('message_size = "200k"', 'message_size = "300k"'))
    try:
        smtp_server.call(_reload(smtp_server, str(path)))
        assert "ESMTP After" in _greeting(port)
        _, features = _hello(port)
        assert features["size"] == str(300 * 1024)
    finally:
        path.write_text(text)
        smtp_server.call(_reload(smtp_server, str(path)))
    assert "ESMTP Before" in _greeting(port)


async def _reload(smtp_server, path: str) -> None:
    # The harness replaced ctx.outbound with its recording queue, so ctx.state held the only
    # reference to the real outbound service, which the reload clears: kept for the shutdown.
    service = smtp_server.ctx.state.get("outbound")
    smtp_server.srv.reload(path)
    if service is not None:
        smtp_server.ctx.state.setdefault("outbound", service)


def test_options_per_listener(smtp_server) -> None:
    """smtp and submission share a config but not their options: AUTH is required on
    submission only, and the implicit-TLS listener's sessions are the TLS ones."""
    import ssl

    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"], timeout=10) as c:
        c.ehlo("client.example")
        assert c.mail("joe@example.test")[0] == 530  # RFC 6409 §4.3: authentication required
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"], timeout=10) as c:
        c.ehlo("client.example")
        assert c.mail("someone@remote.example")[0] == 250
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.ports["submissions"], timeout=10, context=ctx) as c:
        c.ehlo("client.example")
        assert "auth" in c.esmtp_features  # offered: the session knows it is under TLS
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"], timeout=10) as c:
        c.ehlo("client.example")
        assert "auth" not in c.esmtp_features  # plaintext: not offered (the kept TLS options did not leak)
