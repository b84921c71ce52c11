"""Connection.readline over a real socket: the one-chunk path (nothing buffered, the chunk is
exactly one line) and the general one must give the same lines, in order, whatever the chunks."""

from __future__ import annotations

import asyncio

import uvloop

from postroom.net.connection import Connection, LineTooLong


def _read_lines(chunks: list[bytes], count: int, limit: int = 20) -> list[object]:
    """Send ``chunks`` (a pause between each) and read ``count`` lines: each line, or
    "too long" where LineTooLong was raised."""

    async def main() -> list[object]:
        got: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer)
            out: list[object] = []
            for _ in range(count):
                try:
                    out.append(await conn.readline(limit, 5))
                except LineTooLong:
                    out.append("too long")
            out.append(conn.has_buffered_input())
            got.set_result(out)
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        _, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        try:
            for c in chunks:
                writer.write(c)
                await writer.drain()
                await asyncio.sleep(0.05)
            return await asyncio.wait_for(got, 5)
        finally:
            writer.close()
            srv.close()

    return uvloop.run(main())


def test_one_line_per_chunk() -> None:
    assert _read_lines([b"STAT 1\r\n", b"QUIT\n"], 2) == [b"STAT 1\r\n", b"QUIT\n", False]


def test_pipelined_lines_in_one_chunk() -> None:
    assert _read_lines([b"A\r\nB\r\nC\r\n"], 2) == [b"A\r\n", b"B\r\n", True]
    assert _read_lines([b"A\r\nB\r\nC\r\n"], 3) == [b"A\r\n", b"B\r\n", b"C\r\n", False]


def test_a_line_in_pieces_and_a_line_with_the_next_ones_start() -> None:
    assert _read_lines([b"AR", b"TICLE 1\r\nHE", b"AD 2\r\n"], 2) == [b"ARTICLE 1\r\n", b"HEAD 2\r\n", False]


def test_overlong_lines_in_one_chunk_and_in_pieces_keep_the_stream_in_sync() -> None:
    long = b"X" * 30
    assert _read_lines([long + b"\r\n", b"OK\r\n"], 2) == ["too long", b"OK\r\n", False]
    assert _read_lines([long, long + b"\r\nOK\r\n"], 2) == ["too long", b"OK\r\n", False]
    # exactly at the limit is fine (the limit counts the CRLF)
    assert _read_lines([b"Y" * 18 + b"\r\n"], 1) == [b"Y" * 18 + b"\r\n", False]
