"""A real Postroom runtime for the HTTP tests (the fixture is in conftest.py).

The runtime runs in its own thread (``ThreadedRuntime``), so tests use the stdlib's
blocking ``http.client`` over real sockets, plain and TLS, and raw sockets for what no
well-behaved client sends. The config has every kind of mail listener the documents
must (and must not) offer: STARTTLS and implicit-TLS IMAP and submission, implicit-TLS
POP3, and two that are never offered: a plaintext POP3 port and the port-25 SMTP relay.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
from pathlib import Path

from threaded_runtime import ThreadedRuntime

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # shared with the benches
from postroom_peer import DOMAIN, write_config  # noqa: E402

HOSTNAME = "mail.example.test"
LISTENERS = {
    # name: tls mode (protocol from the standard name)
    "smtp": "starttls",
    "submission": "starttls",
    "submissions": "implicit",
    "imap": "starttls",
    "imaps": "implicit",
    "pop3": "none",
    "pop3s": "implicit",
    "http": "none",
    "https": "implicit",
}
HTTP_SETTINGS = 'keepalive_timeout = "3s"\nrequest_timeout = "1s"\nmax_body = "4k"\n'


def listeners_toml(listeners: dict[str, str]) -> str:
    return "".join(f'[listeners.{name}]\naddress = "127.0.0.1:0"\ntls = "{tls}"\n'
                   for name, tls in listeners.items())


def write_http_config(d: Path, http: str = HTTP_SETTINGS, listeners: dict[str, str] = LISTENERS,
                      limits: str = "") -> Path:
    sections = (f"[mailauth]\ncheck_listeners = []\n[pop3]\nallow_plaintext_auth = true\n[http]\n{http}\n"
                + (f"[limits]\n{limits}\n" if limits else "") + listeners_toml(listeners))
    return write_config(d, sections, hostname=HOSTNAME)


class Harness(ThreadedRuntime):
    def __init__(self, cfg_path: Path) -> None:
        super().__init__(cfg_path)
        self.cert = cfg_path.parent / "cert.pem"

    def tls(self) -> ssl.SSLContext:
        """A client context that verifies the server against its self-signed certificate."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx

    def client(self, tls: bool = False, timeout: float = 10) -> http.client.HTTPConnection:
        if tls:
            return http.client.HTTPSConnection("127.0.0.1", self.ports["https"], timeout=timeout, context=self.tls())
        return http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=timeout)

    def get(self, path: str, host: str, tls: bool = False, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        c = self.client(tls)
        try:
            c.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def raw(self, tls: bool = False) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.ports["https" if tls else "http"]), timeout=10)
        if tls:
            return self.tls().wrap_socket(s, server_hostname=HOSTNAME)
        return s


def read_all(s: socket.socket, limit: float = 10) -> bytes:
    """Everything until the server closes (or ``limit`` seconds pass)."""
    s.settimeout(limit)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


__all__ = ["DOMAIN", "HOSTNAME", "LISTENERS", "Harness", "read_all", "write_http_config"]
