"""ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from a stored :class:`Envelope`.

Values are the raw header text (encoded words stay encoded, RFC 9051 §7.5.2).
String forms follow Dovecot: subject and display names go through
:func:`imap_string_for_humans` (whitespace collapsed), date/message-id/
in-reply-to through :func:`imap_nstring_nolf`.
"""

from __future__ import annotations

import base64
import dataclasses

from .imapfmt import imap_nstring, imap_nstring_nolf, imap_string_for_humans
from .model import Address, Envelope, ParsedMessage

__all__ = ["envelope", "envelope_of", "downgraded", "encoded_words"]


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


def envelope(p: ParsedMessage, downgrade: bool = False) -> bytes:
    """FETCH ENVELOPE value of the whole message, e.g. ``("date" "subject" ((...)) ...)``;
    with ``downgrade``, UTF-8 header text made ASCII (see :func:`downgraded`)."""
    return envelope_of(downgraded(p.envelope) if downgrade else p.envelope)


# -- RFC 6855 §7 / RFC 6858 §3: UTF-8 headers for a client that did not ENABLE UTF8=ACCEPT ----

_WORD_OCTETS = 45  # base64 of 45 octets is 60 characters: an encoded word stays under 75 (RFC 2047 §2)


def _is_utf8(s: str | None) -> bool:
    """Non-ASCII text that was valid UTF-8 (8-bit octets that were not come back as
    surrogates from the surrogateescape decoding and are left alone: no charset to name)."""
    if s is None or s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encoded_words(s: str) -> str:
    """``s`` as RFC 2047 ``=?utf-8?b?…?=`` words joined by spaces, none split inside a character."""
    words: list[str] = []
    chunk = b""
    for ch in s:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > _WORD_OCTETS:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += b
    if chunk:
        words.append(chunk.decode("utf-8"))
    return " ".join("=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words)


def _downgrade_addrs(addrs: tuple[Address, ...] | None) -> tuple[Address, ...] | None:
    if not addrs:
        return addrs
    out: list[Address] = []
    for a in addrs:
        if _is_utf8(a.mailbox) or _is_utf8(a.host):
            # RFC 6858 §3: an address that cannot be ASCII becomes an empty group named by
            # the encoded original: "=?utf-8?b?…?= :;" (group start and end, RFC 3501 §7.4.2).
            whole = f"{a.name} <{a.mailbox}@{a.host}>" if a.name else f"{a.mailbox}@{a.host}"
            out += [Address(None, None, encoded_words(whole), None), Address(None, None, None, None)]
        elif _is_utf8(a.name):
            out.append(dataclasses.replace(a, name=encoded_words(a.name)))  # type: ignore[arg-type]
        else:
            out.append(a)
    return tuple(out)


def downgraded(env: Envelope) -> Envelope:
    """``env`` with its UTF-8 subject and display names as encoded words and UTF-8 addresses
    as empty groups (RFC 6858 §3), for a session without UTF8=ACCEPT (RFC 6855 §7: the server
    keeps to RFC 5322 on the wire for it). Text that is not valid UTF-8 is left as it is."""
    if not any(_is_utf8(x) for x in (env.subject,)) and not any(
            _is_utf8(a.name) or _is_utf8(a.mailbox) or _is_utf8(a.host)
            for lst in (env.from_, env.sender, env.reply_to, env.to, env.cc, env.bcc) for a in lst or ()):
        return env
    return dataclasses.replace(
        env,
        subject=encoded_words(env.subject) if _is_utf8(env.subject) else env.subject,  # type: ignore[arg-type]
        from_=_downgrade_addrs(env.from_), sender=_downgrade_addrs(env.sender),
        reply_to=_downgrade_addrs(env.reply_to), to=_downgrade_addrs(env.to), cc=_downgrade_addrs(env.cc),
        bcc=_downgrade_addrs(env.bcc))
