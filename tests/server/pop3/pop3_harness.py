"""A real Postroom runtime for the POP3 server tests (the fixture is in conftest.py).

The server runs in its own thread and event loop (``postroom.server.running``), so
tests can use the blocking stdlib ``poplib`` as a real client. Each test makes its
own account, so tests in one module never see each other's mail.
"""

from __future__ import annotations

import itertools
import poplib
import ssl
import sys
from pathlib import Path
from typing import Any


from threaded_runtime import ThreadedRuntime

from postroom.auth import hash_password
from postroom.storage.models import Account, DeliveryTarget, FlagOp

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Postroom peer, shared with the benches
from postroom_peer import DOMAIN, send_over_smtp, write_test_config  # noqa: E402

_names = itertools.count(1)


def write_config(d: Path, pop3: str = "", extra_listeners: tuple[str, ...] = ("smtp", "imap")) -> Path:
    return write_test_config(d, "pop3", pop3, extra_listeners)


class Harness(ThreadedRuntime):
    def __init__(self, cfg_path: Path) -> None:
        super().__init__(cfg_path)

    # -- data ------------------------------------------------------------------
    def new_user(self, password: str = "secret", apop: str | None = None) -> Account:
        address = f"user{next(_names)}@{DOMAIN}"
        acc = self.call(self.store.create_account(address, hash_password(password)))
        if apop is not None:
            self.call(self.store.set_apop_secret(address, apop))
            acc = self.call(self.store.get_account(address))
        return acc

    def deliver(self, acc: Account, raw: bytes) -> int:
        (d,) = self.call(self.store.deliver(raw, [DeliveryTarget(acc.id)]))
        return d.uid

    def deliver_by_smtp(self, acc: Account, raw: bytes) -> bool:
        """Deliver over the SMTP listener when this build has SMTP; False if it has not."""
        return send_over_smtp(self.ports, acc.address, raw)

    def imap_delete(self, acc: Account, uids: list[int], expunge: bool = True) -> None:
        """What an IMAP client does: flag \\Deleted, then (optionally) expunge."""
        box = self.call(self.store.get_mailbox(acc.id, "INBOX"))
        self.call(self.store.store_flags(box.id, uids, FlagOp.ADD, frozenset({"\\Deleted"})))
        if expunge:
            self.call(self.store.expunge(box.id, uids))

    def inbox(self, acc: Account) -> list[Any]:
        box = self.call(self.store.get_mailbox(acc.id, "INBOX"))
        return self.call(self.store.list_messages(box.id))

    # -- clients ---------------------------------------------------------------
    def pop3(self, *, stls: bool = True) -> poplib.POP3:
        c = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=30)
        if stls:
            c.stls(context=client_tls())
        return c

    def pop3s(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], timeout=30, context=client_tls())

    def login(self, acc: Account, password: str = "secret") -> poplib.POP3:
        c = self.pop3()
        c.user(acc.address)
        c.pass_(password)
        return c


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def message(n: int, body: bytes = b"") -> bytes:
    return (f"From: sender@outside.test\r\nTo: someone@{DOMAIN}\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@outside.test>\r\n\r\n").encode() + (body or f"body {n}\r\n".encode())
