"""Decoded text for IMAP SEARCH (RFC 9051 §6.4.4): header values and body text.

Search compares decoded text, so encoded words (RFC 2047) are decoded with
``email.header`` and transfer encodings/charsets of text parts are undone.
Decoding is lossy on purpose (errors='replace'): a bad octet must not hide the
rest of a message from SEARCH.
"""

from __future__ import annotations

import binascii
import email.header
import email.utils
import quopri
from datetime import datetime

from .headers import split_header
from .imapfmt import unfold_nolf
from .model import ParsedMessage, Part

__all__ = ["decoded_headers", "decode_header_value", "body_text", "part_text", "header_date"]


def decode_header_value(value: bytes) -> str:
    """Unfold (RFC 5322 §2.2.3) and decode RFC 2047 encoded words; never raises."""
    text = unfold_nolf(value).decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except Exception:  # noqa: BLE001 - email.header raises assorted errors on junk
        return text


def decoded_headers(raw: bytes, p: ParsedMessage) -> list[tuple[str, str]]:
    """Top-level header fields as (lowercased name, decoded unfolded value), in order."""
    fields, _ = split_header(raw, p.root.header_start, p.root.body_start)
    return [(f.name.decode("utf-8", "replace").lower(), decode_header_value(f.value)) for f in fields]


def _undo_transfer_encoding(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "7bit").lower()
    if enc == "base64":
        # Tolerate junk and missing padding (RFC 2045 §6.8 says ignore illegal characters).
        clean = bytes(c for c in body if c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        clean = clean[: len(clean) - len(clean) % 4 if len(clean) % 4 == 1 else len(clean)]
        try:
            return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
        except (binascii.Error, ValueError):
            return b""
    if enc == "quoted-printable":
        return quopri.decodestring(body)
    return body


def _charset_decode(octets: bytes, charset: str | None) -> str:
    try:
        return octets.decode(charset or "us-ascii", "replace")
    except (LookupError, ValueError):
        return octets.decode("utf-8", "replace")


def part_text(raw: bytes, part: Part) -> str:
    """Decoded text of one text/* part."""
    body = _undo_transfer_encoding(raw[part.body_start:part.body_end], part.encoding)
    charset = part.charset
    if charset is None or charset.lower() in ("us-ascii", "ascii"):
        charset = "utf-8"  # 8-bit text without a label is nearly always UTF-8 today
    return _charset_decode(body, charset)


def body_text(raw: bytes, p: ParsedMessage) -> str:
    """Decoded text of every text/* part (embedded messages included), joined by newlines."""
    return "\n".join(part_text(raw, part) for part in p.root.walk() if part.type == "text" and not part.children)


def header_date(p: ParsedMessage) -> datetime | None:
    """The Date header as an aware datetime (for SENTBEFORE/SENTON/SENTSINCE), or None."""
    value = p.envelope.date
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value.encode("utf-8", "surrogateescape").decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # RFC 5322 §3.3 "-0000": time zone unknown, treat as UTC
        from datetime import timezone

        dt = dt.replace(tzinfo=timezone.utc)
    return dt
