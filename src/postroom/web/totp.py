"""Time-based one-time passwords (RFC 6238 on RFC 4226 HOTP), for the admins' second factor.

Hand-written rather than ``pyotp``: the whole algorithm is an HMAC-SHA1, a dynamic
truncation and a modulo (RFC 4226 §5.3), about as long as the glue a library would need,
and one dependency fewer to keep patched. Parameters are those every authenticator app
assumes from an ``otpauth://`` URI without parameters: SHA-1, 6 digits, 30-second steps.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
from collections.abc import Callable
from urllib.parse import quote

DIGITS = 6
STEP = 30  # seconds, RFC 6238 §4.1 X
WINDOW = 1  # steps accepted either side of now: a phone clock off by up to 30 s still works (§6)
clock: Callable[[], float] = time.time  # what "now" is; tests freeze it to know which step a code is in


def new_secret() -> str:
    """160 random bits, base32 without padding (RFC 4226 §4 R6 asks for at least 128)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    s = secret.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def hotp(secret: str, counter: int) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte counter, dynamic truncation, last DIGITS digits."""
    mac = hmac.digest(_key(secret), struct.pack(">Q", counter), "sha1")
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10 ** DIGITS).zfill(DIGITS)


def code_at(secret: str, when: float) -> str:
    return hotp(secret, int(when) // STEP)


def verify(secret: str, code: str, when: float | None = None) -> int | None:
    """The time step the code belongs to (within ±WINDOW of now), or None.

    Returning the step lets a caller refuse a code used before (RFC 6238 §5.2): the web
    accepts a code only if its step is later than the last one accepted (web/auth.py)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):  # "١٢٣٤٥٦".isdigit() too
        return None
    try:
        _key(secret)
    except (ValueError, TypeError):
        return None
    now = int(clock() if when is None else when) // STEP
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read (Google's Key URI format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
