"""Where the SMTP rate limits count: SQLite under the data directory, or PostgreSQL.

The counters must outlive a restart (a flood does not start over because the admin
restarted the server) and be shared by the ``workers = N`` processes that accept on one
port with SO_REUSEPORT, and (scale-out) by every node of one PostgreSQL database.

A sliding window of W seconds is kept as buckets of W/10 seconds per key, like Postfix's
anvil but smoother: an event adds 1 to its key's current bucket, and a key's count is the
sum of its buckets younger than W. The window therefore slides in steps of a tenth, and
one key never holds more than eleven rows, however fast it is hit (one row per event, as
``rate_events`` does for login failures, would grow by thousands a minute under a flood).

The hot path touches no database. :class:`Counters` keeps, per key, the shared total as
last read (at most ``REFRESH`` seconds old) plus this process's events not yet written;
every ``REFRESH`` seconds the pending events go to the shared store in one transaction.
One SQLite transaction per event cost about 150 µs of CPU, three per message: ten times
the whole cost of the limits now (docs/abuse.md, "Rate limits"). The price is that other
workers' and nodes' events, and a ``postroom ratelimit clear``, are seen up to a second
late, which a limit counted in minutes or hours does not notice.

Counters are advisory: losing the last second of them in a crash costs nothing, so the
SQLite file runs with ``synchronous = OFF`` (no fsync; WAL keeps it consistent), and any
error of the shared store (locked too long, PostgreSQL away) is logged once and the
events pass on this process's own counts: a rate limiter must never stop the mail it
protects.

A write that fails keeps its events pending for the next one, and :meth:`Counters.close`
retries the last write for up to ``CLOSE_WAIT`` seconds: a busy file is exactly what a
flood produces, and a limiter that dropped a worker's counts whenever the file was busy
at shutdown or restart would let the flood through (docs/abuse.md, 2026-12-07).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import Config, PgSettings

log = logging.getLogger("postroom.abuse")

BUCKETS = 10  # buckets per window: the window slides in steps of a tenth
REFRESH = 1.0  # seconds between writes of pending events, and the age of a total re-read
PRUNE_EVERY = 60.0  # seconds between deletions of expired buckets (per process)
FILE_NAME = "ratelimit.sqlite"
_CACHE_MAX = 20000  # totals kept before the stale ones are dropped
CLOSE_WAIT = 5.0  # seconds close() goes on retrying the last events before it gives up (logged)
CLOSE_PAUSE = 0.05  # seconds between those attempts, the event loop free meanwhile


@dataclass(frozen=True, slots=True)
class Ask:
    """One key to count an event against: refused once it has ``limit`` events within
    ``window`` seconds. ``add`` False only reads the count (errors are counted apart)."""

    key: str
    limit: int
    window: float
    add: bool = True


@dataclass(frozen=True, slots=True)
class Row:
    """A key's count in its window, for ``postroom ratelimit list``."""

    key: str
    count: int
    window: float


# (key, bucket start, events, expires, window): what a flush writes.
Pending = tuple[str, float, int, float, float]


def bucket_start(now: float, window: float) -> float:
    width = window / BUCKETS
    return round(now - now % width, 3)


def matches(stored: str, key: str) -> bool:
    """``key`` is the whole stored key ("ip:messages:192.0.2.7") or its value part."""
    return stored == key or stored.split(":", 2)[-1] == key


class SharedStore(Protocol):
    """Where the buckets of every process are kept."""

    async def open(self) -> None: ...

    async def totals(self, keys: Sequence[str], now: float) -> dict[str, int] | None:
        """Each key's events in its window (missing: none); None when it cannot be read."""
        ...

    async def write(self, rows: Sequence[Pending], now: float) -> bool:
        """Add the events to their buckets; False when they could not be written."""
        ...

    async def rows(self) -> list[Row]: ...

    async def clear(self, key: str | None) -> int: ...

    async def close(self) -> None: ...


class Counters:
    """A process's view of the shared counters (module doc)."""

    def __init__(self, store: SharedStore, refresh: float = REFRESH, close_wait: float = CLOSE_WAIT) -> None:
        self.store = store
        self.refresh = refresh
        self.close_wait = close_wait
        self._totals: dict[str, tuple[float, int]] = {}  # key → (monotonic time read, shared total)
        self._pending: dict[tuple[str, float], list[float]] = {}  # (key, start) → [n, expires, window]
        self._pending_key: dict[str, int] = {}  # key → events not yet written
        self._cache_max = _CACHE_MAX
        self._flusher: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None  # set by close(): the flusher's signal to end

    async def open(self) -> None:
        await self.store.open()
        self._stop = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        # Told to stop rather than cancelled: a cancel landing in an awaited write
        # (PostgreSQL) would lose the events it carries, written or not.
        stop = self._stop
        assert stop is not None
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.refresh)
                return
            except TimeoutError:
                pass
            try:
                await self.flush()
            except Exception:  # advisory counters: log, keep serving
                log.exception("rate limits: writing the counters failed")

    def count(self, key: str) -> int:
        t = self._totals.get(key)
        return (t[1] if t else 0) + self._pending_key.get(key, 0)

    async def take(self, asks: Sequence[Ask], now: float | None = None, also: Sequence[str] = ()) -> list[int]:
        """The count of each key before this event; the event is added to every key
        with ``add`` only when each count is under its limit (all or nothing). ``also``:
        keys the next events will ask, read now in the same query if they are stale."""
        mono = time.monotonic()
        wall = time.time() if now is None else now
        totals = self._totals
        stale = [a.key for a in asks if (t := totals.get(a.key)) is None or mono - t[0] >= self.refresh]
        if stale:
            stale += [k for k in also if (t := totals.get(k)) is None or mono - t[0] >= self.refresh]
            found = await self.store.totals(stale, wall)
            if found is not None:
                if len(totals) >= self._cache_max:
                    self._drop_stale(mono)
                for k in stale:
                    totals[k] = (mono, found.get(k, 0))
        counts = [self.count(a.key) for a in asks]
        if all(c < a.limit for c, a in zip(counts, asks)):
            for a in asks:
                if a.add:
                    self.add(a.key, a.window, wall)
        return counts

    def add(self, key: str, window: float, now: float | None = None) -> None:
        """Count an event that has already happened (an error reply, an AUTH failure)."""
        now = time.time() if now is None else now
        start = bucket_start(now, window)
        p = self._pending.get((key, start))
        if p is None:
            self._pending[(key, start)] = [1, start + window, window]
        else:
            p[0] += 1
        self._pending_key[key] = self._pending_key.get(key, 0) + 1

    async def flush(self, now: float | None = None) -> None:
        """Write the pending events (every ``refresh`` seconds, and at close)."""
        if not self._pending:
            return
        now = time.time() if now is None else now
        rows = [(k, start, int(p[0]), p[1], p[2]) for (k, start), p in self._pending.items()]
        pending_key, self._pending, self._pending_key = self._pending_key, {}, {}
        # What was pending is now part of the shared total this process knows.
        for k, n in pending_key.items():
            t = self._totals.get(k)
            if t is not None:
                self._totals[k] = (t[0], t[1] + n)
        if await self.store.write(rows, now):
            return
        # Not written (the store is locked or away): keep them for the next flush, so that
        # this process goes on counting them; those out of every window are dropped.
        for k, n in pending_key.items():
            t = self._totals.get(k)
            if t is not None:
                self._totals[k] = (t[0], t[1] - n)
        for k, start, n, expires, window in rows:
            if expires > now:
                p = self._pending.setdefault((k, start), [0, expires, window])
                p[0] += n
                self._pending_key[k] = self._pending_key.get(k, 0) + n

    def _drop_stale(self, mono: float) -> None:
        for k in [k for k, (at, _n) in self._totals.items() if mono - at >= self.refresh]:
            del self._totals[k]
        # Scanned again only once the live keys have doubled: a burst of new clients costs
        # a constant amount per event, not a scan each.
        self._cache_max = max(_CACHE_MAX, 2 * len(self._totals))

    async def rows(self) -> list[Row]:
        return await self.store.rows()

    async def clear(self, key: str | None) -> int:
        """Forget a key (every key whose value part is ``key`` too); None: every key."""
        self._totals.clear()
        return await self.store.clear(key)

    async def close(self) -> None:
        """The last events are retried, not dropped, while the store refuses them (a busy
        file, a database away): a flood must not gain a worker's counts each time one
        stops (module doc). Bounded by ``close_wait``: a stop never hangs on advisory counts."""
        flusher, self._flusher = self._flusher, None
        if self._stop is not None:
            self._stop.set()
        try:
            if flusher is not None:
                await asyncio.wait({flusher})  # a write in progress finishes; how the task ended is its own
            deadline = time.monotonic() + self.close_wait
            while True:
                await self.flush()
                if not self._pending:
                    break
                if time.monotonic() >= deadline:
                    log.error("rate limits: %d counted events could not be written to the shared counters "
                              "in %.0f s; this process's last counts are lost",
                              sum(self._pending_key.values()), self.close_wait)
                    break
                await asyncio.sleep(CLOSE_PAUSE)
        finally:
            await self.store.close()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    key TEXT NOT NULL,
    start REAL NOT NULL,   -- the bucket's first second (Unix time)
    n INTEGER NOT NULL,
    expires REAL NOT NULL, -- start + window: from then on it counts in no window
    window REAL NOT NULL,
    PRIMARY KEY (key, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counts_expires ON counts (expires);
"""
_UPSERT = ("INSERT INTO counts (key, start, n, expires, window) VALUES (?, ?, ?, ?, ?) "
           "ON CONFLICT (key, start) DO UPDATE SET n = n + excluded.n")


class SqliteStore:
    """One small SQLite file shared by the worker processes of one machine.

    Statements run on the event loop: a read of a few keys, or one write a second, is a
    few tens of microseconds on a file in the page cache, less than a hop to a thread.
    Workers writing at the same instant wait for each other at most ``busy_timeout``
    (100 ms), which bounds how long a busy file holds up the event loop; then the events
    stay pending for the next write (logged once).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 100")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = OFF")  # advisory counters: no fsync (module doc)
        self.db.executescript(_SCHEMA)
        self._next_prune = 0.0
        self._failing = False

    def _failed(self, exc: sqlite3.Error) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if not self._failing:
            self._failing = True
            log.warning("rate limits: %s: %s; counting in this process only until it works again",
                        self.path, exc)

    async def open(self) -> None:
        return None

    def totals_now(self, keys: Sequence[str], now: float) -> dict[str, int] | None:
        try:
            cur = self.db.execute(f"SELECT key, sum(n) FROM counts WHERE key IN ({','.join('?' * len(keys))}) "
                                  "AND expires > ? GROUP BY key", (*keys, now))
            return {k: int(n) for k, n in cur.fetchall()}
        except sqlite3.Error as exc:
            self._failed(exc)
            return None

    async def totals(self, keys: Sequence[str], now: float) -> dict[str, int] | None:
        return self.totals_now(keys, now)

    def write_now(self, rows: Sequence[Pending], now: float) -> bool:
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_UPSERT, rows)
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                db.execute("DELETE FROM counts WHERE expires <= ?", (now,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(exc)
            return False
        self._failing = False
        return True

    async def write(self, rows: Sequence[Pending], now: float) -> bool:
        return self.write_now(rows, now)

    async def rows(self) -> list[Row]:
        cur = self.db.execute("SELECT key, sum(n), max(window) FROM counts WHERE expires > ? GROUP BY key "
                              "ORDER BY key", (time.time(),))
        return [Row(k, int(n), float(w)) for k, n, w in cur.fetchall()]

    async def clear(self, key: str | None) -> int:
        keys = [k for (k,) in self.db.execute("SELECT DISTINCT key FROM counts") if key is None or matches(k, key)]
        self.db.executemany("DELETE FROM counts WHERE key = ?", [(k,) for k in keys])
        return len(keys)

    async def close(self) -> None:
        self.db.close()


#: Component "ratelimit" of the PostgreSQL schema (postroom.storage.postgresql.schema).
#: Appended to, never edited.
PG_MIGRATIONS: tuple[str, ...] = (
    # 1: the buckets of SqliteStore (times in Unix seconds).
    """
    CREATE TABLE ratelimit_counts (
        key text NOT NULL,
        start float8 NOT NULL,
        n integer NOT NULL,
        expires float8 NOT NULL,
        "window" float8 NOT NULL,
        PRIMARY KEY (key, start)
    );
    CREATE INDEX ratelimit_counts_expires ON ratelimit_counts (expires);
    """,
)

_PG_TOTALS = """
SELECT key, sum(n)::int FROM ratelimit_counts WHERE key = ANY($1::text[]) AND expires > $2 GROUP BY key
"""
_PG_WRITE = """
INSERT INTO ratelimit_counts (key, start, n, expires, "window")
SELECT * FROM unnest($1::text[], $2::float8[], $3::int[], $4::float8[], $5::float8[])
ON CONFLICT (key, start) DO UPDATE SET n = ratelimit_counts.n + excluded.n
"""
_PG_ROWS = """
SELECT key, sum(n)::int, max("window") FROM ratelimit_counts WHERE expires > $1 GROUP BY key ORDER BY key
"""
_PG_PRUNE = "DELETE FROM ratelimit_counts WHERE expires <= $1"

PG_TIMEOUT = 1.0  # seconds a statement may take before the node counts on its own
PG_RETRY = 5.0  # seconds the database is left alone after it failed


class PgStore:
    """The same buckets in PostgreSQL, shared by every node (scale-out). Bucket times are
    each node's clock: nodes are expected to run NTP (a second of drift moves a bucket
    edge by a second, which a window of minutes does not notice)."""

    def __init__(self, pg: PgSettings) -> None:
        from .pgstate import FailOpenPool

        self.db = FailOpenPool(pg, "ratelimit", PG_MIGRATIONS, "rate limits", log, PG_TIMEOUT, PG_RETRY)
        self._next_prune = 0.0

    async def _run(self, fetch: str, sql: str, *args: object) -> Any:
        """One statement; None when the database cannot be asked now (the process then
        counts on its own)."""
        return await self.db.run(lambda conn: getattr(conn, fetch)(sql, *args))

    async def open(self) -> None:
        """Connect and migrate now, so that the first client does not wait for it; a
        database that is away is asked again later."""
        await self._run("execute", "SELECT 1")

    async def totals(self, keys: Sequence[str], now: float) -> dict[str, int] | None:
        rows = await self._run("fetch", _PG_TOTALS, list(keys), now)
        return None if rows is None else {r[0]: int(r[1]) for r in rows}

    async def write(self, rows: Sequence[Pending], now: float) -> bool:
        cols = list(zip(*rows))
        done = await self._run("execute", _PG_WRITE, *[list(c) for c in cols]) is not None
        if done and now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            await self._run("execute", _PG_PRUNE, now)
        return done

    async def rows(self) -> list[Row]:
        rows = await self._run("fetch", _PG_ROWS, time.time())
        return [Row(r[0], int(r[1]), float(r[2])) for r in rows or ()]

    async def clear(self, key: str | None) -> int:
        keys = [r.key for r in await self.rows() if key is None or matches(r.key, key)]
        if keys:
            await self._run("execute", "DELETE FROM ratelimit_counts WHERE key = ANY($1::text[])", keys)
        return len(keys)

    async def close(self) -> None:
        await self.db.close()


def open_store(cfg: Config) -> SharedStore:
    """The installation's shared store: PostgreSQL when the mail store is, else SQLite."""
    if cfg.backend == "postgresql" and cfg.pg is not None:
        return PgStore(cfg.pg)
    return SqliteStore(cfg.data_dir / FILE_NAME)
