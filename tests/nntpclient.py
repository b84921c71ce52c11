"""A small blocking NNTP client for the test suite (Python 3.13 removed ``nntplib``).

Plain sockets and ``ssl``, nothing else: what the tests need to drive a server line by
line, including what a polite client would never send (overlong lines, pipelined
batches, bad dot-stuffing)::

    c = NNTPClient.connect("127.0.0.1", port)          # reads the greeting: c.greeting
    c.starttls()                                        # 382, then the handshake
    c.authinfo("user@example.test", "secret")           # (281, "...")
    code, text = c.cmd("GROUP misc.test")               # one status line
    code, text, lines = c.cmd_multi("OVER 1-")          # status + the un-stuffed block
    code, text = c.post(raw)                            # POST, 340, the article, 240/441
    c.quit()

``cmd_multi`` reads the block only for the codes that have one (RFC 3977 §3.2: 100, 101,
215, 220-222, 224, 225, 230, 231, 282; 211 only after LISTGROUP), so an error status does
not make it hang.
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterable
from typing import Self

#: RFC 3977 §3.2 (and RFC 4643 AUTHINFO): the responses followed by a multi-line block.
MULTILINE_CODES = frozenset({100, 101, 215, 220, 221, 222, 224, 225, 230, 231, 282})


def _is_listgroup(line: str | bytes) -> bool:
    """LISTGROUP's 211 has a block, GROUP's 211 has none (RFC 3977 §6.1.1, §6.1.2)."""
    head = line[:10].upper() if isinstance(line, str) else line[:10].decode("latin-1").upper()
    return head.startswith("LISTGROUP")


class NNTPError(Exception):
    """The server closed the connection or sent something that is not a status line."""


def client_tls() -> ssl.SSLContext:
    """The test server's certificate is self-signed: no verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class NNTPClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self._buf = b""
        self.greeting: tuple[int, str] = (0, "")

    # -- connecting ---------------------------------------------------------------
    @classmethod
    def connect(cls, host: str, port: int, *, tls: bool = False, timeout: float = 30) -> NNTPClient:
        """Connect (``tls``: implicit TLS, NNTPS) and read the greeting (200/201/400/502)."""
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            sock = client_tls().wrap_socket(sock, server_hostname=host)
        c = cls(sock)
        c.greeting = c.status()
        return c

    def starttls(self) -> tuple[int, str]:
        """STARTTLS (RFC 4642); on 382 the handshake follows."""
        code, text = self.cmd("STARTTLS")
        if code == 382:
            if self._buf:
                raise NNTPError("data after 382 before the handshake")
            self.sock = client_tls().wrap_socket(self.sock, server_hostname="localhost")
        return code, text

    @property
    def tls_active(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    # -- raw I/O -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, line: str | bytes) -> None:
        self.send((line.encode("utf-8") if isinstance(line, str) else line) + b"\r\n")

    def readline(self) -> bytes:
        """One line without its CRLF."""
        while True:
            i = self._buf.find(b"\r\n")
            if i >= 0:
                line, self._buf = self._buf[:i], self._buf[i + 2:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NNTPError(f"connection closed (pending {self._buf[:80]!r})")
            self._buf += chunk

    def status(self) -> tuple[int, str]:
        line = self.readline().decode("utf-8", "replace")
        code, _, text = line.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise NNTPError(f"not a status line: {line!r}")
        return int(code), text

    def block(self) -> list[bytes]:
        """A dot-terminated block, un-stuffed (RFC 3977 §3.1.1), one entry per line."""
        lines = []
        while True:
            line = self.readline()
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def closed(self, timeout: float = 10) -> bool:
        """True when the server has closed the connection (EOF) with nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            return not self._buf and self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    # -- commands ------------------------------------------------------------------
    def cmd(self, line: str | bytes) -> tuple[int, str]:
        """Send one command, return its status line (a multi-line block is read and dropped)."""
        code, text, _ = self.cmd_multi(line)
        return code, text

    def cmd_multi(self, line: str | bytes) -> tuple[int, str, list[bytes]]:
        """Send one command; the status and, when it has one, the un-stuffed block."""
        self.send_line(line)
        return self.multiline(_is_listgroup(line))

    def multiline(self, listgroup: bool = False) -> tuple[int, str, list[bytes]]:
        """Read a status line and, for the codes that have one, its block."""
        code, text = self.status()
        multi = code in MULTILINE_CODES or (listgroup and code == 211)
        return code, text, (self.block() if multi else [])

    def pipeline(self, lines: Iterable[str]) -> list[tuple[int, str, list[bytes]]]:
        """Send all the commands in one write (RFC 3977 §3.5), then read every answer."""
        lines = list(lines)
        self.send(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))
        return [self.multiline(_is_listgroup(line)) for line in lines]

    def authinfo(self, user: str, password: str) -> tuple[int, str]:
        """AUTHINFO USER then PASS (RFC 4643 §2.3); the final status (281, 481, 483 ...)."""
        code, text = self.cmd(f"AUTHINFO USER {user}")
        if code != 381:
            return code, text
        return self.cmd(f"AUTHINFO PASS {password}")

    def authinfo_sasl_plain(self, user: str, password: str, *, initial: bool = True) -> tuple[int, str]:
        """AUTHINFO SASL PLAIN (RFC 4643 §2.4), with the initial response or after the 383."""
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        if initial:
            return self.cmd(f"AUTHINFO SASL PLAIN {token}")
        code, text = self.cmd("AUTHINFO SASL PLAIN")
        if code != 383:
            return code, text
        return self.cmd(token)

    @staticmethod
    def stuff(raw: bytes) -> bytes:
        """An article as it goes on the wire: CRLF, dot-stuffed, terminated."""
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if raw and not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        lines = raw.split(b"\r\n")[:-1]
        return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) + b".\r\n"

    def post(self, raw: bytes) -> tuple[int, str]:
        """POST (RFC 3977 §6.3.1): 340, then the article; the final status (240/441), or the
        refusal of POST itself (440, 480 ...)."""
        code, text = self.cmd("POST")
        if code != 340:
            return code, text
        self.send(self.stuff(raw))
        return self.status()

    def article(self, spec: str = "", verb: str = "ARTICLE") -> tuple[int, str, bytes]:
        """ARTICLE/HEAD/BODY with the block joined back into CRLF bytes."""
        code, text, lines = self.cmd_multi(f"{verb} {spec}".strip())
        return code, text, b"".join(line + b"\r\n" for line in lines)

    def quit(self) -> None:
        try:
            self.cmd("QUIT")
        except (OSError, NNTPError):
            pass
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
