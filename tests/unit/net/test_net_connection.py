"""Connection: a peer that resets while a reply is being written is ConnectionClosed."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Callable

import uvloop

from postroom.net.connection import Connection, ConnectionClosed


def test_writes_after_the_peer_reset_are_connection_closed() -> None:
    """uvloop closes the transport itself when a read fails with a reset and then raises
    RuntimeError on a write; the protocols must see the peer going away (they log
    "disconnect lost"), not an internal error with a traceback (found by fuzzing POP3)."""

    async def main() -> list[str]:
        got: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer)
            try:
                await conn.readline(100, 5)
            except ConnectionClosed:
                pass
            await asyncio.sleep(0.05)  # the transport has closed itself by now
            outcomes = []
            ops: list[Callable[[], object]] = [lambda: conn.write(b"+OK\r\n"),
                                               lambda: conn.writelines([b"+OK ", b"2 messages\r\n"])]
            for op in ops:
                try:
                    op()
                    outcomes.append("wrote")
                except ConnectionClosed:
                    outcomes.append("closed")
            got.set_result(outcomes)
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()
        try:
            return await asyncio.wait_for(got, 5)
        finally:
            srv.close()

    assert uvloop.run(main()) == ["closed", "closed"]


def test_a_line_must_arrive_whole_within_the_timeout() -> None:
    """A client trickling one byte at a time, each well within the timeout, is cut off once
    the line as a whole has taken longer (slowloris): the timeout is per line, not per read.
    An overlong line being discarded gets the same deadline. A line that arrives in time,
    even in pieces, is read."""
    from postroom.net.connection import IdleTimeout

    async def one(first: bytes, trickled: bytes, limit: int) -> object:
        got: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                got.set_result(await Connection(reader, writer).readline(limit, 0.6))
            except IdleTimeout:
                got.set_result(("timeout", round(loop.time() - t0, 1)))
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        _, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        try:
            writer.write(first)
            for b in trickled:
                await asyncio.sleep(0.1)
                if got.done():
                    break
                try:
                    writer.write(bytes([b]))
                except (OSError, RuntimeError):  # the server hung up meanwhile (uvloop: RuntimeError)
                    break
            return await asyncio.wait_for(got, 5)
        finally:
            writer.close()
            srv.close()

    async def main() -> list[object]:
        return [await one(b"o", b"k\r\n", 100),  # 0.3 s in all: in time
                await one(b"s", b"low line that never ends", 100),  # cut off at 0.6 s
                await one(b"longer than the limit", b"and more and more", 4)]  # discarded, cut off

    assert uvloop.run(main()) == [b"ok\r\n", ("timeout", 0.6), ("timeout", 0.6)]
