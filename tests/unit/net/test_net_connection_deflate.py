"""Connection with its deflate layer on: the limits apply to the inflated stream, piece by piece."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import pytest

from postroom.net.connection import INFLATE_CHUNK, CompressionError, Connection, LineTooLong


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def get_extra_info(self, name: str) -> Any:
        return None

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.data += c


class _Watched(Connection):
    """Records the largest inflated buffer the connection ever held."""

    most = 0

    async def _fill(self, timeout: float | None) -> None:
        await super()._fill(timeout)
        self.most = max(self.most, len(self._buf))


def _conn(wire: bytes) -> tuple[_Watched, _Writer]:
    reader = asyncio.StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    w = _Writer()
    c = _Watched(reader, w)  # type: ignore[arg-type]
    c.start_compression()
    return c, w


def _deflate(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)


def test_a_bomb_line_never_sits_inflated_in_memory() -> None:
    async def main() -> None:
        limit = 8192
        c, _ = _conn(_deflate(b"x" * (8 * 1024 * 1024) + b"\r\nn NOOP\r\n"))
        with pytest.raises(LineTooLong):
            await c.readline(limit, 5)
        assert c.most <= limit + INFLATE_CHUNK
        assert await c.readline(limit, 5) == b"n NOOP\r\n"
        assert c.bytes_in < 20_000  # counted on the wire

    asyncio.run(main())


def test_a_huge_overlong_line_ends_the_connection() -> None:
    async def main() -> None:
        c, _ = _conn(_deflate(b"x" * (64 * 1024 * 1024) + b"\r\n"))
        with pytest.raises(CompressionError):
            await c.readline(8192, 5)
        assert c.most <= 8192 + INFLATE_CHUNK

    asyncio.run(main())


def test_literal_reads_and_writes_go_through_the_layer() -> None:
    async def main() -> None:
        c, w = _conn(_deflate(b"a APPEND x {5}\r\nhello\r\n"))
        assert await c.readline(100, 5) == b"a APPEND x {5}\r\n"
        assert await c.readexactly(5, 5) == b"hello"
        assert await c.readline(100, 5) == b"\r\n"
        c.write(b"* OK one\r\n")
        c.writelines([b"a OK ", b"two\r\n"])
        # Each batch ends in a sync flush: the peer inflates all of it at once.
        assert zlib.decompressobj(-15).decompress(bytes(w.data)) == b"* OK one\r\na OK two\r\n"
        assert c.bytes_out == len(w.data)

    asyncio.run(main())


def test_garbage_is_a_compression_error() -> None:
    async def main() -> None:
        c, _ = _conn(b"\xff" * 100)
        with pytest.raises(CompressionError):
            await c.readline(100, 5)

    asyncio.run(main())
