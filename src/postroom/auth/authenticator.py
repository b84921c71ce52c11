"""Checking credentials for every protocol, with throttling of failed attempts.

Failures are counted per client IP and per login name over a sliding window; each
failure costs the client a delay that doubles with its recent failures (1 s, 2 s,
4 s … up to 15 s), and past ``limits.auth_failures_per_ip`` in the window every
attempt from that IP is refused without checking the password, so a guesser gets
a few tries a minute at most. Hash checks run in a thread: argon2id is meant to
cost CPU time and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from .. import metrics
from ..storage.api import Store
from ..storage.models import Account
from .passwords import hash_password, needs_rehash, verify_password

WINDOW = 300.0  # seconds a failure is remembered
MAX_DELAY = 15.0


@dataclass(slots=True)
class AuthResult:
    account: Account | None
    throttled: bool = False  # refused without a check because of too many failures


class Authenticator:
    def __init__(self, store: Store, max_failures_per_ip: int = 10, base_delay: float = 1.0) -> None:
        self.store = store
        self.max_failures = max_failures_per_ip
        self.base_delay = base_delay
        self._fail_ip: dict[str, deque[float]] = defaultdict(deque)
        self._fail_user: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, table: dict[str, deque[float]], key: str) -> int:
        q = table.get(key)
        if not q:
            return 0
        cutoff = time.monotonic() - WINDOW
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            table.pop(key, None)
        return len(q)

    def is_throttled(self, remote_ip: str) -> bool:
        return self._recent(self._fail_ip, remote_ip) >= self.max_failures

    async def authenticate(self, username: str, password: str, remote_ip: str) -> AuthResult:
        """Return the account on success. On failure, sleep the penalty before returning."""
        username = username.strip().lower()
        if self.is_throttled(remote_ip):
            metrics.LOGINS.labels("throttled").inc()
            await asyncio.sleep(self.base_delay)
            return AuthResult(None, throttled=True)
        account = await self.store.get_account(username) if username else None
        stored = account.password_hash if account else _dummy_hash()
        ok = await asyncio.to_thread(verify_password, stored, password)
        if ok and account is not None:
            if needs_rehash(account.password_hash):
                await self.store.set_password_hash(account.address, await asyncio.to_thread(
                    hash_password, password))
            self._fail_user.pop(username, None)
            metrics.LOGINS.labels("ok").inc()
            return AuthResult(account)
        await self.record_failure(username, remote_ip)
        return AuthResult(None)

    async def record_failure(self, username: str, remote_ip: str) -> None:
        """Count a failed login checked elsewhere (APOP digests, SASL mechanisms that never
        reveal a password) and sleep its penalty, exactly as a wrong password would."""
        username = username.strip().lower()
        metrics.LOGINS.labels("failed").inc()
        now = time.monotonic()
        self._fail_ip[remote_ip].append(now)
        self._fail_user[username].append(now)
        n = max(self._recent(self._fail_ip, remote_ip), self._recent(self._fail_user, username))
        await asyncio.sleep(min(MAX_DELAY, self.base_delay * 2 ** max(0, n - 1)))


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """Verifying against a real hash for unknown users keeps response times alike, so
    timing does not tell which addresses exist (made on first use, not at import)."""
    if not _DUMMY:
        _DUMMY.append(hash_password("postroom-no-such-user"))
    return _DUMMY[0]
