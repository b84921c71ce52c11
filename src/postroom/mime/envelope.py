"""ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from a stored :class:`Envelope`.

Values are the raw header text (encoded words stay encoded, RFC 9051 §7.5.2).
String forms follow Dovecot: subject and display names go through
:func:`imap_string_for_humans` (whitespace collapsed), date/message-id/
in-reply-to through :func:`imap_nstring_nolf`.
"""

from __future__ import annotations

from .imapfmt import imap_nstring, imap_nstring_nolf, imap_string_for_humans
from .model import Address, Envelope, ParsedMessage

__all__ = ["envelope", "envelope_of"]


def _addr(a: Address) -> bytes:
    name = b"NIL" if a.name is None else imap_string_for_humans(a.name)
    return b"(" + b" ".join((name, imap_nstring(a.adl), imap_nstring(a.mailbox), imap_nstring(a.host))) + b")"


def _addr_list(addrs: tuple[Address, ...] | None) -> bytes:
    # RFC 9051 §7.5.2: an empty list is NIL, never "()".
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(_addr(a) for a in addrs) + b")"


def envelope_of(env: Envelope) -> bytes:
    """The parenthesized ENVELOPE list for one message-level part."""
    # RFC 9051 §7.5.2: Sender and Reply-To default to From when absent.
    sender = env.sender if env.sender else env.from_
    reply_to = env.reply_to if env.reply_to else env.from_
    fields = (
        imap_nstring_nolf(env.date),
        b"NIL" if env.subject is None else imap_string_for_humans(env.subject),
        _addr_list(env.from_),
        _addr_list(sender),
        _addr_list(reply_to),
        _addr_list(env.to),
        _addr_list(env.cc),
        _addr_list(env.bcc),
        imap_nstring_nolf(env.in_reply_to),
        imap_nstring_nolf(env.message_id),
    )
    return b"(" + b" ".join(fields) + b")"


def envelope(p: ParsedMessage) -> bytes:
    """FETCH ENVELOPE value of the whole message, e.g. ``("date" "subject" ((...)) ...)``."""
    return envelope_of(p.envelope)
