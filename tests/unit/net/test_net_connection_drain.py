"""Connection.drain returns at once when the kernel took the whole write (no timer), and
still waits, with its timeout, when it did not: a client that stops reading is cut off
after the timeout (IdleTimeout), not held for ever (issue #22's per-message cuts)."""

from __future__ import annotations

import asyncio
import socket
import time

import uvloop

from postroom.net.connection import Connection, IdleTimeout


def test_drain_waits_with_its_timeout_only_when_the_write_is_buffered() -> None:
    async def main() -> tuple[float, float, bool]:
        got: asyncio.Future[tuple[float, float, bool]] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer)
            t0 = time.monotonic()
            conn.write(b"220 small\r\n")
            await conn.drain(0.3)  # all with the kernel: returns at once
            small = time.monotonic() - t0
            t1 = time.monotonic()
            timed_out = False
            try:
                conn.write(b"x" * (64 << 20))  # far more than the socket buffers hold
                await conn.drain(0.3)
            except IdleTimeout:
                timed_out = True
            got.set_result((small, time.monotonic() - t1, timed_out))
            writer.transport.abort()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))  # and never reads
        try:
            return await asyncio.wait_for(got, 10)
        finally:
            client.close()
            srv.close()

    small, big, timed_out = uvloop.run(main())
    assert small < 0.2
    assert timed_out and 0.25 <= big < 5


def test_quick_ack_is_set_on_the_descriptor() -> None:
    """ack_quickly sets TCP_QUICKACK through the descriptor (one system call), and does
    nothing once the transport has closed (the number may belong to another socket then)."""

    async def main() -> tuple[int, bool]:
        got: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer)
            sock = writer.get_extra_info("socket")
            # Pingpong mode (delayed ACKs) begins once the server has answered a request.
            await conn.readline(100, 5)
            conn.write(b"250 ok\r\n")
            await conn.drain(5)
            conn.ack_quickly()
            on = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)
            writer.close()
            conn.ack_quickly()  # closing: must not touch the descriptor (nor raise)
            got.set_result((on, conn._fd >= 0))

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"NOOP\r\n")
        try:
            return await asyncio.wait_for(got, 10)
        finally:
            client.close()
            srv.close()

    on, by_fd = uvloop.run(main())
    assert on == 1
    assert by_fd
