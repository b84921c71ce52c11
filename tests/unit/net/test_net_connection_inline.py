"""Connection.answer_inline over real loopback sockets: input answered in the protocol's
callback while readline waits (NNTP's ARTICLE by number, docs/nntp.md), input the hook
declines going to the read as usual, input that does not start a line never offered to the
hook, and the read's whole-line timeout starting again after answers given in the callback
(a session answered in the callback for longer than its idle timeout is not timed out by
the next line that arrives in pieces)."""

from __future__ import annotations

import asyncio
import socket
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from eventually import until

from postroom.net import connection as connection_module
from postroom.net.connection import Connection, InputProtocol

Session = Callable[[Connection, InputProtocol], Awaitable[Any]]
Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]


def _serve(session: Session, client: Client) -> Any:
    """Run ``session`` on the accepted side and ``client`` on the connecting one (sharing a
    dict); what the session returned."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[Any] = loop.create_future()
        shared: dict[str, Any] = {}

        async def run(stream: InputProtocol) -> None:
            conn = Connection(stream=stream)
            shared["stream"] = stream
            try:
                got.set_result(await session(conn, stream))
            except Exception as exc:  # noqa: BLE001 - handed to the test to check
                got.set_exception(exc)
            finally:
                await conn.close()

        tasks: set[asyncio.Task[None]] = set()
        srv = await loop.create_server(lambda: InputProtocol(lambda s: tasks.add(loop.create_task(run(s)))),
                                       "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await client(reader, writer, shared)
            return await asyncio.wait_for(got, 20)
        finally:
            writer.close()
            srv.close()

    return asyncio.run(main())


def _pinger(conn: Connection, answered: list[bytes]) -> Callable[[bytearray], bool]:
    def hook(buf: bytearray) -> bool:
        if bytes(buf) != b"PING\r\n":
            return False
        answered.append(bytes(buf))
        buf.clear()
        conn.write(b"PONG\r\n")
        return True
    return hook


async def _one_line(conn: Connection, stream: InputProtocol) -> Any:
    """The session: one readline with the PING answerer on; (the line, what was answered)."""
    answered: list[bytes] = []
    conn.answer_inline(_pinger(conn, answered))
    try:
        return await conn.readline(100, 30), answered
    finally:
        conn.answer_inline(None)


def test_answered_in_the_callback_and_declined_input_goes_to_the_read() -> None:
    async def session(conn: Connection, stream: InputProtocol) -> Any:
        answered: list[bytes] = []
        conn.answer_inline(_pinger(conn, answered))
        try:
            line = await conn.readline(100, 30)
        finally:
            conn.answer_inline(None)
        assert stream.on_input is None
        return line, answered

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter, shared: dict[str, Any]) -> None:
        for _ in range(3):  # one at a time: each arrives into an empty buffer
            w.write(b"PING\r\n")
            assert await r.readline() == b"PONG\r\n"
        w.write(b"QUIT\r\n")  # declined: the read returns it

    line, answered = _serve(session, client)
    assert line == b"QUIT\r\n" and answered == [b"PING\r\n"] * 3


def test_input_after_a_partial_line_is_not_offered() -> None:
    """A line completed by later input belongs to the read, whatever it says."""
    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter, shared: dict[str, Any]) -> None:
        w.write(b"PI")
        await w.drain()
        await until(lambda: "stream" in shared and bytes(shared["stream"]._buffer) == b"PI")
        w.write(b"NG\r\n")

    line, answered = _serve(_one_line, client)
    assert line == b"PING\r\n" and answered == []


def test_whole_line_timeout_starts_again_after_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers in the callback for longer than the timeout (an hour, on a clock the test moves),
    then a line in two pieces: the read returns it, not IdleTimeout from the first wait's start."""
    offset = [0.0]
    real = connection_module.time.monotonic
    monkeypatch.setattr(connection_module, "time", types.SimpleNamespace(monotonic=lambda: real() + offset[0]))

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter, shared: dict[str, Any]) -> None:
        w.write(b"PING\r\n")
        assert await r.readline() == b"PONG\r\n"
        offset[0] = 3600.0  # an hour of answers in the callback
        w.write(b"GRO")
        await w.drain()
        await until(lambda: bytes(shared["stream"]._buffer) == b"GRO")
        w.write(b"UP x\r\n")

    line, answered = _serve(_one_line, client)
    assert line == b"GROUP x\r\n" and answered == [b"PING\r\n"]
