"""xtext (RFC 3461 §4): how DSN's ENVID and ORCPT carry arbitrary text in ESMTP parameters.

``xtext = *( xchar / hexchar )``: printable ASCII from "!" to "~" except "+" and
"=" stands for itself; anything else is "+" followed by two upper-case hex digits.
"""

from __future__ import annotations

import re

_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
_VALID = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")


class XtextError(ValueError):
    pass


def decode(text: str) -> str:
    """Decode; raise :class:`XtextError` on characters xtext does not allow."""
    if not _VALID.fullmatch(text):
        raise XtextError(f"invalid xtext: {text!r}")
    raw = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)
    # The decoded value is octets; RFC 6533 lets it be UTF-8. Keep it a str, latin-1 safe.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return raw


def encode(value: str) -> str:
    out = []
    for b in value.encode("utf-8"):
        if 33 <= b <= 126 and b not in (0x2B, 0x3D):
            out.append(chr(b))
        else:
            out.append(f"+{b:02X}")
    return "".join(out)
