"""Content-Transfer-Encoding removed: the data of IMAP ``BINARY[section]`` (RFC 3516).

Pure and total: garbage base64 or quoted-printable never raises, it decodes to
something (RFC 2045 §6.8: "any characters outside of the base64 alphabet are to
be ignored"; §6.7: a malformed ``=`` is kept as it is). Only an encoding that is
not one of RFC 2045's five is refused, with :class:`UnknownCte`, which IMAP
answers ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3).
"""

from __future__ import annotations

import binascii
import re

from .model import ParsedMessage
from .sections import find_part, parse_section_spec

__all__ = ["UnknownCte", "decode_transfer", "binary_section"]

# RFC 2045 §6.1: identity encodings, sent as they are.
_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]+")
# RFC 2045 §6.7 rule 3: whitespace at the end of an encoded line was added in transport.
_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


class UnknownCte(ValueError):
    """The part's Content-Transfer-Encoding is none this server can remove."""


def decode_transfer(body: bytes, encoding: str | None) -> bytes:
    """``body`` with the transfer encoding ``encoding`` (as written; None: absent, 7bit) removed."""
    enc = (encoding or "7bit").strip().lower()
    if enc in _IDENTITY:
        return body
    if enc == "base64":
        clean = _NOT_B64.sub(b"", body)
        if len(clean) % 4 == 1:
            clean = clean[:-1]  # a lone sextet carries no whole octet
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    if enc == "quoted-printable":
        # a2b_qp: "=XX" (either case), soft line breaks "=\r\n" / "=\n"; line ends kept
        # as they are (CRLF as stored); a "=" not followed by hex digits stays.
        return binascii.a2b_qp(_TRAILING_WSP.sub(b"", body))
    raise UnknownCte(enc)


def binary_section(raw: bytes, p: ParsedMessage, spec: str) -> bytes | None:
    """``BINARY[spec]`` (``spec``: part numbers only, ``""`` for the whole message); None
    when the part does not exist. Raises :class:`UnknownCte`.

    The whole message (``BINARY[]``) is sent as it is: a Content-Transfer-Encoding
    applies to a body, not to the header above it.
    """
    parsed = parse_section_spec(spec)
    if parsed is None or parsed[1]:
        return None
    nums = parsed[0]
    if not nums:
        return raw[: p.size]
    part = find_part(p, nums)
    if part is None:
        return None
    return decode_transfer(raw[part.body_start:part.body_end], part.encoding)
