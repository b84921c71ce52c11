"""COMPRESS=DEFLATE (RFC 4978) through a small client of our own (imaplib has no COMPRESS):
over implicit TLS (compression inside TLS), plaintext after login and after STARTTLS; SELECT,
FETCH, APPEND and IDLE through the compressed stream; garbage and zip bombs."""

from __future__ import annotations

import logging
import socket
import ssl
import time
import zlib

import pytest

from imap_harness import PASSWORD, msg, tls_client_context


class DeflateClient:
    """A raw IMAP client that can switch to raw deflate (wbits -15) both ways after COMPRESS."""

    def __init__(self, port: int, tls: bool = False) -> None:
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock: socket.socket = tls_client_context().wrap_socket(s, server_hostname="localhost") if tls else s
        self.buf = b""
        self.out: zlib._Compress | None = None
        self.inf: zlib._Decompress | None = None
        self.greeting = self.line()

    def starttls(self) -> None:
        assert self.cmd(b"s STARTTLS")[-1].startswith(b"s OK")
        self.sock = tls_client_context().wrap_socket(self.sock, server_hostname="localhost")

    def compress(self, tag: bytes = b"z") -> list[bytes]:
        got = self.cmd(tag + b" COMPRESS DEFLATE")
        if got[-1].startswith(tag + b" OK"):
            # RFC 4978 §3: both sides compress right after the OK's CRLF.
            assert self.buf == b"", "nothing may follow the OK uncompressed"
            self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.inf = zlib.decompressobj(-15)
        return got

    def send(self, data: bytes) -> None:
        if self.out is not None:
            data = self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(self.buf)
        self.buf += self.inf.decompress(chunk) if self.inf is not None else chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._recv()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until_tagged(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            line = self.line()
            if line.endswith(b"}\r\n"):  # a literal: read it whole, then the rest of the line
                n = int(line[line.rindex(b"{") + 1:-3])
                line += self.exactly(n) + self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    def cmd(self, data: bytes) -> list[bytes]:
        self.send(data + b"\r\n")
        return self.until_tagged(data.split(b" ", 1)[0])

    def login(self, address: str) -> None:
        got = self.cmd(b'l LOGIN "%s" "%s"' % (address.encode(), PASSWORD.encode()))
        assert got[-1].startswith(b"l OK"), got

    def closed(self, timeout: float = 15.0) -> bool:
        """The server hung up (EOF or reset) within ``timeout``."""
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                self._recv()
        except (EOFError, ConnectionError, ssl.SSLError):
            return True
        except zlib.error:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


def _session(srv, c: DeflateClient) -> None:
    """SELECT, FETCH, APPEND (sync and LITERAL+), IDLE with a delivery, a second COMPRESS."""
    acc = c.acc
    big = msg("big", body="x" * 300_000 + "\r\n")  # FETCH bigger than one batch of output
    srv.deliver(acc, msg("one"))
    srv.deliver(acc, big)
    got = c.cmd(b"s SELECT INBOX")
    assert b"* 2 EXISTS\r\n" in got and got[-1].startswith(b"s OK")
    got = c.cmd(b"f FETCH 1:2 (UID BODY.PEEK[])")
    assert got[-1] == b"f OK Fetch completed\r\n" or got[-1].startswith(b"f OK")
    assert msg("one") in got[0] and big in got[1]
    # APPEND with a synchronizing literal: the "+" comes compressed and is not held back.
    new = msg("appended")
    c.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(new))
    assert c.line().startswith(b"+ ")
    c.send(new + b"\r\n")
    got = c.until_tagged(b"a")
    assert got[-1].startswith(b"a OK [APPENDUID")
    c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(new) + new + b"\r\n")
    got += c.until_tagged(b"a2")
    assert got[-1].startswith(b"a2 OK")
    got += c.cmd(b"n NOOP")
    assert b"* 4 EXISTS\r\n" in got
    # IDLE: the continuation and the pushed EXISTS must arrive at once (sync flush).
    c.send(b"i IDLE\r\n")
    assert c.line().startswith(b"+ ")
    srv.deliver(acc, msg("during idle"))
    assert c.line() == b"* 5 EXISTS\r\n"
    c.send(b"DONE\r\n")
    assert c.until_tagged(b"i")[-1] == b"i OK Idle completed\r\n"
    # RFC 4978 §3: one layer only.
    assert c.cmd(b"z2 COMPRESS DEFLATE") == [b"z2 NO [COMPRESSIONACTIVE] Compression is already active\r\n"]
    assert c.cmd(b"o LOGOUT")[-1] == b"o OK Logout completed\r\n"


@pytest.mark.parametrize("how", ["imaps", "starttls", "plaintext"])
def test_compressed_session(srv, how):
    acc = srv.new_user()
    c = DeflateClient(srv.ports["imaps"] if how == "imaps" else srv.port, tls=how == "imaps")
    c.acc = acc
    if how == "starttls":
        c.starttls()
    c.login(acc.address)
    caps = c.cmd(b"c CAPABILITY")[0]
    assert b" COMPRESS=DEFLATE" in caps
    assert c.compress() == [b"z OK DEFLATE active\r\n"]
    _session(srv, c)
    c.close()


def test_pipelined_right_after_compress(srv):
    """A client may send compressed commands right behind COMPRESS, before the OK: they are
    part of the compressed stream, not plaintext."""
    acc = srv.new_user()
    c = DeflateClient(srv.port)
    c.login(acc.address)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.sock.sendall(b"z COMPRESS DEFLATE\r\n" + co.compress(b"n NOOP\r\n") + co.flush(zlib.Z_SYNC_FLUSH))
    assert c.line() == b"z OK DEFLATE active\r\n"
    c.out, c.inf = co, zlib.decompressobj(-15)
    c.buf = c.inf.decompress(c.buf)
    assert c.until_tagged(b"n") == [b"n OK NOOP completed\r\n"]
    c.close()


def test_compress_refused_before_login_and_unknown(srv):
    c = DeflateClient(srv.port)
    assert c.cmd(b"z COMPRESS DEFLATE") == [b"z BAD Log in first\r\n"]  # RFC 4978 §3: authenticated only
    acc = srv.new_user()
    c.login(acc.address)
    assert c.cmd(b"z COMPRESS GZIP") == [b"z BAD Unknown compression mechanism\r\n"]
    assert c.cmd(b"z COMPRESS")[-1].startswith(b"z BAD")
    assert c.cmd(b"z COMPRESS DEFLATE extra")[-1].startswith(b"z BAD")
    assert c.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]  # still uncompressed
    assert c.compress(b"z2") == [b"z2 OK DEFLATE active\r\n"]
    assert c.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
    c.close()


def test_garbage_closes_with_a_log_line(srv, caplog):
    acc = srv.new_user()
    c = DeflateClient(srv.port)
    c.login(acc.address)
    c.compress()
    with caplog.at_level(logging.INFO, logger="postroom.imap"):
        c.sock.sendall(b"\xff\xfe not deflate at all \x00" * 10)
        assert c.closed()
        time.sleep(0.2)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "invalid compressed data" in text
    assert "disconnect closed" in text
    assert not any(r.exc_info for r in caplog.records)
    c.close()


def _bomb(co: zlib._Compress, n_mib: int, tail: bytes) -> bytes:
    piece = b"a" * (1024 * 1024)
    return b"".join(co.compress(piece) for _ in range(n_mib)) + co.compress(tail) + co.flush(zlib.Z_SYNC_FLUSH)


def test_small_bomb_is_a_long_line(srv):
    """An overlong line that inflates to a few MB is read through in pieces and answered as in
    plaintext; the session goes on."""
    acc = srv.new_user()
    c = DeflateClient(srv.port)
    c.login(acc.address)
    c.compress()
    assert c.out is not None
    bomb = _bomb(c.out, 4, b"\r\n")
    assert len(bomb) < 20_000
    c.sock.sendall(bomb)
    assert c.line() == b"* BAD Line too long\r\n"
    assert c.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
    # A literal announced bigger than the limits is refused before it is read (§7.5).
    assert c.cmd(b"a APPEND INBOX {999999999}")[-1].startswith(b"a NO [TOOBIG]")
    c.close()


def test_big_bomb_closes_the_connection(srv, caplog):
    """A line that would inflate to 256 MiB: the server hangs up after a bounded amount."""
    acc = srv.new_user()
    c = DeflateClient(srv.port)
    c.login(acc.address)
    c.compress()
    assert c.out is not None
    bomb = _bomb(c.out, 256, b"\r\n")
    assert len(bomb) < 300_000
    with caplog.at_level(logging.INFO, logger="postroom.imap"):
        try:
            c.sock.sendall(bomb)
        except ConnectionError:
            pass
        assert c.closed()
        time.sleep(0.2)
    assert "overlong line in compressed data" in "\n".join(r.getMessage() for r in caplog.records)
    c.close()
