"""Connection over InputProtocol, as the runtime accepts connections (loop.create_server with
the protocol, no asyncio streams), over real loopback sockets: lines that arrive in many pieces,
overlong lines, a read that waits past its timeout keeps what arrives later, EOF in the middle
of a line, and back-pressure (reading pauses at the high-water mark while nobody reads, and
nothing is lost when reading resumes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
from eventually import until

from postroom.net.connection import (
    Connection,
    ConnectionClosed,
    IdleTimeout,
    InputProtocol,
    LineTooLong,
)


class _Counting(InputProtocol):
    """Counts the transport's deliveries, to show a line really came in pieces."""

    deliveries = 0

    def data_received(self, data: bytes) -> None:
        self.deliveries += 1
        super().data_received(data)


Session = Callable[[Connection, _Counting], Awaitable[Any]]
Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _serve(session: Session, client: Client, high_water: int = 256 * 1024) -> Any:
    """Run ``session`` on the accepted side and ``client`` on the connecting one; what the
    session returned (or raised)."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[Any] = loop.create_future()
        tasks: set[asyncio.Task[None]] = set()

        async def run(stream: _Counting) -> None:
            conn = Connection(stream=stream)
            try:
                got.set_result(await session(conn, stream))
            except Exception as exc:  # noqa: BLE001 - handed to the test to check
                got.set_exception(exc)
            finally:
                await conn.close()

        def made(stream: InputProtocol) -> None:
            assert isinstance(stream, _Counting)
            tasks.add(loop.create_task(run(stream)))

        srv = await loop.create_server(lambda: _Counting(made, high_water=high_water), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await client(reader, writer)
            return await asyncio.wait_for(got, 20)
        finally:
            writer.close()
            srv.close()

    return uvloop.run(main())


async def _pieces(writer: asyncio.StreamWriter, data: bytes, size: int) -> None:
    """``data`` in ``size``-octet writes, each one sent before the next (NODELAY, a pause)."""
    for i in range(0, len(data), size):
        writer.write(data[i:i + size])
        await writer.drain()
        await asyncio.sleep(0.005)


def test_a_line_in_many_pieces() -> None:
    async def session(conn: Connection, stream: _Counting) -> tuple[bytes, bytes, int]:
        first = await conn.readline(512, 10)
        second = await conn.readline(512, 10)
        return first, second, stream.deliveries

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _pieces(w, b"ARTICLE <a1@bench.test>\r\nQUIT\r\n", 3)

    first, second, deliveries = _serve(session, client)
    assert (first, second) == (b"ARTICLE <a1@bench.test>\r\n", b"QUIT\r\n")
    assert deliveries > 2  # it did come in pieces


def test_overlong_lines_are_dropped_whole_and_the_next_line_is_read() -> None:
    async def session(conn: Connection, _s: _Counting) -> list[object]:
        out: list[object] = []
        for _ in range(3):
            try:
                out.append(await conn.readline(20, 10))
            except LineTooLong:
                out.append("too long")
        return out

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # One overlong line in one piece, another in many, then a good one.
        w.write(b"x" * 100 + b"\r\n")
        await _pieces(w, b"y" * 70 + b"\r\nGROUP misc\r\n", 16)

    assert _serve(session, client) == ["too long", "too long", b"GROUP misc\r\n"]


def test_a_timed_out_read_leaves_later_input_for_the_next_one() -> None:
    async def session(conn: Connection, _s: _Counting) -> tuple[bool, bytes]:
        timed_out = False
        try:
            await conn.readline(512, 0.2)
        except IdleTimeout:
            timed_out = True
        return timed_out, await conn.readline(512, 10)

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"DA")  # half a line, then nothing until the server has given up once
        await w.drain()
        await asyncio.sleep(0.5)
        w.write(b"TE\r\n")
        await w.drain()

    assert _serve(session, client) == (True, b"DATE\r\n")


def test_eof_in_the_middle_of_a_line() -> None:
    async def session(conn: Connection, _s: _Counting) -> bytes:
        first = await conn.readline(512, 10)
        with pytest.raises(ConnectionClosed):
            await conn.readline(512, 10)
        return first

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"LIST\r\nGRO")
        await w.drain()
        w.write_eof()

    assert _serve(session, client) == b"LIST\r\n"


def test_the_last_reply_goes_out_after_the_client_half_closes() -> None:
    async def session(conn: Connection, _s: _Counting) -> bytes:
        line = await conn.readline(512, 10)
        await conn.send(b"205 closing connection\r\n")
        return line

    seen: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"QUIT\r\n")
        w.write_eof()
        seen.append(await r.readline())

    assert _serve(session, client) == b"QUIT\r\n"
    assert seen == [b"205 closing connection\r\n"]


def test_reading_pauses_at_the_high_water_mark_and_nothing_is_lost() -> None:
    lines = [b"HEAD %d\r\n" % i for i in range(50_000)]  # ~560 KB: far past the mark below

    async def session(conn: Connection, stream: _Counting) -> tuple[int, int, list[bytes]]:
        # Nobody reads: the stream must stop taking input once past the mark.
        while not stream._paused:
            await asyncio.sleep(0.01)
        held = len(stream._buffer)
        await asyncio.sleep(0.1)  # paused: no more arrives while nobody reads
        still = len(stream._buffer)
        got = [await conn.readline(512, 10) for _ in lines]
        return held, still, got

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"".join(lines))  # drained in the background as the server reads

    held, still, got = _serve(session, client, high_water=4096)
    assert held == still
    assert held < 4096 + 1024 * 1024  # the mark plus at most what one socket read gives
    assert got == lines


def test_a_large_literal_through_a_small_high_water_mark() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB

    async def session(conn: Connection, _s: _Counting) -> tuple[bytes, bytes, bytes]:
        head = await conn.readline(512, 10)
        data = await conn.readexactly(len(blob), 10)
        return head, data, await conn.readline(512, 10)

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"a APPEND INBOX {%d}\r\n" % len(blob) + blob + b"\r\n")
        await w.drain()

    head, data, tail = _serve(session, client, high_water=4096)
    assert head == b"a APPEND INBOX {1048576}\r\n"
    assert data == blob
    assert tail == b"\r\n"


class _Taker(asyncio.Protocol):
    """A protocol that takes a transport over from an InputProtocol (as http/server.py's
    aiohttp bridge does)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        if not self.eof.done():
            self.eof.set_result(None)
        return True


def test_hand_over_gives_the_buffered_input_and_resumes_a_paused_transport() -> None:
    async def session(conn: Connection, stream: _Counting) -> tuple[bytes, bytes, bool, bool, bytes]:
        line = await conn.readline(512, 10)
        await until(lambda: stream._paused)  # 200 octets nobody reads, over the 64-octet mark
        taker = _Taker()
        stream.transport.set_protocol(taker)
        data, eof = stream.hand_over()
        paused = stream._paused
        await asyncio.wait_for(taker.eof, 10)  # the transport reads again, for the new protocol
        return line, data, eof, paused, bytes(taker.data)

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"FIRST\r\n")
        await w.drain()
        await asyncio.sleep(0.2)
        w.write(b"x" * 200)
        await w.drain()
        await asyncio.sleep(0.3)
        w.write(b"LATER")
        w.write_eof()

    line, data, eof, paused, later = _serve(session, client, high_water=64)
    assert (line, data, eof, paused, later) == (b"FIRST\r\n", b"x" * 200, False, False, b"LATER")


def test_hand_over_says_the_peer_had_closed_its_side() -> None:
    async def session(conn: Connection, stream: _Counting) -> tuple[bytes, bytes, bool]:
        line = await conn.readline(512, 10)
        await until(lambda: stream._eof)
        data, eof = stream.hand_over()
        return line, data, eof

    async def client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        w.write_eof()

    assert _serve(session, client) == (b"GET / HTTP/1.1\r\n", b"Host: x\r\n\r\n", True)
