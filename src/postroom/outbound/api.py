"""The hand-off from SMTP (and ``postroom sendmail``) to the outbound queue.

SMTP calls :meth:`OutboundQueue.enqueue` for recipients that are not local; the
queue must have the message durably (fsync + commit) before it returns, because
the client gets its 250 right after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    # RFC 3461 DSN parameters, kept for the delivery status notifications.
    notify: tuple[str, ...] = ()  # e.g. ("SUCCESS", "FAILURE") or ("NEVER",); () = default
    orcpt: str | None = None  # "rfc822;user@example.org" as given (xtext decoded)


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # "" is the null reverse-path (bounces): never bounce to it
    recipients: tuple[Recipient, ...]
    ret: str | None = None  # "FULL" | "HDRS" (RFC 3461 §4.3)
    envid: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False  # BODY=8BITMIME was given
    received_from: str = ""  # for logs: the client's host/IP
    extra: dict[str, str] = field(default_factory=dict)


class OutboundQueue(Protocol):
    async def enqueue(self, envelope: Envelope, raw: bytes) -> str:
        """Queue durably and return the queue id (for logs and the 250 reply)."""
        ...


async def enqueue_all(queue: OutboundQueue | None, envelope: Envelope, raw: bytes) -> str:
    if queue is None:
        raise RuntimeError("no outbound queue configured")
    return await queue.enqueue(envelope, raw)


def recipients(addresses: Sequence[str]) -> tuple[Recipient, ...]:
    return tuple(Recipient(a) for a in addresses)
