"""Connection-time checks ([screen]) against a real server over loopback sockets.

Clients bind a source address of 127.0.0.0/8 to be "another host"; a local DNS fixture
publishes the DNSBL/DNSWL entries and the reverse DNS of each:

- 127.0.0.2 listed in bl.test (refused at connect), 127.0.0.4 listed in bl.test and in
  wl.test (whitelisted by the DNSWL's negative weight), 127.0.0.5's DNSBL query never
  answered (a timeout is not a listing);
- 127.0.0.3, .5, .8, .9 have forward-confirmed PTRs; 127.0.0.6 has no PTR; 127.0.0.7's
  PTR name points elsewhere;
- greylisting exempts 127.0.0.8 (used for the HELO and early-talker tests).
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dnsfixture import DnsFixture

from postroom.auth import hash_password
from postroom.config import load
from postroom.net.tls import write_self_signed

DOMAIN = "example.test"
GREET_PAUSE = 0.6
GREY_DELAY = 1.0


SCREEN = f"""dnsbl_sites = ["bl.test=127.0.0.[2..11]*2", "wl.test*-5", "slow.test"]
dnsbl_threshold = 2
dnsbl_whitelist_threshold = -1
greet_pause = "{GREET_PAUSE}s"
no_ptr = "reject"
fcrdns = "reject"
helo_literal = "reject"
"""


class Server:
    """The whole runtime in a thread, on an ephemeral port of 127.0.0.1."""

    def __init__(self, root: Path, dns_address: str, screen: str = "") -> None:
        self.root = root
        cfg = root / "postroom.toml"
        if not cfg.exists():
            cfg.write_text(f"""
hostname = "mx.{DOMAIN}"
domains = ["{DOMAIN}"]
[storage]
path = "data"
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
[limits]
connections_per_ip = 50
idle_timeout = "5s"
[listeners.smtp]
address = "127.0.0.1:0"
[listeners.submission]
address = "127.0.0.1:0"
[dns]
resolver = "{dns_address}"
timeout = "1s"
attempts = 1
[mailauth]
check_listeners = []
[screen]
{screen or SCREEN}
[screen.greylist]
enabled = true
delay = "{GREY_DELAY}s"
whitelist_after = 1
ipv4_prefix = 32
exempt = ["127.0.0.8/32"]
""")
            write_self_signed(root / "tls/cert.pem", root / "tls/key.pem", f"mx.{DOMAIN}")
        self.cfg = load(cfg)
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
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
                self.ctx = srv.ctx
                store = srv.ctx.store
                for u in ("joe", "ann", "bob"):
                    if await store.get_account(f"{u}@{DOMAIN}") is None:
                        await store.create_account(f"{u}@{DOMAIN}", hash_password("pw"))
                self.ports = {name: port for name, (_, port) in srv.addresses.items()}
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test thread
            self._error = exc
            self._ready.set()

    def start(self) -> Server:
        self.thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    def inbox(self, user: str) -> list[bytes]:
        async def go() -> list[bytes]:
            store = self.ctx.store
            acct = await store.get_account(f"{user}@{DOMAIN}")
            assert acct is not None
            mbox = await store.get_mailbox(acct.id, "INBOX")
            assert mbox is not None
            return [await store.read_message(m) for m in await store.list_messages(mbox.id)]
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)


class Raw:
    """A raw client from a chosen loopback source address."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        self.buf = b""

    def reply(self) -> str:
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

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def dns_srv() -> Iterator[DnsFixture]:
    with DnsFixture() as d:
        d.a("2.0.0.127.bl.test", "127.0.0.2")
        d.a("4.0.0.127.bl.test", "127.0.0.2")
        d.a("4.0.0.127.wl.test", "127.0.10.2")
        d.silent("5.0.0.127.slow.test")
        d.a("2.0.0.127.slow.test", "127.255.255.254")  # a "public resolver" error code: ignored
        for n in (3, 5, 8, 9):
            d.set(f"{n}.0.0.127.in-addr.arpa", "PTR", [f"client{n}.remote.test."])
            d.a(f"client{n}.remote.test", f"127.0.0.{n}")
        d.set("7.0.0.127.in-addr.arpa", "PTR", ["liar.remote.test."])
        d.a("liar.remote.test", "192.0.2.7")
        yield d


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screen")


@pytest.fixture(scope="module")
def server(root: Path, dns_srv: DnsFixture) -> Iterator[Server]:
    srv = Server(root, dns_srv.address).start()
    yield srv
    srv.stop()  # again after the restart test: then a no-op


def port(srv: Server) -> int:
    return srv.ports["smtp"]


def mail_rcpt(c: Raw, helo: str, rcpt: str, sender: str = "someone@remote.test") -> str:
    assert c.cmd(f"EHLO {helo}").startswith("250")
    assert c.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    return c.cmd(f"RCPT TO:<{rcpt}>")


# -- DNSBL / DNSWL ----------------------------------------------------------------
def test_listed_client_is_refused_at_connect(server: Server) -> None:
    c = Raw(port(server), "127.0.0.2")
    greeting = c.reply()
    assert greeting == "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test", greeting
    assert c.closed()


def test_unlisted_client_is_served_after_the_pause(server: Server) -> None:
    c = Raw(port(server), "127.0.0.8")
    t0 = time.monotonic()
    assert c.reply().startswith("220 ")
    assert time.monotonic() - t0 >= GREET_PAUSE * 0.9  # it was made to wait, and did
    assert mail_rcpt(c, "client8.remote.test", f"joe@{DOMAIN}").startswith("250")
    assert c.cmd("DATA").startswith("354")
    assert c.cmd("Subject: patient\r\n\r\nhello\r\n.").startswith("250")
    c.cmd("QUIT")
    assert any(b"Subject: patient" in m for m in server.inbox("joe"))


def test_dnswl_weight_whitelists_a_listed_client(server: Server) -> None:
    # Listed (+2) and whitelisted (-5): score -3, under the whitelist threshold, so no
    # refusal, and the other tests (no PTR here, greylisting) are skipped.
    c = Raw(port(server), "127.0.0.4")
    assert c.reply().startswith("220 ")
    assert mail_rcpt(c, "client4.remote.test", f"ann@{DOMAIN}").startswith("250")
    c.close()


def test_dns_timeout_is_not_a_listing(server: Server, dns_srv: DnsFixture) -> None:
    c = Raw(port(server), "127.0.0.5")
    assert c.reply().startswith("220 ")  # slow.test never answered (1 s): not counted
    assert ("5.0.0.127.slow.test.", "A") in [(n.lower(), t) for n, t in dns_srv.queries]
    c.close()


def test_machine_itself_is_not_screened_or_delayed(server: Server) -> None:
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port(server), timeout=10) as s:
        assert time.monotonic() - t0 < GREET_PAUSE
        s.ehlo("localhost")  # not a FQDN: fine from the exempt loopback host
        assert s.mail("x@remote.test")[0] == 250
        assert s.rcpt(f"bob@{DOMAIN}")[0] == 250  # no greylisting either


def test_submission_listener_is_not_screened(server: Server) -> None:
    c = Raw(server.ports["submission"], "127.0.0.2")  # listed, but not on the MX listener
    t0 = time.monotonic()
    assert c.reply().startswith("220 ")
    assert time.monotonic() - t0 < GREET_PAUSE
    c.close()


# -- reverse DNS and HELO --------------------------------------------------------
def test_no_ptr_is_refused_at_rcpt(server: Server) -> None:
    c = Raw(port(server), "127.0.0.6")
    assert c.reply().startswith("220 ")
    reply = mail_rcpt(c, "client6.remote.test", f"joe@{DOMAIN}")
    assert reply.startswith("550 5.7.25 "), reply
    c.close()


def test_ptr_not_resolving_back_is_refused(server: Server) -> None:
    c = Raw(port(server), "127.0.0.7")
    assert c.reply().startswith("220 ")
    reply = mail_rcpt(c, "liar.remote.test", f"joe@{DOMAIN}")
    assert reply.startswith("550 5.7.25 ") and "does not resolve" in reply, reply
    c.close()


@pytest.mark.parametrize("helo, expected", [
    ("localhost", "504 5.5.2 Helo command rejected: need fully-qualified hostname"),
    ("1.2.3.4", "504 5.5.2 Helo command rejected: need fully-qualified hostname"),
    (f"mx.{DOMAIN}", "554 5.7.1 Helo command rejected: you are not me"),
    (DOMAIN, "554 5.7.1 Helo command rejected: you are not me"),
    ("[127.0.0.1]", "554 5.7.1 Helo command rejected: you are not me"),
    ("[127.0.0.9]", "554 5.7.1 Helo command rejected: address literal is not your address"),
    ("[127.0.0.8]", "250 "),
    ("client8.remote.test", "250 "),
])
def test_helo_checks(server: Server, helo: str, expected: str) -> None:
    c = Raw(port(server), "127.0.0.8")
    assert c.reply().startswith("220 ")
    reply = mail_rcpt(c, helo, f"joe@{DOMAIN}")
    assert reply.startswith(expected), reply
    # A second HELO with a good name is judged afresh.
    if not expected.startswith("250"):
        assert mail_rcpt(c, "client8.remote.test", f"joe@{DOMAIN}").startswith("250")
    c.close()


# -- early talkers ----------------------------------------------------------------
def test_early_talker_is_refused(server: Server) -> None:
    c = Raw(port(server), "127.0.0.8")
    c.sock.sendall(b"EHLO client8.remote.test\r\n")  # before the greeting
    reply = c.reply()
    assert reply.startswith("554 5.5.1 "), reply
    assert c.closed()


def test_client_that_waits_for_the_greeting_is_served(server: Server) -> None:
    c = Raw(port(server), "127.0.0.8")
    assert c.reply().startswith("220 ")
    assert c.cmd("EHLO client8.remote.test").startswith("250")
    c.close()


# -- the lenient settings: refusal delayed to RCPT, early talkers only logged ------------
def test_delayed_reject_and_log_only_early_talkers(tmp_path: Path, dns_srv: DnsFixture,
                                                   postroom_log: list[str]) -> None:
    srv = Server(tmp_path, dns_srv.address, screen="""dnsbl_sites = ["bl.test=127.0.0.[2..11]"]
dnsbl_reject_at = "rcpt"
greet_pause = "0.3s"
early_talker = "log"
""").start()
    try:
        c = Raw(port(srv), "127.0.0.2")
        c.sock.sendall(b"EHLO client2.remote.test\r\n")  # early, but only logged: served
        assert c.reply().startswith("220 ")
        assert c.reply().startswith("250")  # the early EHLO was not lost
        assert c.cmd("MAIL FROM:<a@remote.test>").startswith("250")
        reply = c.cmd(f"RCPT TO:<joe@{DOMAIN}>")
        assert reply == "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test", reply
        assert c.cmd("QUIT").startswith("221")
        c.close()
        # The other findings are logged only (default no_ptr = "log"): nobody waited for them.
        found = [line for line in postroom_log if "127.0.0.2 screen " in line]
        assert any("screen early_talker: talked before the greeting (logged only)" in x for x in found), found
        assert any("screen no_ptr: no reverse DNS (logged only)" in x for x in found), found
        assert any("screen dnsbl: listed score=1 zones=bl.test" in x for x in found), found
    finally:
        srv.stop()


# -- greylisting (last: it restarts the server) ------------------------------------
def test_greylisting_then_whitelisting_survives_a_restart(server: Server, root: Path,
                                                          dns_srv: DnsFixture, request: Any) -> None:
    def attempt(source: str, rcpt: str, sender: str = "list@remote.test") -> str:
        c = Raw(port(current), source)
        assert c.reply().startswith("220 ")
        try:
            return mail_rcpt(c, f"client{source[-1]}.remote.test", rcpt, sender)
        finally:
            c.close()

    current = server
    first = attempt("127.0.0.3", f"joe@{DOMAIN}")
    assert first.startswith("451 4.7.1 Greylisted"), first
    too_soon = attempt("127.0.0.3", f"joe@{DOMAIN}")
    assert too_soon.startswith("451 4.7.1"), too_soon
    # Another client's first attempt, to be retried across the restart.
    assert attempt("127.0.0.9", f"ann@{DOMAIN}").startswith("451 4.7.1")
    time.sleep(GREY_DELAY + 0.2)
    assert attempt("127.0.0.3", f"joe@{DOMAIN}").startswith("250")
    # One passed triplet whitelists the client (whitelist_after = 1): a new triplet passes.
    assert attempt("127.0.0.3", f"ann@{DOMAIN}", "other@remote.test").startswith("250")

    server.stop()
    current = Server(root, dns_srv.address).start()
    try:
        assert attempt("127.0.0.3", f"bob@{DOMAIN}", "third@remote.test").startswith("250")
        assert attempt("127.0.0.9", f"ann@{DOMAIN}").startswith("250")  # its wait counted across it
        # That pass whitelisted 127.0.0.9 too, so its next new triplet does not wait.
        assert attempt("127.0.0.9", f"bob@{DOMAIN}", "new@remote.test").startswith("250")
    finally:
        current.stop()
