"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII except ``&`` stands for itself, ``&`` is ``&-``, and everything
else is UTF-16BE in modified BASE64 (``,`` instead of ``/``, no padding) between
``&`` and ``-``.
"""

from __future__ import annotations

import base64
import binascii


class Mutf7Error(ValueError):
    """The name is not valid modified UTF-7."""


def _b64(chunk: str) -> bytes:
    data = base64.b64encode(chunk.encode("utf-16-be")).rstrip(b"=")
    return b"&" + data.replace(b"/", b",") + b"-"


def encode(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out += _b64("".join(pending))
                pending.clear()
            out += b"&-" if ch == "&" else ch.encode("ascii")
        else:
            pending.append(ch)
    if pending:
        out += _b64("".join(pending))
    return bytes(out)


def decode(data: bytes) -> str:
    """Decode strictly: a client that sends a bad name gets a clear error, not a mangled box."""
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x26:  # '&'
            j = data.find(b"-", i + 1)
            if j < 0:
                raise Mutf7Error("unterminated &-sequence")
            if j == i + 1:
                out.append("&")
            else:
                b64 = data[i + 1 : j].replace(b",", b"/")
                if not all(ch in _B64_CHARS for ch in b64):
                    raise Mutf7Error("bad base64 in &-sequence")
                try:
                    raw = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
                    text = raw.decode("utf-16-be")
                except (binascii.Error, UnicodeDecodeError):
                    raise Mutf7Error("bad UTF-16 in &-sequence") from None
                # A shifted run must not encode what could be written directly (§5.1.3).
                if any(0x20 <= ord(ch) <= 0x7E for ch in text):
                    raise Mutf7Error("printable ASCII inside &-sequence")
                out.append(text)
            i = j + 1
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
            i += 1
        else:
            raise Mutf7Error("8-bit or control octet in mailbox name")
    return "".join(out)


_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
