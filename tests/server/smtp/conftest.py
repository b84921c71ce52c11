"""A real Postroom (the whole runtime, in-process) on 127.0.0.1 ephemeral ports.

The server runs in its own thread and event loop so that blocking clients
(``smtplib``, ``swaks`` subprocesses, raw sockets) can talk to it from the test.
One server per test module (``smtp_server`` is module-scoped); tests use distinct
recipients or read the mailbox deltas they caused.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Awaitable

import pytest

from postroom.auth import hash_password
from postroom.config import load
from postroom.net.tls import write_self_signed
from postroom.outbound.api import Envelope

DOMAIN = "example.test"
PASSWORD = "correct horse"
USERS = ("joe", "ann", "bob", "carl", "dora")
ALIASES = {
    "team": ["joe@example.test", "ann@example.test"],
    "sales": ["team@example.test", "bob@example.test"],  # an alias of an alias
    "outside": ["friend@remote.example"],  # forwards off-site
    "loop1": ["loop2@example.test"],
    "loop2": ["loop1@example.test"],
}


class RecordingQueue:
    """Stands in for the outbound queue: keeps what SMTP hands over."""

    def __init__(self) -> None:
        self.items: list[tuple[Envelope, bytes]] = []

    async def enqueue(self, envelope: Envelope, raw: bytes) -> str:
        self.items.append((envelope, raw))
        return f"Q{len(self.items)}"


class SmtpServer:
    def __init__(self, root: Path, smtp_section: str = "", idle_timeout: str = "5s", limits: str = "") -> None:
        self.root = root
        (root / "postroom.toml").write_text(f"""
hostname = "mx.{DOMAIN}"
domains = ["{DOMAIN}"]
[storage]
path = "data"
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
[limits]
message_size = "200k"
connections_per_ip = 50
idle_timeout = "{idle_timeout}"
{limits}
[listeners.smtp]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.submission]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.submissions]
address = "127.0.0.1:0"
tls = "implicit"
[outbound]
# Tests never talk to the network: DNS questions go to a closed loopback port.
resolver = "127.0.0.1:9"
[mailauth]
# With no DNS every check is a temperror (451): mail authentication has its own tests
# (tests/unit/mailauth, tests/server/mailauth) with a DNS fixture.
check_listeners = []
[smtp]
{smtp_section}
""")
        write_self_signed(root / "tls/cert.pem", root / "tls/key.pem", f"mx.{DOMAIN}")
        self.cfg = load(root / "postroom.toml")
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self.queue = RecordingQueue()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from postroom.server import running

        self._stop = asyncio.Event()
        try:
            async with running(self.cfg) as srv:
                assert srv.ctx is not None
                self.srv = srv
                self.ctx = srv.ctx
                srv.ctx.outbound = self.queue
                # Fast tests: failed logins cost 10 ms, not seconds.
                srv.ctx.auth.base_delay = 0.01
                store = srv.ctx.store
                for u in USERS:
                    await store.create_account(f"{u}@{DOMAIN}", hash_password(PASSWORD))
                for src, targets in ALIASES.items():
                    await store.set_alias(f"{src}@{DOMAIN}", targets)
                self.ports = {name: port for name, (_, port) in srv.addresses.items()}
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # surfaced to the test thread
            self._error = exc
            self._ready.set()

    def start(self) -> "SmtpServer":
        self.thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    def call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def inbox(self, user: str) -> list[bytes]:
        async def go() -> list[bytes]:
            store = self.ctx.store
            acct = await store.get_account(f"{user}@{DOMAIN}")
            assert acct is not None
            mbox = await store.get_mailbox(acct.id, "INBOX")
            assert mbox is not None
            return [await store.read_message(m) for m in await store.list_messages(mbox.id)]
        return self.call(go())

    def wait_inbox(self, user: str, count: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.inbox(user)
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A raw-socket client for transcripts: send bytes, read whole replies."""

    def __init__(self, port: int, tls: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock: socket.socket = client_tls().wrap_socket(sock) if tls else sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def starttls(self) -> None:
        self.sock = client_tls().wrap_socket(self.sock)

    def reply(self) -> str:
        """One complete (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got " + repr(lines))
                self.buf += chunk
            line, _, self.buf = self.buf.partition(b"\r\n")
            text = line.decode()
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    def start(self, *commands: str) -> list[str]:
        """Read the greeting, then send each command and collect its reply."""
        self.reply()
        return [self.cmd(c) for c in commands]

    def cmd(self, line: str | bytes) -> str:
        self.send(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            self.sock.settimeout(5)
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.sock.close()


def make_server(tmp_path_factory: pytest.TempPathFactory, smtp_section: str = "",
                idle_timeout: str = "5s", limits: str = "") -> SmtpServer:
    return SmtpServer(tmp_path_factory.mktemp("smtp"), smtp_section, idle_timeout, limits).start()


def server_fixture(smtp_section: str = "", idle_timeout: str = "5s", limits: str = "") -> Any:
    """A module-scoped fixture for a server with other settings: ``x = server_fixture("vrfy = true")``."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
        srv = make_server(tmp_path_factory, smtp_section, idle_timeout, limits)
        yield srv
        srv.stop()
    return fixture


smtp_server = server_fixture()
