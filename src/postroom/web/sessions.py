"""Signed session cookies: who is logged in, kept by the browser, checked by HMAC.

No server-side session table: the cookie carries the account id, the account's session
epoch at login, the login time, the last-use time and a random nonce (the CSRF token is
derived from it), signed with HMAC-SHA256 under a secret only the server knows. Logging
out everywhere (or a password change, or disabling the account) bumps the epoch in the
store, and every cookie carrying the old one stops working. A single logout expires the
browser's cookie and records the session as ended in the store (the SHA-256 of its
nonce, kept until the cookie's absolute limit), so a copy of the cookie taken before the
logout is refused too, on every node. Scale-out nodes share the secret (``[web] secret_file``)
so a session works on any of them.

A cookie is ``base64url(json).base64url(mac)``; anything else, a bad MAC, a time past
the idle or absolute limit, reads as "no session" (the login page), never an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

COOKIE = "postroom_session"
FLASH_COOKIE = "postroom_flash"
SECRET_BYTES = 32
REFRESH = 60.0  # seconds between re-issues of a used cookie (its last-use time), not every request


@dataclass(frozen=True, slots=True)
class Session:
    account_id: int
    address: str
    epoch: int
    issued: float  # the login (absolute limit)
    seen: float  # the last request that refreshed the cookie (idle limit)
    nonce: str  # random per login; the CSRF token is a MAC of it
    pending: bool = False  # password given, TOTP code still due (only /totp accepts it)

    def touched(self, now: float) -> Session:
        return replace(self, seen=now)

    @property
    def digest(self) -> bytes:
        """What the store keeps of a logged-out session: a hash, not the nonce the CSRF token is a MAC of."""
        return hashlib.sha256(self.nonce.encode()).digest()


def load_secret(path: Path) -> bytes:
    """The signing key; made at first start (mode 0600, fsynced) when the file is missing.

    O_EXCL makes two worker processes starting together agree on one key: the loser of the
    race reads the winner's file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(SECRET_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(key) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first; then use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        data = path.read_bytes()
    key = base64.b64decode(data.strip(), validate=True)
    if len(key) < 16:
        raise ValueError(f"{path}: the web secret is shorter than 16 bytes")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes, idle: float, lifetime: float) -> None:
        self._key = key
        self.idle = idle
        self.lifetime = lifetime

    def mac(self, purpose: str, data: bytes) -> bytes:
        # The purpose is part of the MAC so a value signed for one use (a flash message,
        # a TOTP enrolment secret) can never pass as another (a session).
        return hmac.digest(self._key, purpose.encode() + b"\0" + data, hashlib.sha256)

    def sign(self, purpose: str, payload: dict[str, object]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self.mac(purpose, body))}"

    def unsign(self, purpose: str, value: str, limit: int = 4096) -> dict[str, object] | None:
        if not value or len(value) > limit or value.count(".") != 1:
            return None
        body_text, mac_text = value.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self.mac(purpose, body)):
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def new(self, account_id: int, address: str, epoch: int, pending: bool, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        return Session(account_id, address, epoch, now, now, secrets.token_urlsafe(18), pending)

    def encode(self, s: Session) -> str:
        return self.sign("session", {"a": s.account_id, "u": s.address, "e": s.epoch, "i": int(s.issued),
                                     "s": int(s.seen), "n": s.nonce, "p": int(s.pending)})

    def decode(self, value: str, now: float | None = None) -> Session | None:
        """The session in a cookie if it is genuine and neither idle nor too old."""
        data = self.unsign("session", value)
        if data is None:
            return None
        nums = [data.get(k) for k in ("a", "e", "i", "s", "p")]
        ints = [x for x in nums if isinstance(x, int) and not isinstance(x, bool)]
        if len(ints) != len(nums):
            return None
        a, e, i, seen, p = ints
        s = Session(a, str(data.get("u", "")), e, float(i), float(seen), str(data.get("n", "")), bool(p))
        now = time.time() if now is None else now
        if now - s.seen > self.idle or now - s.issued > self.lifetime or s.seen > now + 300:
            return None
        if s.pending and now - s.issued > 300:
            return None  # the second factor is due within five minutes of the password
        return s

    def expires(self, s: Session) -> float:
        """When :meth:`decode` refuses the cookie whatever its use (the absolute limit),
        plus the 5 minutes of clock difference between nodes it tolerates."""
        return s.issued + self.lifetime + 300

    def csrf_token(self, s: Session) -> str:
        return _b64(self.mac("csrf", s.nonce.encode()))

    def csrf_ok(self, s: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf_token(s).encode())
