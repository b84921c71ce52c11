"""IMAP string formatting shared by ENVELOPE, BODYSTRUCTURE and the IMAP server.

RFC 9051 §4.3 / RFC 3501 §9 (formal syntax)::

    string          = quoted / literal
    quoted          = DQUOTE *QUOTED-CHAR DQUOTE
    QUOTED-CHAR     = <any TEXT-CHAR except quoted-specials> / "\\" quoted-specials
    TEXT-CHAR       = <any CHAR except CR and LF>       (CHAR is 7-bit, no NUL)
    literal         = "{" number "}" CRLF *CHAR8
    nstring         = string / nil

The quoting choice follows Dovecot (``imap-quote.c``) so that our output can be
compared byte for byte with it: a quoted string unless the value has CR, LF,
8-bit octets or more than four characters needing a backslash, in which case a
synchronizing literal is written.  All functions are pure and return bytes.
"""

from __future__ import annotations

__all__ = [
    "to_bytes",
    "imap_quote",
    "imap_string",
    "imap_nstring",
    "imap_nstring_nolf",
    "imap_string_for_humans",
    "unfold_nolf",
]

#: Beyond this many backslash escapes a literal is shorter to read (Dovecot's rule).
_MAX_ESCAPES = 4


def to_bytes(s: bytes | str) -> bytes:
    """Turn a model string back into its original octets.

    Model strings come from ``bytes.decode('utf-8', 'surrogateescape')`` so any
    8-bit header octet (valid UTF-8 or not) round-trips unchanged.
    """
    if isinstance(s, bytes):
        return s
    return s.encode("utf-8", "surrogateescape")


def imap_quote(s: bytes | str) -> bytes:
    """Return ``s`` as an IMAP ``string``: quoted if safe, else a literal.

    Quoted strings cannot carry CR, LF, NUL or 8-bit octets (RFC 9051 §4.3);
    those values are sent as a literal ``{n}\\r\\n<octets>``.  NUL is not
    allowed in a literal either (RFC 9051 §4.3), so NULs are dropped.
    """
    b = to_bytes(s).replace(b"\x00", b"")
    escapes = 0
    for c in b:
        if c in (0x22, 0x5C):  # '"' and '\\'
            escapes += 1
            if escapes > _MAX_ESCAPES:
                return _literal(b)
        elif c in (0x0D, 0x0A) or c >= 0x80:
            return _literal(b)
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _literal(b: bytes) -> bytes:
    return b"{%d}\r\n" % len(b) + b


def imap_string(s: bytes | str) -> bytes:
    """Alias of :func:`imap_quote`; reads better next to :func:`imap_nstring`."""
    return imap_quote(s)


def imap_nstring(s: bytes | str | None) -> bytes:
    """Return ``NIL`` for None, else :func:`imap_quote` (RFC 9051 ``nstring``)."""
    if s is None:
        return b"NIL"
    return imap_quote(s)


def unfold_nolf(b: bytes) -> bytes:
    """Remove CR and LF, keeping a space between lines (header unfolding).

    RFC 5322 §2.2.3 unfolding removes the CRLF only; when a broken header has a
    continuation line without leading whitespace we insert a space so words do
    not run together (the same repair Dovecot makes).
    """
    # find, not ``in``: bytes' ``in`` first tries its operand as a byte value and builds
    # and drops a TypeError for a bytes operand, twice per header value here.
    if b.find(b"\r") < 0 and b.find(b"\n") < 0:
        return b
    out = bytearray()
    n = len(b)
    for i, c in enumerate(b):
        if c not in (0x0D, 0x0A):
            out.append(c)
        elif i + 1 < n and b[i + 1] not in b" \t\r\n":
            out.append(0x20)
    return bytes(out)


def imap_nstring_nolf(s: bytes | str | None) -> bytes:
    """``nstring`` of a header value with line breaks removed (see :func:`unfold_nolf`)."""
    if s is None:
        return b"NIL"
    return imap_quote(unfold_nolf(to_bytes(s)))


def imap_string_for_humans(s: bytes | str) -> bytes:
    """IMAP string for display text (ENVELOPE subject and address names).

    Matches Dovecot's ``imap_append_string_for_humans``: runs of whitespace
    (SP, TAB, CR, LF) collapse to one space and are trimmed at both ends, NUL
    becomes 0x80, and the result is a literal as soon as it needs any escaping
    or has 8-bit octets.  Clients show these strings, so readable beats exact.
    """
    b = to_bytes(s)
    modify = (
        any(c in b'\r\n\t"\\\x00' or c >= 0x80 for c in b)
        or b.startswith(b" ")
        or b.endswith(b" ")
        or b"  " in b
    )
    if not modify:
        return b'"' + b + b'"'
    words = b.replace(b"\x00", b"\x80").replace(b"\t", b" ").replace(b"\r", b" ").replace(b"\n", b" ").split(b" ")
    text = b" ".join(w for w in words if w)
    if not text:
        return b'""'
    # Dovecot sends every string it had to modify as a literal.
    return _literal(text)
