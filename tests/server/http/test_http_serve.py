"""``postroom init`` + ``postroom serve`` as a real process: init writes the HTTP and HTTPS
listeners, a SIGHUP after a listener change changes the autoconfig document, and SIGTERM
closes idle keep-alive connections and exits cleanly."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import ssl
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from cli.serving import Serving, make_server_dir

pytestmark = pytest.mark.slow


def autoconfig(port: int, cert: Path) -> list[tuple[str, int, str]]:
    ctx = ssl.create_default_context(cafile=str(cert))
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        c.request("GET", "/mail/config-v1.1.xml?emailaddress=joe@example.test",
                  headers={"Host": "autoconfig.example.test"})
        r = c.getresponse()
        assert r.status == 200
        root = ET.fromstring(r.read())
    finally:
        c.close()
    return [(el.get("type") or "", int(el.findtext("port") or 0), el.findtext("socketType") or "")
            for el in root.iter() if el.tag in ("incomingServer", "outgoingServer")]


@pytest.mark.sqlite_only("postroom serve runs in a subprocess, on SQLite")
def test_init_sighup_sigterm(tmp_path: Path) -> None:
    cfgp = make_server_dir(tmp_path)
    text = cfgp.read_text()
    assert "[listeners.http]" in text and "[listeners.https]" in text and 'tls = "implicit"' in text
    srv = Serving(cfgp)
    try:
        ports = srv.wait_listening()
        cert = tmp_path / "tls" / "cert.pem"
        before = autoconfig(ports["https"], cert)
        assert ("imap", ports["imaps"], "SSL") in before and ("smtp", ports["submissions"], "SSL") in before
        assert ("pop3", ports["pop3s"], "SSL") in before

        # The admin drops POP3S and moves IMAPS to a fixed port: after SIGHUP the document says so
        # (the listener itself moves at the next restart, as the reload log line says).
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            new_port = s.getsockname()[1]
        text = cfgp.read_text()
        text = re.sub(r'\[listeners\.pop3s\]\naddress = "[^"]*"\ntls = "implicit"\n', "", text)
        text = re.sub(r'(\[listeners\.imaps\]\naddress = )"[^"]*"', rf'\1"127.0.0.1:{new_port}"', text)
        cfgp.write_text(text)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "configuration reloaded" not in srv.log():
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.05)
        after = autoconfig(ports["https"], cert)
        assert ("imap", new_port, "SSL") in after and ("imap", ports["imaps"], "SSL") not in after
        assert not [t for t in after if t[0] == "pop3" and t[2] == "SSL"]

        # SIGTERM with an idle keep-alive connection open: closed at once, clean exit.
        idle = socket.create_connection(("127.0.0.1", ports["http"]), timeout=10)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 10
        assert idle.recv(4096) == b""
        idle.close()
        log = srv.log()
        assert "Traceback" not in log, log
        assert re.search(r"https\[\w+\] 127\.0\.0\.1 GET /mail/config-v1\.1\.xml 200 ", log), log
    finally:
        srv.stop()


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": "localhost"})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


@pytest.mark.sqlite_only("postroom serve runs in a subprocess, on SQLite")
def test_readyz_503_while_draining(tmp_path: Path) -> None:
    """SIGTERM while a mail session is in the middle of a command: until it has finished, the HTTP
    listener still answers, /readyz with 503 (a load balancer stops sending clients), /healthz with
    200, each with ``Connection: close``; then the session ends and the process exits cleanly."""
    srv = Serving(make_server_dir(tmp_path))
    try:
        ports = srv.wait_listening()
        status, _, body = _get(ports["http"], "/readyz")
        assert status == 200 and body.startswith(b"ready\n"), body
        # A POP3 session half-way through a command line: not idle, so shutdown waits for it.
        pop = socket.create_connection(("127.0.0.1", ports["pop3"]), timeout=10)
        pop_file = pop.makefile("rb")
        assert pop_file.readline().startswith(b"+OK")
        pop.sendall(b"NOOP")
        time.sleep(0.3)  # the server has read the partial line
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while "waiting up to" not in srv.log():
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.05)
        assert srv.proc.poll() is None
        status, headers, body = _get(ports["http"], "/readyz")
        assert status == 503, body
        assert body.startswith(b"not ready\n") and b"shutdown: stopping\n" in body, body
        assert headers["connection"].lower() == "close"
        status, headers, body = _get(ports["http"], "/healthz")
        assert (status, body) == (200, b"ok\n") and headers["connection"].lower() == "close"
        # Mail listeners no longer accept.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", ports["pop3"]), timeout=2).close()
        assert srv.proc.poll() is None  # still draining: the POP3 command has not ended
        pop.sendall(b"\r\n")  # the command completes; the session says goodbye and closes
        assert pop_file.readline()  # the NOOP's reply
        assert b"shutting down" in pop_file.readline()
        assert srv.proc.wait(timeout=20) == 0
        with pytest.raises(OSError):  # and now the HTTP listener is closed too
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=2).close()
        pop.close()
        assert "Traceback" not in srv.log(), srv.log()
    finally:
        srv.stop()
