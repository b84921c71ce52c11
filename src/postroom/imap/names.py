"""Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3), or UTF-8 once the session
has sent ENABLE UTF8=ACCEPT (RFC 6855 §3).

Which one applies is a property of the connection, but names are read by the argument
parsers and written by a handful of handlers that otherwise need no session. Rather than
thread a flag through every parser and formatter, :mod:`.dispatch` sets a context
variable at the start of each command (``set_mode``); each connection runs in its own
asyncio task, so the value is the connection's own. Outside a command (unit tests,
tools) it is off: modified UTF-7, as before.

ENABLE IMAP4rev2 (RFC 9051) also means UTF-8 names (§5.1, Appendix A: no UTF-8 quoted
strings before it), and adds one rule: names are Net-Unicode, so a denormalized name is
converted to NFC (§5.1: "servers MAY accept a denormalized UTF-8 mailbox name and convert
it") in every command alike. What the client spelled differently is remembered for the
command (``supplied``), so SELECT, CREATE, RENAME and DELETE can answer with an OLDNAME
LIST response (§6.3.9.7).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from contextvars import ContextVar

from . import mutf7

_UTF8: ContextVar[bool] = ContextVar("imap_utf8_accept", default=False)
_REV2: ContextVar[bool] = ContextVar("imap_rev2", default=False)
# normalized name → the spelling the client sent, for names NFC changed in this command.
_SUPPLIED: ContextVar[dict[str, str] | None] = ContextVar("imap_supplied_names", default=None)

# RFC 6855 §3: names must be Net-Unicode (RFC 5198) without C0/C1 controls, DEL,
# LINE SEPARATOR or PARAGRAPH SEPARATOR.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class BadName(mutf7.Mutf7Error):
    """Not a valid mailbox name in the session's encoding (the text says why)."""


def set_utf8(on: bool) -> None:
    _UTF8.set(on)


def set_mode(enabled: Collection[str]) -> None:
    """At the start of a command: the spelling of names for what the session ENABLEd."""
    rev2 = "IMAP4rev2" in enabled
    _UTF8.set(rev2 or "UTF8=ACCEPT" in enabled)
    _REV2.set(rev2)
    _SUPPLIED.set(None)


def utf8() -> bool:
    """Are names (and quoted strings) UTF-8: UTF8=ACCEPT or IMAP4rev2 enabled?"""
    return _UTF8.get()


def rev2() -> bool:
    """Has this connection enabled IMAP4rev2 (RFC 9051)?"""
    return _REV2.get()


def supplied(name: str) -> str | None:
    """How the client spelled ``name`` in this command when NFC changed it, else None."""
    got = _SUPPLIED.get()
    return None if got is None else got.get(name)


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
    if _REV2.get() and not unicodedata.is_normalized("NFC", name):
        # RFC 9051 §5.1: Net-Unicode (RFC 5198) names are NFC; convert, and remember.
        normal = unicodedata.normalize("NFC", name)
        got = _SUPPLIED.get()
        if got is None:
            got = {}
            _SUPPLIED.set(got)
        got[normal] = name
        name = normal
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
