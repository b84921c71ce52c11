"""An in-memory stand-in for the Store, just what POP3 uses, for sans-I/O tests."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Sequence

from postroom.auth import Authenticator
from postroom.config import from_dict
from postroom.context import ServerContext
from postroom.errors import MaildropLocked
from postroom.pop3.commands import dispatch
from postroom.pop3.proto import Response
from postroom.pop3.session import Session
from postroom.pop3.settings import Pop3Settings
from postroom.storage.models import Account, FlagOp, Mailbox, MessageInfo


class FakeStore:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.mailboxes: dict[int, Mailbox] = {}
        self.messages: dict[int, dict[int, tuple[MessageInfo, bytes]]] = {}
        self.locked: set[int] = set()
        self.fail_reads = False

    async def get_account(self, address: str) -> Account | None:
        return self.accounts.get(address.lower())

    async def set_password_hash(self, address: str, password_hash: str) -> None:
        a = self.accounts[address]
        self.accounts[address] = Account(a.id, a.address, password_hash, a.apop_secret)

    def add_account(self, address: str, password: str, apop_secret: str | None = None) -> Account:
        acc = Account(len(self.accounts) + 1, address, "{PLAIN}" + password, apop_secret)
        self.accounts[address] = acc
        self.mailboxes[acc.id] = Mailbox(acc.id, acc.id, "INBOX", 1234, 1, 1)
        self.messages[acc.id] = {}
        return acc

    def add_message(self, account: Account, raw: bytes, flags: frozenset[str] = frozenset()) -> int:
        mb = self.mailboxes[account.id]
        uid = mb.uidnext
        self.mailboxes[account.id] = Mailbox(mb.id, mb.account_id, mb.name, mb.uidvalidity, uid + 1, uid)
        info = MessageInfo(mb.id, uid, uid, flags, datetime.now(timezone.utc), len(raw), f"b{uid}")
        self.messages[mb.id][uid] = (info, raw)
        return uid

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        return self.mailboxes.get(account_id) if name.upper() == "INBOX" else None

    async def list_messages(self, mailbox_id: int) -> list[MessageInfo]:
        return [m for m, _ in sorted(self.messages[mailbox_id].values(), key=lambda t: t[0].uid)]

    async def read_message(self, msg: MessageInfo) -> bytes:
        if self.fail_reads or msg.uid not in self.messages[msg.mailbox_id]:
            raise FileNotFoundError(msg.blob)
        return self.messages[msg.mailbox_id][msg.uid][1]

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], op: FlagOp,
                          flags: frozenset[str], unchangedsince: int | None = None) -> None:
        assert op is FlagOp.ADD
        box = self.messages[mailbox_id]
        for uid in uids:
            if uid in box:
                m, raw = box[uid]
                box[uid] = (MessageInfo(m.mailbox_id, m.uid, m.modseq + 1, m.flags | flags,
                                        m.internaldate, m.size, m.blob), raw)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        box = self.messages[mailbox_id]
        gone = [u for u in (uids if uids is not None else list(box)) if u in box and box[u][0].deleted]
        for u in gone:
            del box[u]
        return gone

    def flags(self, account: Account, uid: int) -> frozenset[str]:
        return self.messages[account.id][uid][0].flags

    @contextlib.asynccontextmanager
    async def _lock(self, account_id: int) -> AsyncIterator[None]:
        if account_id in self.locked:
            raise MaildropLocked()
        self.locked.add(account_id)
        try:
            yield
        finally:
            self.locked.discard(account_id)

    def lock_maildrop(self, account_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lock(account_id)


def make_ctx(store: FakeStore) -> ServerContext:
    cfg = from_dict({"hostname": "mail.example.test", "domains": ["example.test"]}, Path("/tmp/x.toml"))
    auth = Authenticator(store, max_failures_per_ip=5, base_delay=0.0)  # type: ignore[arg-type]
    return ServerContext(config=cfg, store=store, tls=None, auth=auth)  # type: ignore[arg-type]


class Transcript:
    """Drive one session with lines, as the server glue would, and collect the bytes."""

    def __init__(self, ctx: ServerContext, settings: Pop3Settings | None = None, *,
                 tls_active: bool = True, tls_available: bool = True) -> None:
        self.session = Session(ctx, settings or Pop3Settings(), "192.0.2.1", tls_active=tls_active,
                               tls_available=tls_available)
        self.last: Response | None = None

    async def send(self, line: str | bytes) -> bytes:
        data = line if isinstance(line, bytes) else line.encode() + b"\r\n"
        self.last = await dispatch(self.session, data)
        return self.last.encode()

    async def login(self, user: str = "alice@example.test", password: str = "secret") -> bytes:
        await self.send(f"USER {user}")
        return await self.send(f"PASS {password}")
