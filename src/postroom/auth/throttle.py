"""Where failed logins are counted: in this process, or (scale-out) in PostgreSQL.

The :class:`~postroom.auth.Authenticator` asks a :class:`FailureLog` two questions: how
many failures the client's IP and the login name had in the last ``WINDOW`` seconds
(before checking a password), and the same after recording one more (to size the
penalty). With the embedded store one process serves everyone, so the counts live in
its memory (:class:`LocalFailures`, the behaviour Postroom always had). With several
nodes on one PostgreSQL database a guesser spreading attempts over the nodes must meet
one set of counters: :mod:`postroom.auth.pgthrottle` keeps them in the database.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

WINDOW = 300.0  # seconds a failure is remembered
# Past this many keys the expired ones are dropped, so that a scan from many addresses,
# each failing once and never coming back, cannot grow the tables without bound.
_PRUNE_AT = 4096


@dataclass(frozen=True, slots=True)
class Counts:
    """Failures within the window: from the client's IP, and against the login name."""

    ip: int
    user: int


class FailureLog(Protocol):
    """Failed-login counters over a sliding window of ``WINDOW`` seconds."""

    async def open(self) -> None: ...

    async def counts(self, ip: str, user: str | None) -> Counts:
        """Recent failures of ``ip`` and of ``user`` (None: only the IP is wanted)."""
        ...

    async def add(self, ip: str, user: str) -> Counts:
        """Record one failure of ``ip`` against ``user``; the counts including it."""
        ...

    async def forget_user(self, user: str) -> None:
        """A successful login: the name's failures no longer slow its owner down."""
        ...

    def local_ip_count(self, ip: str) -> int:
        """The IP's failures as this process knows them, without waiting for anything."""
        ...

    async def take_event(self, key: str, limit: int, window: float) -> bool | None:
        """Another per-key limit kept where these counters are, when that is shared by
        every node: True if ``key`` had fewer than ``limit`` events in the last ``window``
        seconds (and one is counted now), False if not; None where nothing is shared
        (one node: the caller counts in its own memory)."""
        ...

    async def close(self) -> None: ...


class _Windows:
    """Timestamps (``time.monotonic``) per key, pruned as they are read."""

    __slots__ = ("prune_at", "table")

    def __init__(self) -> None:
        self.table: dict[str, deque[float]] = {}
        self.prune_at = _PRUNE_AT

    def recent(self, key: str, now: float) -> int:
        q = self.table.get(key)
        if not q:
            return 0
        cutoff = now - WINDOW
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self.table[key]
        return len(q)

    def add(self, key: str, now: float) -> int:
        q = self.table.get(key)
        if q is None:
            if len(self.table) >= self.prune_at:
                self._prune(now)
            q = self.table[key] = deque()
        q.append(now)
        return self.recent(key, now)

    def _prune(self, now: float) -> None:
        cutoff = now - WINDOW
        for key in [k for k, q in self.table.items() if not q or q[-1] < cutoff]:
            del self.table[key]
        # Scanned again only once the live keys have doubled: a burst of new addresses costs
        # a constant amount per failure, not a scan each.
        self.prune_at = max(_PRUNE_AT, 2 * len(self.table))


class LocalFailures:
    """Counters in this process's memory: the embedded store's single node.

    Also the fallback of the shared log, which keeps it current with its own failures,
    so that a node cut off from the database still throttles what it sees itself.
    """

    def __init__(self) -> None:
        self._ip = _Windows()
        self._user = _Windows()

    async def open(self) -> None:
        return None

    def counts_now(self, ip: str, user: str | None) -> Counts:
        now = time.monotonic()
        return Counts(self._ip.recent(ip, now), self._user.recent(user, now) if user is not None else 0)

    def add_now(self, ip: str, user: str) -> Counts:
        now = time.monotonic()
        return Counts(self._ip.add(ip, now), self._user.add(user, now))

    def forget_user_now(self, user: str) -> None:
        self._user.table.pop(user, None)

    async def counts(self, ip: str, user: str | None) -> Counts:
        return self.counts_now(ip, user)

    async def add(self, ip: str, user: str) -> Counts:
        return self.add_now(ip, user)

    async def forget_user(self, user: str) -> None:
        self.forget_user_now(user)

    def local_ip_count(self, ip: str) -> int:
        return self._ip.recent(ip, time.monotonic())

    async def take_event(self, key: str, limit: int, window: float) -> bool | None:
        return None

    async def close(self) -> None:
        return None
