"""A real Postroom runtime for the ManageSieve tests, and a small raw client.

The server runs in its own thread (``threaded_runtime``); the client speaks RFC 5804
over a real socket and parses responses (literals included) without interpreting
them, so the tests see exactly what a client would. The fixture is in conftest.py.
"""

from __future__ import annotations

import base64
import itertools
import re
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from threaded_runtime import ThreadedRuntime

from postroom.auth import hash_password
from postroom.storage.models import Account

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Postroom peer, shared with the benches
from postroom_peer import DOMAIN, write_config

PASSWORD = "secret"
_names = itertools.count(1)
_LITERAL_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


def write_test_config(root: Path, managesieve: str = "", sieve: str = "", limits: str = "") -> Path:
    sections = (f"[limits]\nauth_failures_per_ip = 1000\n{limits}\n[managesieve]\n{managesieve}\n[sieve]\n{sieve}\n"
                '[listeners.managesieve]\naddress = "127.0.0.1:0"\ntls = "starttls"\n')
    return write_config(root, sections, hostname="mail.example.test")


class Harness(ThreadedRuntime):
    def new_user(self, password: str = PASSWORD) -> Account:
        address = f"sieveuser{next(_names)}@{DOMAIN}"
        return self.call(self.store.create_account(address, hash_password(password)))

    @property
    def port(self) -> int:
        return self.ports["managesieve"]

    def client(self, *, tls: bool = True) -> Client:
        c = Client(self.port)
        c.greeting = c.response()
        if tls:
            c.starttls()
        return c

    def login(self, acc: Account, password: str = PASSWORD) -> Client:
        c = self.client()
        r = c.authenticate_plain(acc.address, password)
        assert r.status == "OK", r
        return c


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Response:
    lines: list[bytes]  # response lines before the status line, literals expanded, without CRLF
    status: str  # OK, NO or BYE
    code: str | None  # the response code in parentheses, e.g. "QUOTA/MAXSIZE" or 'TAG "x"'
    text: str  # the human-readable string (quoted or literal), "" when absent

    def __repr__(self) -> str:
        return f"Response({self.status} ({self.code}) {self.text!r}, lines={self.lines!r})"


def parse_string(data: bytes) -> tuple[bytes, bytes]:
    """A quoted string or literal at the start of ``data``; returns (value, rest)."""
    if data.startswith(b'"'):
        out, i = bytearray(), 1
        while data[i:i + 1] != b'"':
            if data[i:i + 1] == b"\\":
                i += 1
            out += data[i:i + 1]
            i += 1
        return bytes(out), data[i + 1:]
    m = re.match(rb"\{(\d+)\}\r\n", data)
    assert m, data
    n = int(m.group(1))
    return data[m.end():m.end() + n], data[m.end() + n:]


class Client:
    def __init__(self, port: int) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rb")
        self.greeting: Response | None = None

    # -- wire ------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logical_line(self) -> bytes:
        """One line with any literals it announces read in, without the final CRLF."""
        out = b""
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            out += line
            m = _LITERAL_END.search(line)
            if m is None:
                return out[:-2] if out.endswith(b"\r\n") else out
            out += self.file.read(int(m.group(1)))

    def response(self) -> Response:
        lines = []
        while True:
            line = self.logical_line()
            word = line.split(b" ", 1)[0]
            if word in (b"OK", b"NO", b"BYE"):
                rest = line[len(word):].lstrip(b" ")
                code = None
                if rest.startswith(b"("):
                    depth_end = rest.index(b")")
                    code, rest = rest[1:depth_end].decode(), rest[depth_end + 1:].lstrip(b" ")
                text = parse_string(rest)[0].decode() if rest else ""
                return Response(lines, word.decode(), code, text)
            lines.append(line)

    def command(self, line: str | bytes) -> Response:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.response()

    # -- commands --------------------------------------------------------------------
    def starttls(self) -> Response:
        r = self.command("STARTTLS")
        assert r.status == "OK", r
        self.sock = client_tls().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        caps = self.response()  # RFC 5804 §2.2: the capabilities again
        assert caps.status == "OK", caps
        return caps

    def authenticate_plain(self, user: str, password: str) -> Response:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{blob}"')

    def putscript(self, name: str, script: bytes | str, *, sync: bool = False) -> Response:
        data = script.encode() if isinstance(script, str) else script
        marker = b"{%d}" % len(data) if sync else b"{%d+}" % len(data)
        return self.command(b'PUTSCRIPT "' + name.encode() + b'" ' + marker + b"\r\n" + data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def capabilities(r: Response) -> dict[str, str | None]:
    caps: dict[str, str | None] = {}
    for line in r.lines:
        name, rest = parse_string(line)
        caps[name.decode().upper()] = parse_string(rest.lstrip())[0].decode() if rest.strip() else None
    return caps
