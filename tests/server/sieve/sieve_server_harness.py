"""Shared pieces of the Sieve delivery tests: a real Postroom (in-process runtime, own thread and loop) with its real outbound queue.

Mail the queue sends for remote domains goes, through a local DNS fixture (MX
``remote.test`` → 127.0.0.2), to a scripted SMTP sink on 127.0.0.2: what a second host
receives from a Sieve redirect, vacation reply or notification. Local mail arrives over
SMTP on 127.0.0.1 and is read back from the store or over IMAP.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# tests/dnsfixture.py and tests/server/outbound/outbound_helpers.py live outside this package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "outbound"))

import outbound_helpers
from dnsfixture import DnsFixture

from postroom.auth import hash_password
from postroom.config import load
from postroom.net.tls import write_self_signed

ScriptedSmtp = outbound_helpers.ScriptedSmtp  # the SMTP sink standing for remote.test
free_port = outbound_helpers.free_port

DOMAIN = "example.test"
REMOTE = "remote.test"
SINK_IP = "127.0.0.2"
PASSWORD = "correct horse"
USERS = ("joe", "ann", "bob", "carl", "dora", "eve", "fred", "gina", "hank", "ivy", "jack", "kim", "lou",
         "max", "ned", "olga", "pia", "quin", "rex", "sam", "tom", "uma", "vic", "wes", "xena")


class SieveServer:
    def __init__(self, root: Path, dns: DnsFixture, sink_port: int) -> None:
        self.root = root
        (root / "sieve" / "global").mkdir(parents=True)
        self.before = root / "sieve" / "before.sieve"
        self.after = root / "sieve" / "after.sieve"
        self.before.write_text("")
        self.after.write_text("")
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
idle_timeout = "10s"
[listeners.smtp]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.imap]
address = "127.0.0.1:0"
tls = "starttls"
[outbound]
resolver = "{dns.address}"
port = {sink_port}
retry_schedule = ["1s"]
poll_interval = "0.1s"
connect_timeout = "2s"
connection_idle = "0s"
[mailauth]
check_listeners = []
[sieve]
before = "sieve/before.sieve"
after = "sieve/after.sieve"
vacation_min_period = "1s"
max_redirects = 2
""")
        write_self_signed(root / "tls/cert.pem", root / "tls/key.pem", f"mx.{DOMAIN}")
        self.cfg = load(root / "postroom.toml")
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.ids: dict[str, int] = {}
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
                self.ctx = srv.ctx
                srv.ctx.auth.base_delay = 0.01
                hashed = hash_password(PASSWORD)  # one slow hash for every test account
                for u in USERS:
                    acct = await srv.ctx.store.create_account(f"{u}@{DOMAIN}", hashed)
                    self.ids[u] = acct.id
                await srv.ctx.store.set_alias(f"both@{DOMAIN}", [f"olga@{DOMAIN}", f"pia@{DOMAIN}"])
                self.ports = {name: port for name, (_, port) in srv.addresses.items()}
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test thread
            self._error = exc
            self._ready.set()

    def start(self) -> SieveServer:
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

    def messages(self, user: str, mailbox: str = "INBOX") -> list[tuple[bytes, frozenset[str]]]:
        async def go() -> list[tuple[bytes, frozenset[str]]]:
            store = self.ctx.store
            box = await store.get_mailbox(self.ids[user], mailbox)
            if box is None:
                return []
            return [(await store.read_message(m), m.flags) for m in await store.list_messages(box.id)]
        return self.call(go())

    def mailbox(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        return [raw for raw, _ in self.messages(user, mailbox)]

    def put_script(self, user: str, text: str, name: str = "main") -> None:
        self.call(self.ctx.store.put_sieve_script(self.ids[user], name, text, activate=True))


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")
