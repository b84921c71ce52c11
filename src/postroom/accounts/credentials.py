"""Secrets the server makes for app passwords and API tokens, and how they are kept.

Functions: ``new_app_password()``, ``normalize_app_password(text)`` (None when the text
cannot be one), ``new_api_token()``, ``is_api_token(text)``, ``digest(secret)``,
``check_name(name)``; class ``UseRecorder`` (writes ``last_used`` at most once a minute
per credential).

Both kinds of secret are drawn by the server from ``secrets`` (140 bits for an app
password, 256 for a token) and shown once; only their SHA-256 is stored. A salted slow
hash (argon2id, as for the account password) protects *chosen* passwords against
dictionary guessing; a uniformly random 140-bit secret has no dictionary, so SHA-256 is
as safe and lets a login find the credential by one unique-index probe instead of
trying an argon2 hash per app password of the account.

An app password is 28 letters of the base32 alphabet in groups of four
(``abcd-efgh-...``): easy to type on a phone, case and dashes ignored. An API token is
``prt_`` followed by 43 URL-safe characters: the prefix makes a leaked one recognisable
to secret scanners and tells the API it is a token.
"""

from __future__ import annotations

import hashlib
import secrets
import time

APP_PASSWORD_CHARS = 28  # × 5 bits = 140 bits
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
TOKEN_PREFIX = "prt_"
NAME_MAX = 64

#: ``last_used`` is written at most this often per credential (seconds): a phone polling
#: every minute would otherwise turn each login into a store write.
TOUCH_INTERVAL = 300.0


def new_app_password() -> str:
    """A fresh app password, grouped for reading (``abcd-efgh-ijkl-mnop-qrst-uvwx-yz23``)."""
    raw = "".join(secrets.choice(_BASE32) for _ in range(APP_PASSWORD_CHARS))
    return "-".join(raw[i:i + 4] for i in range(0, APP_PASSWORD_CHARS, 4))


def normalize_app_password(text: str) -> str | None:
    """The canonical form (lower case, no dashes or spaces) of something that could be an
    app password, or None: most passwords are not, and then no lookup is made."""
    if not 28 <= len(text) <= 40:
        return None
    raw = text.replace("-", "").replace(" ", "").lower()
    if len(raw) != APP_PASSWORD_CHARS or any(ch not in _BASE32 for ch in raw):
        return None
    return raw


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_api_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX) and 20 <= len(text) <= 100


def digest(secret: str) -> bytes:
    """What is stored and looked up: SHA-256 of the canonical secret."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def check_name(name: str) -> str:
    """The name (a device, a script) stripped; ValueError when empty, too long or with
    control characters (it is shown in pages and listings)."""
    name = name.strip()
    if not name:
        raise ValueError("the name is empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"the name is longer than {NAME_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError("the name contains control characters")
    return name


class UseRecorder:
    """Decides when a use of a credential is worth a store write (``last_used`` is shown to
    the user to spot a device that is no longer theirs; to the minute is plenty)."""

    def __init__(self, interval: float = TOUCH_INTERVAL, max_entries: int = 100_000) -> None:
        self.interval = interval
        self.max_entries = max_entries
        self._written: dict[int, float] = {}

    def due(self, credential_id: int, last_used: float | None) -> float | None:
        """The time to write now, or None when a recent enough one is stored already."""
        now = time.time()
        seen = max(self._written.get(credential_id, 0.0), last_used or 0.0)
        if now - seen < self.interval:
            return None
        if len(self._written) >= self.max_entries:
            self._written.clear()
        self._written[credential_id] = now
        return now
