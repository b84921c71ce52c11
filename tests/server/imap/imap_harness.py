"""A real Postroom runtime for the IMAP server tests, in its own thread and loop.

Tests use blocking clients (``imaplib``, ``imapclient``) against it; each test makes
its own account so tests in one module never see each other's mail.
"""

from __future__ import annotations

import imaplib
import itertools
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from threaded_runtime import ThreadedRuntime

from postroom.auth import hash_password
from postroom.storage.models import Account, DeliveryTarget

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Postroom peer, shared with the benches
from postroom_peer import DOMAIN, send_over_smtp, write_test_config  # noqa: E402

PASSWORD = "secret"
_names = itertools.count(1)


def write_config(d: Path, imap: str = "allow_plaintext_auth = true") -> Path:
    return write_test_config(d, "imap", imap, extra_listeners=("smtp",))


def tls_client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Harness(ThreadedRuntime):
    def __init__(self, cfg_path: Path) -> None:
        super().__init__(cfg_path)
        self.port = self.ports["imap"]

    # -- data ------------------------------------------------------------------
    def new_user(self, password: str = PASSWORD) -> Account:
        address = f"user{next(_names)}@{DOMAIN}"
        return self.call(self.store.create_account(address, hash_password(password)))

    def deliver(self, acc: Account, raw: bytes, mailbox: str = "INBOX", flags: frozenset[str] = frozenset()) -> int:
        (d,) = self.call(self.store.deliver(raw, [DeliveryTarget(acc.id, mailbox, flags)]))
        return d.uid

    def deliver_by_smtp(self, acc: Account, raw: bytes) -> bool:
        return send_over_smtp(self.ports, acc.address, raw)

    # -- clients ---------------------------------------------------------------
    def imaplib(self, acc: Account | None = None, select: str | None = None) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        if acc is not None:
            c.login(acc.address, PASSWORD)
            if select:
                c.select(select)
        return c

    def imapclient(self, acc: Account | None = None, select: str | None = None) -> Any:
        from imapclient import IMAPClient

        c = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        if acc is not None:
            c.login(acc.address, PASSWORD)
            if select:
                c.select_folder(select)
        return c

    def raw(self) -> "RawClient":
        return RawClient("127.0.0.1", self.port)


class RawClient:
    """Byte-level transcripts for malformed input."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def until_tagged(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    def cmd(self, data: bytes) -> list[bytes]:
        tag = data.split(b" ", 1)[0]
        self.send(data if data.endswith(b"\r\n") else data + b"\r\n")
        return self.until_tagged(tag)

    def close(self) -> None:
        self.sock.close()


def msg(subject: str = "Hello", body: str = "Body text\r\n", frm: str = "Alice <alice@outside.test>",
        to: str = "bob@example.test", extra: str = "") -> bytes:
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 5 Feb 2024 10:11:12 +0100\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@outside.test>\r\n{extra}\r\n{body}").encode()


def mbsyncrc(path: Path, port: int, user: str, local: Path, patterns: str) -> Path:
    """An mbsync config syncing ``patterns`` of ``user``'s mailboxes with the Maildir ``local``,
    both ways, expunges included (the mbsync and sync-client tests)."""
    path.write_text(f"""
IMAPAccount postroom
Host 127.0.0.1
Port {port}
User {user}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account postroom

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns {patterns}
Create Both
Expunge Both
SyncState *
Sync All
""")
    return path
