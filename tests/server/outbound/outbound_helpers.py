"""Shared pieces of the outbound server tests: a scripted SMTP peer, a fake context.

:class:`ScriptedSmtp` is a tiny SMTP server on a real socket (its own thread and
loop) whose replies a test decides, recording every line it receives: enough to
see PIPELINING, DSN parameters, HELO fallback and reuse on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from postroom.config import from_dict
from postroom.outbound.delivery import Runner
from postroom.outbound.dns import DestinationResolver
from postroom.outbound.queue import SqliteQueue
from postroom.outbound.settings import parse


def free_port(hosts=("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")) -> int:
    """A port free on every given loopback address (MX hosts share [outbound] port)."""
    for _ in range(50):
        s = socket.socket()
        s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for h in hosts[1:]:
            t = socket.socket()
            try:
                t.bind((h, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no common free port")


@dataclass
class Session:
    lines: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)


class ScriptedSmtp:
    """``reply(cmd_line) -> str | None`` may override any reply (None: the default)."""

    def __init__(self, host: str, port: int, ehlo: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 1000000",
                                                                        "DSN", "SMTPUTF8", "ENHANCEDSTATUSCODES"),
                 reply: Callable[[str], str | None] | None = None, greeting: str = "220 scripted ESMTP",
                 ehlo_ok: bool = True) -> None:
        self.host, self.port = host, port
        self.ehlo = ehlo
        self.reply = reply or (lambda line: None)
        self.greeting = greeting
        self.ehlo_ok = ehlo_ok
        self.sessions: list[Session] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def messages(self) -> list[bytes]:
        return [m for s in self.sessions for m in s.messages]

    @property
    def lines(self) -> list[str]:
        return [x for s in self.sessions for x in s.lines]

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port))
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> "ScriptedSmtp":
        self.thread.start()
        self.ready.wait(5)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> "ScriptedSmtp":
        return self.start()

    def __exit__(self, *a: object) -> None:
        self.stop()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        s = Session()
        self.sessions.append(s)

        def send(text: str) -> None:
            w.write(text.encode() + b"\r\n")

        send(self.greeting)
        if not self.greeting.startswith("220"):
            await w.drain()
            w.close()
            return
        rcpts = 0
        try:
            while True:
                raw = await r.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                s.lines.append(line)
                verb = line.split(" ")[0].upper()
                custom = self.reply(line)
                if custom is not None:
                    send(custom)
                    if verb == "MAIL" and custom.startswith("2"):
                        rcpts = 0
                    if verb == "RCPT" and custom.startswith("2"):
                        rcpts += 1
                    if verb == "DATA" and custom.startswith("354"):
                        s.messages.append(await self._data(r))
                        send(self.reply("<END>") or "250 2.0.0 queued")
                elif verb == "EHLO":
                    if not self.ehlo_ok:
                        send("500 5.5.1 what is EHLO")
                    else:
                        lines = ["scripted.test", *self.ehlo]
                        for x in lines[:-1]:
                            send(f"250-{x}")
                        send(f"250 {lines[-1]}")
                elif verb in ("HELO", "RSET", "NOOP"):
                    send("250 ok")
                elif verb == "MAIL":
                    rcpts = 0
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    rcpts += 1
                    send("250 2.1.5 ok")
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 go on")
                    s.messages.append(await self._data(r))
                    send(self.reply("<END>") or "250 2.0.0 queued")
                elif verb == "QUIT":
                    send("221 bye")
                    await w.drain()
                    w.close()
                    return
                else:
                    send("502 5.5.2 not implemented")
                await w.drain()
        except (ConnectionError, OSError):
            return

    async def _data(self, r: asyncio.StreamReader) -> bytes:
        buf = bytearray()
        while True:
            line = await r.readline()
            if line in (b".\r\n", b""):
                return bytes(buf)
            if line.startswith(b".."):
                line = line[1:]
            buf += line


class FakeStore:
    """Records local deliveries (DSNs to local senders)."""

    def __init__(self, accounts: dict[str, int]) -> None:
        self.accounts = accounts
        self.delivered: list[tuple[bytes, list[int]]] = []

    async def get_account(self, address: str) -> Any:
        from postroom.storage.models import Account

        i = self.accounts.get(address.lower())
        return Account(i, address, "") if i else None

    async def get_alias(self, source: str) -> None:
        return None

    async def has_domain(self, domain: str) -> bool:
        return False

    async def deliver(self, raw: bytes, targets: Any, internaldate: Any = None, *, crlf: bool = False,
                      newlines: int | None = None) -> list[Any]:
        self.delivered.append((raw, [t.account_id for t in targets]))
        return []


class FakeCtx:
    def __init__(self, cfg: Any, store: FakeStore) -> None:
        self.config = cfg
        self.store = store
        self.state: dict[str, Any] = {}

    async def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.config.domains


def make_runner(tmp: Path, outbound: dict[str, Any], accounts: dict[str, int] | None = None,
                clock: Callable[[], float] = time.time) -> tuple[Runner, SqliteQueue, FakeCtx]:
    cfg = from_dict({"hostname": "mx.here.test", "domains": ["here.test"], "outbound": outbound},
                    tmp / "postroom.toml")
    problems: list[str] = []
    settings = parse(cfg, problems)
    assert not problems, problems
    ctx = FakeCtx(cfg, FakeStore(accounts or {"a@here.test": 1}))
    queue = SqliteQueue(tmp / "queue", clock=clock)
    runner = Runner(ctx, queue, settings, clock=clock, resolver=DestinationResolver(settings.resolver, timeout=2))
    return runner, queue, ctx


async def run_until(runner: Runner, done: Callable[[], Any], timeout: float = 10.0) -> None:
    """Drive the scheduler until ``await done()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await runner.schedule_once()
        await runner.drain()
        if await done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def deliver_all(tmp: Path, outbound: dict[str, Any], messages: list[tuple[Any, bytes]],
                      timeout: float = 10.0) -> FakeCtx:
    """Enqueue ``(envelope, raw)`` pairs, run until the queue is empty, close; the context
    (with ``ctx.store.delivered`` holding local notices) is returned."""
    runner, queue, ctx = make_runner(tmp, outbound)
    await queue.open()
    try:
        for envelope, raw in messages:
            await queue.enqueue(envelope, raw)

        async def empty() -> bool:
            return not await queue.messages()
        await run_until(runner, empty, timeout)
    finally:
        await runner.close()
        await queue.close()
    return ctx


def rcpt_report(notice: bytes, index: int = 0) -> Any:
    """The per-recipient block ``index`` of a DSN's message/delivery-status part."""
    import email

    return email.message_from_bytes(notice).get_payload()[1].get_payload()[1 + index]
