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
