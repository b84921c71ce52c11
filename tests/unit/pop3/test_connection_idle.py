"""The idle timeout of ``net.connection.Connection`` (one lazily re-armed timer per connection).

POP3 depends on it for RFC 1939 §3's autologout; the server tests check it end to end
with a 1 s timer, these check the edges quickly, on both event loops the server runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from postroom.net.connection import Connection, IdleTimeout

LOOPS = [asyncio.new_event_loop, uvloop.new_event_loop]


def run_pair(body: Callable[[Connection, asyncio.StreamWriter], Awaitable[None]],
             new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """``body(server_side_connection, client_writer)`` over a loopback socket."""
    async def go() -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client_ready = asyncio.Event()

        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            conn = Connection(r, w)
            await client_ready.wait()
            try:
                await body(conn, client_w)
                done.set_result(None)
            except BaseException as exc:  # handed to the test
                done.set_exception(exc)
            finally:
                await conn.close()

        srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        _client_r, client_w = await asyncio.open_connection("127.0.0.1", port)
        client_ready.set()
        try:
            await asyncio.wait_for(done, 10)
        finally:
            client_w.close()
            srv.close()
    loop = new_loop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_times_out_only_after_silence(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def body(conn: Connection, client: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()

        async def trickle() -> None:
            for i in range(6):  # a line every 0.1 s keeps a 0.3 s timer from firing
                await asyncio.sleep(0.1)
                client.write(b"line %d\r\n" % i)

        feeder = asyncio.create_task(trickle())
        for i in range(6):
            assert await conn.readline(100, 0.3) == b"line %d\r\n" % i
        await feeder
        start = loop.time()
        with pytest.raises(IdleTimeout):
            await conn.readline(100, 0.3)
        assert 0.25 < loop.time() - start < 1.0
        # The connection still works after a timeout, and a shorter timeout than the
        # armed timer's is honoured.
        client.write(b"again\r\n")
        assert await conn.readline(100, 5) == b"again\r\n"
        start = loop.time()
        with pytest.raises(IdleTimeout):
            await conn.readline(100, 0.1)
        assert loop.time() - start < 1.0
        assert conn.idle_since is not None
    run_pair(body, new_loop)


@pytest.mark.parametrize("new_loop", LOOPS)
def test_outside_cancellation_is_not_a_timeout(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def body(conn: Connection, client: asyncio.StreamWriter) -> None:
        reading = asyncio.create_task(conn.readline(100, 0.2))
        await asyncio.sleep(0.05)
        reading.cancel()  # as a shutting-down server cancels idle sessions
        with pytest.raises(asyncio.CancelledError):
            await reading
        # A timer left from the cancelled wait does not hit the next reader early.
        await asyncio.sleep(0.2)
        client.write(b"x\r\n")
        assert await conn.readline(100, 0.5) == b"x\r\n"
        # No timeout at all waits as long as it takes.
        async def later() -> None:
            await asyncio.sleep(0.3)
            client.write(b"y\r\n")
        t = asyncio.create_task(later())
        assert await conn.readline(100, None) == b"y\r\n"
        await t
    run_pair(body, new_loop)
