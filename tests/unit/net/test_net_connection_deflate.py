"""Connection with its deflate layer on: the limits apply to the inflated stream, piece by piece."""

from __future__ import annotations

import asyncio
import socket
import zlib

import pytest

from postroom.net.connection import (
    INFLATE_CHUNK,
    CompressionError,
    Connection,
    InputProtocol,
    LineTooLong,
)


class _Watched(Connection):
    """Records the largest inflated buffer the connection ever held."""

    most = 0

    async def _fill(self, timeout: float | None) -> None:
        await super()._fill(timeout)
        self.most = max(self.most, len(self._buf))


class _Peer:
    """The client end of a loopback socket pair: sends ``wire`` and half-closes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def received(self) -> bytes:
        """Everything the server wrote, once it has closed."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        while chunk := await loop.sock_recv(self.sock, 65536):
            data += chunk
        return bytes(data)


async def _conn(wire: bytes) -> tuple[_Watched, _Peer]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    _transport, stream = await loop.connect_accepted_socket(InputProtocol, ours)
    c = _Watched(stream=stream)
    c.start_compression()

    async def send() -> None:
        await loop.sock_sendall(theirs, wire)
        theirs.shutdown(socket.SHUT_WR)

    _sending.add(asyncio.ensure_future(send()))
    return c, _Peer(theirs)


_sending: set[asyncio.Future[None]] = set()


def _deflate(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)


def test_a_bomb_line_never_sits_inflated_in_memory() -> None:
    async def main() -> None:
        limit = 8192
        c, _ = await _conn(_deflate(b"x" * (8 * 1024 * 1024) + b"\r\nn NOOP\r\n"))
        with pytest.raises(LineTooLong):
            await c.readline(limit, 5)
        assert c.most <= limit + INFLATE_CHUNK
        assert await c.readline(limit, 5) == b"n NOOP\r\n"
        assert c.bytes_in < 20_000  # counted on the wire

    asyncio.run(main())


def test_a_huge_overlong_line_ends_the_connection() -> None:
    async def main() -> None:
        c, _ = await _conn(_deflate(b"x" * (64 * 1024 * 1024) + b"\r\n"))
        with pytest.raises(CompressionError):
            await c.readline(8192, 5)
        assert c.most <= 8192 + INFLATE_CHUNK

    asyncio.run(main())


def test_literal_reads_and_writes_go_through_the_layer() -> None:
    async def main() -> None:
        c, w = await _conn(_deflate(b"a APPEND x {5}\r\nhello\r\n"))
        assert await c.readline(100, 5) == b"a APPEND x {5}\r\n"
        assert await c.readexactly(5, 5) == b"hello"
        assert await c.readline(100, 5) == b"\r\n"
        c.write(b"* OK one\r\n")
        c.writelines([b"a OK ", b"two\r\n"])
        await c.close()
        data = await w.received()
        # Each batch ends in a sync flush: the peer inflates all of it at once.
        assert zlib.decompressobj(-15).decompress(data) == b"* OK one\r\na OK two\r\n"
        assert c.bytes_out == len(data)

    asyncio.run(main())


def test_garbage_is_a_compression_error() -> None:
    async def main() -> None:
        c, _ = await _conn(b"\xff" * 100)
        with pytest.raises(CompressionError):
            await c.readline(100, 5)

    asyncio.run(main())
