"""One SMTP connection's defences, asked in a fixed order at every stage.

The SMTP session (:mod:`postroom.smtp.proto`) stays I/O-free and knows nothing of the
defences: its backend (:class:`postroom.smtp.delivery.StoreBackend`) hands each stage to
the connection's :class:`Guard`, which asks each :class:`Check` in turn and stops at the
first refusal. The order is the cost order: counters in memory first, then DNS, then
scanners and milters, so that a flood is refused before it costs a DNS query or a scan.

A check that is not configured is never built (its factory returns ``None``), so an
installation without scanners pays one empty loop per stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import log

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..net.connection import Connection
    from ..smtp.replies import Reply
    from ..smtp.transaction import Peer, Rcpt, Transaction

logger = log.get("abuse")


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """What is known of a client before it says anything."""

    ip: str  # "" for postroom sendmail (never guarded)
    listener: str  # the listener's name
    protocol: str  # "smtp" or "submission"
    session_id: str
    trusted: bool  # the IP is in [smtp] trusted_networks
    tag: str  # log prefix: "listener[sid] ip"


@dataclass(slots=True)
class Content:
    """The message at the end of DATA, as the checks leave it for delivery.

    ``message`` is the header and body as received (CRLF line ends), without our trace
    fields; a milter may replace it. Fields in ``headers`` are put on top of it once,
    after every check, in the order the checks added them.
    """

    message: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Where local copies go when nothing else decides (Sieve's implicit keep): "Junk"
    # for a message a scanner says is spam; None leaves it to mail authentication.
    mailbox: str | None = None
    discard: bool = False  # accept (250) and deliver to nobody (a milter's DISCARD)
    notes: list[str] = field(default_factory=list)  # "name=result" for the delivery log line
    queue_id: str = ""  # the delivery's id, for scanners' logs (rspamd's Queue-Id)

    def add_header(self, name: str, value: str) -> None:
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError("header fields are one line each")
        self.headers.append((name, value))

    def final(self) -> bytes:
        """The message with the added fields on top."""
        if not self.headers:
            return self.message
        top = b"".join(f"{n}: {v}\r\n".encode("utf-8", "surrogateescape") for n, v in self.headers)
        return top + self.message


class Check:
    """One defence's view of one connection. Every stage passes unless overridden; a
    :class:`Reply` refuses the command (a reply with ``close`` ends the session)."""

    name = "check"

    async def connect(self, conn: Connection) -> Reply | None:
        return None

    async def helo(self, peer: Peer) -> Reply | None:
        return None

    async def mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        return None

    async def rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        return None

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        return None

    def auth_failed(self, user: str) -> None:
        """A failed AUTH (the password check itself is throttled by postroom.auth)."""

    def replied(self, reply: Reply) -> None:
        """Every reply the session sends (error counting)."""

    async def close(self) -> None:
        """The connection is over."""


Factory = Callable[["ServerContext", ConnInfo], "Check | None"]


def _factories() -> list[Factory]:
    """The defences in the order they are asked (see the module doc)."""
    from . import attachments, clamav, rspamd, screen
    from . import limits as ratelimit
    from .milter import check as milter_check

    return [
        ratelimit.for_connection,
        screen.for_connection,
        attachments.for_connection,
        clamav.for_connection,
        rspamd.for_connection,
        milter_check.for_connection,
    ]


_factory_list: tuple[Factory, ...] | None = None  # _factories(), made at the first connection


class Guard:
    """The checks of one connection; empty for ``postroom sendmail``."""

    __slots__ = ("checks", "info")

    def __init__(self, checks: list[Check], info: ConnInfo | None = None) -> None:
        self.checks = checks
        self.info = info

    @classmethod
    def for_connection(cls, ctx: ServerContext, info: ConnInfo) -> Guard:
        global _factory_list
        factories = _factory_list
        if factories is None:  # once a process: the imports and the list cost more than the checks' factories
            factories = _factory_list = tuple(_factories())
        checks = []
        for make in factories:
            c = make(ctx, info)
            if c is not None:
                checks.append(c)
        return cls(checks, info)

    def __bool__(self) -> bool:
        return bool(self.checks)

    async def connect(self, conn: Connection) -> Reply | None:
        for c in self.checks:
            if (reply := await c.connect(conn)) is not None:
                return self._refused(c, "connect", reply)
        return None

    async def helo(self, peer: Peer) -> Reply | None:
        for c in self.checks:
            if (reply := await c.helo(peer)) is not None:
                return self._refused(c, "helo", reply)
        return None

    async def mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        for c in self.checks:
            if (reply := await c.mail(peer, txn)) is not None:
                return self._refused(c, "mail", reply)
        return None

    async def rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        for c in self.checks:
            if (reply := await c.rcpt(peer, txn, rcpt)) is not None:
                return self._refused(c, "rcpt", reply)
        return None

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        for c in self.checks:
            if (reply := await c.data(peer, txn, content)) is not None:
                return self._refused(c, "data", reply)
            if content.discard:
                break
        return None

    def auth_failed(self, user: str) -> None:
        for c in self.checks:
            c.auth_failed(user)

    def replied(self, reply: Reply) -> None:
        for c in self.checks:
            c.replied(reply)

    async def close(self) -> None:
        for c in self.checks:
            try:
                await c.close()
            except Exception:  # one check's cleanup must not stop the others'
                logger.exception("%s %s close failed", self.info.tag if self.info else "", c.name)

    def _refused(self, c: Check, stage: str, reply: Reply) -> Reply:
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s %s refused at %s: %d %s %s", self.info.tag if self.info else "", c.name, stage,
                        reply.code, reply.status or "", reply.lines[0] if reply.lines else "")
        return reply


NO_GUARD = Guard([])
