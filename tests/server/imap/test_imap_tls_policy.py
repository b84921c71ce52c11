"""Default policy: LOGINDISABLED and no AUTH= before TLS (RFC 3501 §6.2.3, §11.1)."""

from imap_harness import PASSWORD, tls_client_context

IMAP_SETTINGS = ""  # defaults: allow_plaintext_auth = false


def test_logindisabled_before_starttls(srv):
    acc = srv.new_user()
    c = srv.imaplib()
    assert "LOGINDISABLED" in c.capabilities and "STARTTLS" in c.capabilities
    assert not any(cap.startswith("AUTH=") for cap in c.capabilities)
    typ, data = c._simple_command("LOGIN", acc.address, PASSWORD)
    assert typ == "NO" and b"PRIVACYREQUIRED" in data[0]
    c.starttls(tls_client_context())
    assert "LOGINDISABLED" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
    assert c.login(acc.address, PASSWORD)[0] == "OK"
    c.logout()


def test_starttls_discards_pipelined_plaintext(srv):
    import socket
    import ssl

    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.recv(4096)
    s.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    buf = b""
    while b"a OK" not in buf:
        buf += s.recv(4096)
    assert b"* CAPABILITY" not in buf
    t = tls_client_context().wrap_socket(s, server_hostname="localhost")
    t.sendall(b"c NOOP\r\n")
    data = t.recv(4096)
    assert data.startswith(b"c OK"), data  # b's injected command was never answered
    t.close()
    _ = ssl
