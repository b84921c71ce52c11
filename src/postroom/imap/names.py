"""Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3), or UTF-8 once the session
has sent ENABLE UTF8=ACCEPT (RFC 6855 §3).

Which one applies is a property of the connection, but names are read by the argument
parsers and written by a handful of handlers that otherwise need no session. Rather than
thread a flag through every parser and formatter, :mod:`.dispatch` sets a context
variable at the start of each command (``set_utf8``); each connection runs in its own
asyncio task, so the value is the connection's own. Outside a command (unit tests,
tools) it is off: modified UTF-7, as before.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from . import mutf7

_UTF8: ContextVar[bool] = ContextVar("imap_utf8_accept", default=False)

# RFC 6855 §3: names must be Net-Unicode (RFC 5198) without C0/C1 controls, DEL,
# LINE SEPARATOR or PARAGRAPH SEPARATOR.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class BadName(mutf7.Mutf7Error):
    """Not a valid mailbox name in the session's encoding (the text says why)."""


def set_utf8(on: bool) -> None:
    _UTF8.set(on)


def utf8() -> bool:
    """Has this connection enabled UTF8=ACCEPT?"""
    return _UTF8.get()


def decode(raw: bytes) -> str:
    """A mailbox name or LIST pattern as sent by the client; raises :class:`BadName`."""
    if not _UTF8.get():
        try:
            return mutf7.decode(raw)
        except mutf7.Mutf7Error:
            raise BadName("Mailbox name is not valid modified UTF-7") from None
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadName("Mailbox name is not valid UTF-8") from None
    if _FORBIDDEN.search(name):
        raise BadName("Mailbox name contains control characters")
    return name


def encode(name: str) -> bytes:
    """A stored name as the wire form of this session (not quoted)."""
    if _UTF8.get():
        return name.encode("utf-8", "surrogateescape")
    return mutf7.encode(name)


def quoted(name: str) -> bytes:
    """The name as an IMAP string: quoted when it can be (RFC 6855 §3 lets a UTF8=ACCEPT
    session have UTF-8 in quoted strings; before that 8-bit octets go as a literal)."""
    from ..mime.imapfmt import imap_quote

    b = encode(name)
    if not _UTF8.get() or any(c in b"\r\n\x00" for c in b):
        return imap_quote(b)
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
