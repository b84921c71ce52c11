"""Failed-login counters in PostgreSQL, shared by every node of a scale-out installation.

One row per failure in ``rate_events`` (key ``ip:ADDRESS`` or ``user:NAME``, times from
the database's clock, so that nodes with drifting clocks agree on the window). Asking
is one statement on the ``(key, at)`` index; recording is one statement that inserts
and counts. Each row says when it may go (``expires``); expired rows are deleted now
and then by whichever node is recording an event (a failure sleeps a penalty anyway),
so the table holds only the last few minutes of failures.

The same table holds the other per-key limit that must hold across nodes: the hourly
cap on mail Sieve scripts make the server send (:meth:`SharedFailures.take_event`,
key ``sieve-out:ACCOUNT``; docs/scaleout.md, "Shared state").

A login must never fail because the database is briefly away (a restart, a failover):
then the node counts on its own (:class:`~postroom.auth.throttle.LocalFailures`, kept
current all along with this node's failures), logs that once, and asks the database
again after ``RETRY`` seconds. Each statement has ``TIMEOUT`` seconds, so a hung
database delays a login by at most that.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from ..config import PgSettings
from ..storage.postgresql import schema
from ..storage.postgresql.connect import acquire, create_pool, is_unavailable
from .throttle import WINDOW, Counts, LocalFailures

log = logging.getLogger("postroom.auth")

#: Component "state" of the PostgreSQL schema (postroom.storage.postgresql.schema).
#: Appended to, never edited.
MIGRATIONS: tuple[str, ...] = (
    # 1: sliding-window events. ``key`` names what is counted with a prefix ("ip:",
    # "user:", "sieve-out:"), so every per-key rate limit shares the table and its
    # pruning; ``expires`` is when the row stops counting in any window (its limit's).
    """
    CREATE TABLE rate_events (
        key text NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        expires timestamptz NOT NULL
    );
    CREATE INDEX rate_events_key_at ON rate_events (key, at);
    CREATE INDEX rate_events_expires ON rate_events (expires);
    """,
)

TIMEOUT = 1.0  # seconds a throttle statement may take before the node counts alone
RETRY = 5.0  # seconds between attempts to reach the database again after a failure
PRUNE_EVERY = 60.0  # seconds between deletions of expired rows (per node)

_COUNTS = f"""
SELECT count(*) FILTER (WHERE key = $1), count(*) FILTER (WHERE key = $2)
FROM rate_events
WHERE key IN ($1, $2) AND at > clock_timestamp() - interval '{WINDOW:g} seconds'
"""
# The inserted rows are not visible to the SELECT of the same statement (one snapshot):
# hence the 1 + .
_ADD = f"""
WITH added AS (
    INSERT INTO rate_events (key, expires)
    VALUES ($1, clock_timestamp() + interval '{WINDOW:g} seconds'), ($2, clock_timestamp() + interval '{WINDOW:g} seconds')
)
SELECT 1 + count(*) FILTER (WHERE key = $1), 1 + count(*) FILTER (WHERE key = $2)
FROM rate_events
WHERE key IN ($1, $2) AND at > clock_timestamp() - interval '{WINDOW:g} seconds'
"""
_FORGET = "DELETE FROM rate_events WHERE key = $1"
_PRUNE = "DELETE FROM rate_events WHERE expires < clock_timestamp()"
# One event for a key if it had fewer than $2 in the last $3 seconds; says whether it was
# taken. Two nodes taking the last slot at the same instant may both get it: a cap that
# is one over under a race is still a cap, and no lock is worth that on this path.
_TAKE = """
WITH recent AS (
    SELECT count(*) AS n FROM rate_events
    WHERE key = $1 AND at > clock_timestamp() - $3::float8 * interval '1 second'
), added AS (
    INSERT INTO rate_events (key, expires)
    SELECT $1, clock_timestamp() + $3::float8 * interval '1 second' FROM recent WHERE recent.n < $2
)
SELECT n < $2 FROM recent
"""


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the "state" component up to date (``postroom migrate`` and node start)."""
    return await schema.apply(conn, "state", MIGRATIONS)


class SharedFailures:
    """The :class:`~postroom.auth.throttle.FailureLog` of a node on PostgreSQL."""

    def __init__(self, pg: PgSettings) -> None:
        self.pg = pg
        self.local = LocalFailures()
        self._pool: asyncpg.Pool | None = None
        self._down_until = 0.0  # monotonic time before which the database is not asked
        self._down_logged = False
        self._next_prune = 0.0

    async def open(self) -> None:
        """Connect and migrate. Raises (the node does not start) when the database is
        missing or at a newer schema: that is a deployment error, not an outage."""
        # Two connections: the throttle asks one short statement per login.
        self._pool = await create_pool(self.pg, min_size=1, max_size=2)
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), TIMEOUT)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def _run(self, sql: str, *args: object) -> asyncpg.Record | None:
        """One statement, or None when the database cannot be asked right now."""
        if self._pool is None or time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(TIMEOUT), acquire(self._pool) as conn:
                row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._down_until = time.monotonic() + RETRY
            if not self._down_logged:
                self._down_logged = True
                log.warning("login throttle: PostgreSQL unreachable (%s); counting failures on this "
                            "node only until it is back", type(exc).__name__)
            return None
        if self._down_logged:
            self._down_logged = False
            log.warning("login throttle: PostgreSQL reachable again; failures are counted across nodes")
        return row

    async def counts(self, ip: str, user: str | None) -> Counts:
        row = await self._run(_COUNTS, "ip:" + ip, "user:" + (user or ""))
        if row is None:
            return self.local.counts_now(ip, user)
        return Counts(int(row[0]), int(row[1]) if user is not None else 0)

    async def add(self, ip: str, user: str) -> Counts:
        local = self.local.add_now(ip, user)
        row = await self._run(_ADD, "ip:" + ip, "user:" + user)
        if row is None:
            return local
        await self._prune()
        return Counts(int(row[0]), int(row[1]))

    async def take_event(self, key: str, limit: int, window: float) -> bool | None:
        """Count one event for ``key`` unless it had ``limit`` in the last ``window``
        seconds (across every node); None when the database cannot be asked."""
        row = await self._run(_TAKE, key, limit, window)
        if row is None:
            return None
        await self._prune()
        return bool(row[0])

    async def _prune(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            await self._run(_PRUNE)

    async def forget_user(self, user: str) -> None:
        self.local.forget_user_now(user)
        await self._run(_FORGET, "user:" + user)

    def local_ip_count(self, ip: str) -> int:
        return self.local.local_ip_count(ip)
