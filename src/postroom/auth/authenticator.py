"""Checking credentials for every protocol, with throttling of failed attempts.

Failures are counted per client IP and per login name over a sliding window; each
failure costs the client a delay that doubles with its recent failures (1 s, 2 s,
4 s … up to 15 s), and past ``limits.auth_failures_per_ip`` in the window every
attempt from that IP is refused without checking the password, so a guesser gets
a few tries a minute at most. Hash checks run in a thread: argon2id is meant to
cost CPU time and must not stall the event loop.

The counters live in a :class:`~postroom.auth.throttle.FailureLog`: this process's
memory with the embedded store, PostgreSQL when several nodes share one database
(:func:`failure_log_for` picks), so that guesses spread over the nodes meet one limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import metrics
from ..accounts.app_passwords import AppPasswordChecker
from ..storage.api import Store
from ..storage.models import Account, Credential
from .passwords import hash_password, needs_rehash, verify_password
from .throttle import WINDOW, FailureLog, LocalFailures  # noqa: F401 - WINDOW: its old home
from .verified import VerifiedLogins

if TYPE_CHECKING:
    from ..config import Config

MAX_DELAY = 15.0

@dataclass(slots=True)
class AuthResult:
    account: Account | None
    throttled: bool = False  # refused without a check because of too many failures
    disabled: bool = False  # the password was right but the account is disabled: refused
    app_password: Credential | None = None  # the app password that matched, if one did


def failure_log_for(cfg: Config) -> FailureLog:
    """Shared counters when the store is PostgreSQL (several nodes), else this process's."""
    if cfg.backend == "postgresql" and cfg.pg is not None:
        from .pgthrottle import SharedFailures

        return SharedFailures(cfg.pg)
    return LocalFailures()


class Authenticator:
    def __init__(self, store: Store, max_failures_per_ip: int = 10, base_delay: float = 1.0,
                 failures: FailureLog | None = None, cache_ttl: float = 0.0) -> None:
        self.store = store
        self.max_failures = max_failures_per_ip
        self.base_delay = base_delay
        self.failures: FailureLog = failures if failures is not None else LocalFailures()
        # Verified credentials ([limits] auth_cache): a reconnect storm costs one hash check
        # per account, not per connection (auth/verified.py).
        self.verified = VerifiedLogins(cache_ttl)
        self.app_passwords = AppPasswordChecker(store)

    async def open(self) -> None:
        """Connect the failure counters (the shared ones need a database)."""
        await self.failures.open()

    async def close(self) -> None:
        await self.failures.close()

    def is_throttled(self, remote_ip: str) -> bool:
        """This process's view, without waiting: what a caller that cannot await uses."""
        return self.failures.local_ip_count(remote_ip) >= self.max_failures

    async def throttled(self, remote_ip: str) -> bool:
        """True when the IP is past its failures, counted on every node."""
        return (await self.failures.counts(remote_ip, None)).ip >= self.max_failures

    async def authenticate(self, username: str, password: str, remote_ip: str, *,
                           app_passwords: bool = True) -> AuthResult:
        """Return the account on success. On failure, sleep the penalty before returning.

        The password may be one of the account's app passwords (postroom.accounts), unless
        ``app_passwords`` is False (the web login: a password kept on a phone must not
        manage the account). One that has an app password's shape is looked up first, by
        its SHA-256, so a device's login costs no argon2 check; a wrong one then gets the
        account-password check and counts as one failure, like any wrong password.
        A disabled account is refused even with the right password (``disabled``); that
        is not counted as a failure, so its owner's devices do not lock out their IP."""
        username = username.strip().lower()
        # One question for both counters: the IP's decides the refusal, the name's
        # whether a success has failures to forget.
        counts = await self.failures.counts(remote_ip, username)
        if counts.ip >= self.max_failures:
            metrics.LOGINS.labels("throttled").inc()
            await asyncio.sleep(self.base_delay)
            return AuthResult(None, throttled=True)
        account = await self.store.get_account(username) if username else None
        app = None
        if account is not None:
            stored = account.password_hash
            if app_passwords:
                app = await self.app_passwords.check(account, password)
            ok = app is not None or await self.verified.verify(
                username, stored, password, lambda: asyncio.to_thread(verify_password, stored, password))
        else:
            ok = await asyncio.to_thread(verify_password, _dummy_hash(), password)
        if ok and account is not None:
            if account.disabled:
                metrics.LOGINS.labels("failed").inc()
                return AuthResult(None, disabled=True)
            if app is None and needs_rehash(account.password_hash):
                await self.store.set_password_hash(account.address, await asyncio.to_thread(
                    hash_password, password))
            if counts.user:
                await self.failures.forget_user(username)
            metrics.LOGINS.labels("ok").inc()
            return AuthResult(account, app_password=app)
        await self.record_failure(username, remote_ip)
        return AuthResult(None)

    async def record_failure(self, username: str, remote_ip: str) -> None:
        """Count a failed login checked elsewhere (APOP digests, SASL mechanisms that never
        reveal a password) and sleep its penalty, exactly as a wrong password would."""
        username = username.strip().lower()
        metrics.LOGINS.labels("failed").inc()
        counts = await self.failures.add(remote_ip, username)
        n = max(counts.ip, counts.user)
        await asyncio.sleep(min(MAX_DELAY, self.base_delay * 2 ** max(0, n - 1)))


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """Verifying against a real hash for unknown users keeps response times alike, so
    timing does not tell which addresses exist (made on first use, not at import)."""
    if not _DUMMY:
        _DUMMY.append(hash_password("postroom-no-such-user"))
    return _DUMMY[0]
