"""Several ``postroom serve`` nodes on one PostgreSQL database, for the scale-out tests (issue #17).

Each node is a real ``postroom serve`` process with a config directory of its own (its
config, its copy of the TLS files and an otherwise unused local ``data`` directory: nothing
else is shared on disk) listening for SMTP, IMAP and POP3 on its own loopback address
(127.0.0.1, .2, .3). All of them use ``[storage] backend = "postgresql"`` on the same
database. Outbound mail goes through the DNS fixture (tests/dnsfixture.py) to a sink SMTP
server on 127.0.0.4 (:class:`Sink`), and every node sends from its own address
(``[outbound] source_address``), so the sink's peer addresses say which node sent what.

Ports are picked free per address when a node's config is written and kept across restarts,
so that clients can reconnect to a node restarted after SIGKILL.

The load generators (:class:`SmtpLoad`, :class:`AppendLoad`) record in a :class:`Ledger`
every message they tried and every one the server acknowledged (``250`` after DATA,
``OK`` to APPEND) and classify every failure: a temporary error or a dropped connection is
what a client may see while a node dies or PostgreSQL restarts; anything else (a permanent
error, a hang) is a finding. :func:`check_mailbox` then reads a mailbox back through IMAP
and compares bytes.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller

PY = [sys.executable, "-m", "postroom.cli"]
DOMAIN = "example.test"
REMOTE_DOMAIN = "sink.test"
NODE_IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SINK_IP = "127.0.0.4"
PASSWORD = "scaleout-pw"
PROTOCOLS = ("smtp", "imap", "pop3")
# Temporary answers the protocols give while the store is unreachable (docs/storage.md).
TEMP_IMAP = re.compile(rb"\[UNAVAILABLE\]")
CLIENT_TIMEOUT = 20.0
_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s")


# -- nodes --------------------------------------------------------------------------------------
class Node:
    """One ``postroom serve`` process: its directory, config, ports and log."""

    def __init__(self, root: Path, index: int, ip: str, pg_url: str, tls: tuple[Path, Path],
                 resolver: str, sink_port: int) -> None:
        self.index, self.ip = index, ip
        self.name = f"node{index}"
        self.dir = root / self.name
        self.dir.mkdir(parents=True)
        (self.dir / "tls").mkdir()
        # Each node has its own copy of the certificate and key, as separate machines would.
        shutil.copy(tls[0], self.dir / "tls" / "cert.pem")
        shutil.copy(tls[1], self.dir / "tls" / "key.pem")
        self.ports = {p: free_port(ip) for p in PROTOCOLS}
        self.cfg = self.dir / "postroom.toml"
        self.log_path = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        listeners = "".join(f'[listeners.{p}]\naddress = "{ip}:{port}"\n' for p, port in self.ports.items())
        self.cfg.write_text(f"""\
hostname = "{self.name}.{DOMAIN}"
domains = ["{DOMAIN}"]
workers = 1
log_level = "info"
[storage]
backend = "postgresql"
path = "data"
url = "{pg_url}"
pool_size = 10
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
[limits]
connections_per_ip = 500
auth_failures_per_ip = 1000
[mailauth]
check_listeners = []
[smtp]
trusted_networks = ["127.0.0.0/8"]
[imap]
allow_plaintext_auth = true
[pop3]
allow_plaintext_auth = true
[outbound]
resolver = "{resolver}"
port = {sink_port}
source_address = "{ip}"
retry_schedule = ["1s"]
poll_interval = "0.2s"
connect_timeout = "2s"
delay_warning = "1h"
per_domain_concurrency = 10
{listeners}""")

    def cli(self, *args: str, timeout: float = 120) -> str:
        p = subprocess.run([*PY, "-c", str(self.cfg), *args], check=False, capture_output=True, text=True,
                           timeout=timeout)
        assert p.returncode == 0, f"postroom {' '.join(args)} on {self.name}: {p.stdout}{p.stderr}"
        return p.stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Launch the process; :meth:`wait_listening` waits for it."""
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Its own process group, so that SIGKILL reaches the supervisor and its worker at once.
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([*PY, "-c", str(self.cfg), "serve"], stdout=subprocess.DEVNULL,
                                         stderr=log, start_new_session=True)

    def wait_listening(self, timeout: float = 60) -> None:
        marks = [f"listening {p} {self.ip}:{port} " for p, port in self.ports.items()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}"
            text = self.log()[self._log_start:]
            if all(m in text for m in marks):
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start listening:\n{self.log()[-4000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a power cut of this machine."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self.proc = None


class NodeSet:
    """Three nodes (or ``count``) on the database ``pg_url``, with the accounts ``users`` (local parts)."""

    def __init__(self, root: Path, pg_url: str, resolver: str, sink_port: int, users: tuple[str, ...],
                 count: int = 3) -> None:
        from postroom.net.tls import write_self_signed

        root.mkdir(parents=True, exist_ok=True)
        tls = (root / "cert.pem", root / "key.pem")
        write_self_signed(tls[0], tls[1], f"mail.{DOMAIN}")
        self.nodes = [Node(root, i + 1, NODE_IPS[i], pg_url, tls, resolver, sink_port) for i in range(count)]
        first = self.nodes[0]
        # The first command creates the schema (the store migrates when it opens).
        for user in users:
            first.cli("user", "add", f"{user}@{DOMAIN}", "--password", PASSWORD)

    def start(self) -> None:
        for n in self.nodes:  # together: the nodes' start-up checks of the schema run concurrently
            n.start()
        for n in self.nodes:
            n.wait_listening()

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()

    def errors(self, limit: int = 5) -> str:
        """The last ``limit`` errors the nodes logged with a traceback: the log line and the
        traceback's last lines (for assertion messages: why a client got what it got)."""
        found: list[str] = []
        for n in self.nodes:
            lines = n.log().splitlines()
            starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (") and i > 0
                      and _LOG_LINE.match(lines[i - 1])]
            for i in starts:
                end = next((k for k in range(i, len(lines)) if _LOG_LINE.match(lines[k])), len(lines))
                found.append(f"{n.name}: {lines[i - 1]}\n  " + "\n  ".join(lines[max(i, end - 3):end]))
        return "\n".join(found[-limit:])

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.nodes)


# -- the remote MX: a sink that records what it receives ------------------------------------------
@dataclass
class Received:
    peer: str
    message_id: str
    data: bytes


class Sink:
    """aiosmtpd on ``SINK_IP``: accepts everything and records peer address and Message-ID."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # aiosmtpd hook
        data = envelope.original_content or envelope.content
        m = re.search(rb"^Message-ID:\s*(<[^>\r\n]*>)", data, re.MULTILINE | re.IGNORECASE)
        with self._lock:
            self.received.append(Received(session.peer[0], m.group(1).decode() if m else "", data))
        return "250 2.0.0 Ok"

    def start(self) -> None:
        self._controller = Controller(self, hostname=SINK_IP, port=self.port, ready_timeout=10)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def ids(self) -> Counter[str]:
        return Counter(r.message_id for r in self.snapshot())


# -- messages and clients -----------------------------------------------------------------------
def message(mid: str, size: int = 3000) -> bytes:
    """A message with a unique Message-ID, lines needing dot-stuffing, and a body of ``size`` bytes."""
    head = (f"From: load@{DOMAIN}\r\nTo: someone@{DOMAIN}\r\nSubject: {mid}\r\n"
            f"Message-ID: <{mid}@scaleout>\r\n\r\n").encode()
    line = f".{mid} line of the body, long enough to look like mail text\r\n".encode()
    return head + line * max(1, size // len(line))


def message_id(raw: bytes) -> str | None:
    m = re.search(rb"^Message-ID:\s*<([^>\r\n]*)@scaleout>", raw, re.MULTILINE | re.IGNORECASE)
    return m.group(1).decode() if m else None


def smtp_send(node: Node, rcpt: str, raw: bytes, sender: str = f"load@{DOMAIN}") -> None:
    with smtplib.SMTP(node.ip, node.ports["smtp"], timeout=CLIENT_TIMEOUT, source_address=("127.0.0.1", 0)) as s:
        s.sendmail(sender, [rcpt], raw)


def imap_login(node: Node, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4(node.ip, node.ports["imap"], timeout=CLIENT_TIMEOUT)
    c.login(f"{user}@{DOMAIN}", PASSWORD)
    return c


@dataclass
class Ledger:
    """What the load clients tried, what was acknowledged, and how the failures looked."""

    attempted: dict[str, bytes] = field(default_factory=dict)
    acked: dict[str, bytes] = field(default_factory=dict)
    acked_at: dict[str, float] = field(default_factory=dict)
    temporary: Counter[str] = field(default_factory=Counter)  # kind of temporary failure → count
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tried(self, mid: str, raw: bytes) -> None:
        with self.lock:
            self.attempted[mid] = raw

    def ok(self, mid: str) -> None:
        with self.lock:
            self.acked[mid] = self.attempted[mid]
            self.acked_at[mid] = time.monotonic()

    def temp(self, kind: str) -> None:
        with self.lock:
            self.temporary[kind] += 1

    def bad(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def acked_after(self, t: float) -> int:
        with self.lock:
            return sum(1 for v in self.acked_at.values() if v > t)


class _LoadThread(threading.Thread):
    def __init__(self, node: Node, user: str, ledger: Ledger, prefix: str, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=prefix)
        self.node, self.user, self.ledger, self.prefix, self.stop_event = node, user, ledger, prefix, stop
        self.n = 0
        self.last_ok = 0.0

    def next_message(self) -> tuple[str, bytes]:
        self.n += 1
        mid = f"{self.prefix}-{self.n}"
        raw = message(mid, 1500 + (self.n * 997) % 6000)
        self.ledger.tried(mid, raw)
        return mid, raw

    def pause(self) -> None:
        time.sleep(0.05)


class SmtpLoad(_LoadThread):
    """One SMTP client delivering to ``user`` on ``node`` over one connection, reconnecting after failures."""

    def run(self) -> None:
        s: smtplib.SMTP | None = None
        while not self.stop_event.is_set():
            try:
                if s is None:
                    s = smtplib.SMTP(self.node.ip, self.node.ports["smtp"], timeout=CLIENT_TIMEOUT,
                                     source_address=("127.0.0.1", 0))
                mid, raw = self.next_message()
                s.sendmail(f"load@{DOMAIN}", [f"{self.user}@{DOMAIN}"], raw)
                self.ledger.ok(mid)
                self.last_ok = time.monotonic()
            except smtplib.SMTPRecipientsRefused as e:
                self._reply(next(c for c, _ in e.recipients.values()), str(e.recipients))
                self._close(s)
                s = None
            except smtplib.SMTPResponseException as e:
                self._reply(e.smtp_code, repr(e.smtp_error))
                self._close(s)
                s = None
            except (smtplib.SMTPServerDisconnected, ConnectionError, EOFError) as e:
                self.ledger.temp(f"smtp {type(e).__name__}")
                self._close(s)
                s = None
            except TimeoutError:
                self.ledger.bad(f"{self.prefix}: SMTP timeout after {CLIENT_TIMEOUT}s on {self.node.name}")
                self._close(s)
                s = None
            except OSError as e:
                self.ledger.temp(f"smtp {type(e).__name__}")
                self._close(s)
                s = None
        self._close(s)

    def _reply(self, code: int, text: str) -> None:
        if 400 <= code < 500:
            self.ledger.temp(f"smtp {code}")
        else:
            self.ledger.bad(f"{self.prefix} on {self.node.name}: {code} {text}")

    def _close(self, s: smtplib.SMTP | None) -> None:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        self.pause()


class AppendLoad(_LoadThread):
    """One IMAP client APPENDing to ``mailbox`` of ``user`` on ``node``, reconnecting after failures."""

    mailbox = "INBOX"

    def run(self) -> None:
        c: imaplib.IMAP4 | None = None
        while not self.stop_event.is_set():
            try:
                if c is None:
                    c = imaplib.IMAP4(self.node.ip, self.node.ports["imap"], timeout=CLIENT_TIMEOUT)
                    c.login(f"{self.user}@{DOMAIN}", PASSWORD)
                mid, raw = self.next_message()
                typ, data = c.append(self.mailbox, None, None, raw)
                if typ == "OK":
                    self.ledger.ok(mid)
                    self.last_ok = time.monotonic()
                elif TEMP_IMAP.search(b" ".join(d for d in data if isinstance(d, bytes))):
                    self.ledger.temp("imap NO [UNAVAILABLE]")
                    self.pause()
                else:
                    self.ledger.bad(f"{self.prefix} on {self.node.name}: APPEND {typ} {data!r}")
                    self.pause()
            except imaplib.IMAP4.abort:  # BYE or a dropped connection
                self.ledger.temp("imap abort")
                self._close(c)
                c = None
            except imaplib.IMAP4.error as e:  # a tagged NO to LOGIN, or BAD
                if TEMP_IMAP.search(str(e).encode()):
                    self.ledger.temp("imap NO [UNAVAILABLE]")
                else:
                    self.ledger.bad(f"{self.prefix} on {self.node.name}: {e}")
                self._close(c)
                c = None
            except TimeoutError:
                self.ledger.bad(f"{self.prefix}: IMAP timeout after {CLIENT_TIMEOUT}s on {self.node.name}")
                self._close(c)
                c = None
            except (ConnectionError, EOFError, OSError) as e:
                self.ledger.temp(f"imap {type(e).__name__}")
                self._close(c)
                c = None
        if c is not None:
            try:
                c.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def _close(self, c: imaplib.IMAP4 | None) -> None:
        if c is not None:
            try:
                c.shutdown()
            except OSError:
                pass
        self.pause()


class Load:
    """SMTP and APPEND clients spread over the nodes; ``with Load(...)`` runs them until the block ends."""

    def __init__(self, nodes: list[Node], user: str, prefix: str, per_node: int = 2) -> None:
        self.ledger = Ledger()
        self.stop_event = threading.Event()
        self.threads: list[_LoadThread] = []
        for node in nodes:
            for k in range(per_node):
                self.threads.append(SmtpLoad(node, user, self.ledger, f"{prefix}-s{node.index}{k}", self.stop_event))
                self.threads.append(AppendLoad(node, user, self.ledger, f"{prefix}-a{node.index}{k}",
                                               self.stop_event))

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(CLIENT_TIMEOUT + 10)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"load clients still blocked: {stuck}"


def fetch_all(node: Node, user: str, mailbox: str = "INBOX") -> list[tuple[int, bytes]]:
    """(RFC822.SIZE, bytes) of every message of ``mailbox``, read through IMAP on ``node``."""
    c = imap_login(node, user)
    try:
        typ, data = c.select(mailbox, readonly=True)
        assert typ == "OK", data
        if int(data[0] or 0) == 0:
            return []
        typ, fetched = c.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK", fetched
        out: list[tuple[int, bytes]] = []
        for item in fetched:
            if isinstance(item, tuple):
                m = re.search(rb"RFC822\.SIZE (\d+)", item[0])
                assert m, item[0]
                out.append((int(m.group(1)), item[1]))
        return out
    finally:
        c.logout()


def check_mailbox(node: Node, user: str, ledger: Ledger) -> tuple[int, list[str]]:
    """Compare the mailbox with the ledger: every acknowledged message is there once and whole,
    and every message there is one that a client sent, whole (SMTP adds trace headers in front,
    APPEND stores the bytes as sent). Returns (messages in the mailbox, problems)."""
    problems: list[str] = []
    seen: Counter[str] = Counter()
    stored = fetch_all(node, user)
    for size, raw in stored:
        if size != len(raw):
            problems.append(f"RFC822.SIZE {size} but {len(raw)} bytes")
        mid = message_id(raw)
        if mid is None or mid not in ledger.attempted:
            problems.append(f"a message nobody sent: {raw[:200]!r}")
            continue
        seen[mid] += 1
        sent = ledger.attempted[mid]
        if not (raw == sent or (raw.endswith(b"\r\n" + sent) and b"\r\nReceived: " in b"\r\n" + raw[:-len(sent)])):
            problems.append(f"{mid}: stored bytes differ from those sent ({len(raw)} vs {len(sent)})")
    problems += [f"{mid}: stored {k} times" for mid, k in seen.items() if k > 1]
    problems += [f"{mid}: acknowledged but not in the mailbox" for mid in ledger.acked if mid not in seen]
    return len(stored), problems
