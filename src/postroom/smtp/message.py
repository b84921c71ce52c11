"""Headers Postroom adds to a message: trace fields and submission fix-ups.

RFC 5321 §4.4: each SMTP server prepends a ``Received`` line; the final delivery
adds ``Return-Path`` with the envelope sender. RFC 6409 §8.2/§8.3 (and Postfix's
cleanup) let a submission server add a missing ``Date`` and ``Message-ID``.
The original message bytes are never changed otherwise.
"""

from __future__ import annotations

import re
import secrets
import time
from email.utils import formatdate

from .transaction import Peer

_DATE = re.compile(rb"(?im)^date[ \t]*:")
_MSGID = re.compile(rb"(?im)^message-id[ \t]*:")


def with_protocol(peer: Peer, smtputf8: bool) -> str:
    """RFC 3848 / RFC 6531 §3.7.3 "with" keyword."""
    if smtputf8:
        base = "UTF8SMTP"
    else:
        base = "ESMTP" if peer.esmtp else "SMTP"
    if peer.tls:
        base += "S"
    if peer.login:
        base += "A"
    return base


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() and c not in "()\\;" else "?" for c in text)[:255]


_now_text: tuple[int, str] = (0, "")


def now_date() -> str:
    """RFC 5322 date-time of now, local time; formatted once a second (it costs more than the
    rest of the trace field together)."""
    global _now_text
    second = int(time.time())
    if _now_text[0] != second:
        _now_text = (second, formatdate(second, localtime=True))
    return _now_text[1]


def received(peer: Peer, hostname: str, queue_id: str, recipients: list[str], smtputf8: bool,
             date: str | None = None) -> bytes:
    """The Received header line (folded), ending with CRLF."""
    date = date or now_date()
    lines = []
    if peer.ip:
        lines.append(f"Received: from {_clean(peer.helo) or 'unknown'} ([{peer.ip}])")
        lines.append(f"\tby {hostname} (Postroom) with {with_protocol(peer, smtputf8)} id {queue_id}")
    else:  # postroom sendmail: a local program
        lines.append(f"Received: by {hostname} (Postroom, from local submission) id {queue_id}")
    if peer.tls:
        lines.append(f"\t(using {peer.tls})")
    if len(recipients) == 1:  # several would disclose Bcc recipients to each other
        lines.append(f"\tfor <{recipients[0]}>; {date}")
    else:
        lines[-1] += f"; {date}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path(sender: str) -> bytes:
    return f"Return-Path: <{sender}>\r\n".encode("utf-8")


def header_block(body: bytes) -> bytes:
    end = body.find(b"\r\n\r\n")
    if body.startswith(b"\r\n"):
        return b""
    return body if end < 0 else body[: end + 2]


def add_missing(body: bytes, hostname: str, queue_id: str) -> bytes:
    """Prepend ``Date`` and ``Message-ID`` when the message has none."""
    head = header_block(body)
    extra = b""
    if not _DATE.search(head):
        extra += f"Date: {now_date()}\r\n".encode()
    if not _MSGID.search(head):
        extra += f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{hostname}>\r\n".encode()
    if extra and not head:
        extra += b"\r\n" if not body.startswith(b"\r\n") else b""
    return extra + body
