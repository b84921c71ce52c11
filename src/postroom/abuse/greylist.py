"""Greylisting (RFC 6647): a stranger's first attempt for a (client, sender, recipient)
triplet is answered ``451 4.7.1``; a real MTA retries from its queue and is let through
after ``delay``, while most spam software never comes back.

The decision (:func:`decide`) is pure; the state is one SQLite file under the data
directory (``greylist.sqlite``), opened in WAL mode by every worker process, so that a
restart or a second worker remembers who already waited; with the PostgreSQL store, two
tables there (component ``greylist``), so that every node does. A client that has passed
``whitelist_after`` triplets is whitelisted as a whole (RFC 6647 §5: "auto-whitelisting")
for ``keep`` after its last message.

Greylisting state is not mail: the file is written with ``synchronous=NORMAL`` (a power
cut may forget the last second of it, which only costs a sender one more retry), and a
store that cannot be read or written (or a database that is away) lets the mail through (logged) rather than delaying
everybody's mail by a database problem.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import log
from .pgstate import FailOpenPool
from .screen_settings import GreylistSettings

if TYPE_CHECKING:
    from ..config import Config, PgSettings
    from ..context import ServerContext

logger = log.get("abuse")

FILE = "greylist.sqlite"


@dataclass(frozen=True, slots=True)
class Triplet:
    """What greylisting remembers of one (client, sender, recipient)."""

    first: float  # time of the first (refused) attempt
    passed: float | None  # when a retry was accepted; None while still waiting
    last: float  # the last attempt


@dataclass(frozen=True, slots=True)
class Verdict:
    accept: bool
    wait: float  # seconds left before a retry is accepted (when refused)
    row: Triplet  # what to store for the triplet
    newly_passed: bool  # this attempt is the first accepted retry (counts for the client)


def client_key(ip: str, s: GreylistSettings) -> str:
    """The client as greylisting sees it: its network, since big senders retry from
    another host of the same pool (RFC 6647 §4.1)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = s.ipv4_prefix if addr.version == 4 else s.ipv6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def decide(row: Triplet | None, now: float, s: GreylistSettings) -> Verdict:
    """The answer to one attempt, and the triplet's new state."""
    if row is not None and row.passed is not None:
        if now - row.last <= s.keep:
            return Verdict(True, 0.0, Triplet(row.first, row.passed, now), False)
        row = None  # not seen for too long: it waits again
    if row is not None and now - row.first > s.retry_window:
        row = None  # retried too late: starts over, as a first attempt
    if row is None:
        return Verdict(False, s.delay, Triplet(now, None, now), False)
    waited = now - row.first
    if waited < s.delay:
        # The first attempt's time is kept: retrying often does not push the pass back.
        return Verdict(False, s.delay - waited, Triplet(row.first, None, now), False)
    return Verdict(True, 0.0, Triplet(row.first, now, now), True)


def whitelisted(known: tuple[int, float] | None, now: float, s: GreylistSettings) -> bool:
    """Whether a client with ``known`` = (passed triplets, last use) skips greylisting."""
    return bool(s.whitelist_after and known is not None and known[0] >= s.whitelist_after
                and now - known[1] <= s.keep)


def passes_after(known: tuple[int, float] | None, now: float, s: GreylistSettings) -> int:
    """The client's count once one more of its triplets passed (a count unused for
    ``keep`` starts again)."""
    return 1 if known is None or now - known[1] > s.keep else known[0] + 1


class GreylistStore(Protocol):
    async def check(self, ip: str, sender: str, rcpt: str, s: GreylistSettings) -> Verdict | None:
        """The verdict for one RCPT; ``None`` when the client is whitelisted."""

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS triplets (
    client TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,
    first REAL NOT NULL, passed REAL, last REAL NOT NULL,
    PRIMARY KEY (client, sender, rcpt)
);
CREATE INDEX IF NOT EXISTS triplets_last ON triplets (last);
CREATE TABLE IF NOT EXISTS clients (
    client TEXT PRIMARY KEY, passes INTEGER NOT NULL, last REAL NOT NULL
);
"""
PRUNE_EVERY = 3600.0  # seconds between deletions of expired rows (per process)


class SqliteGreylist:
    """The state in ``greylist.sqlite`` (one connection per process, used from a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pruned = 0.0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def check(self, ip: str, sender: str, rcpt: str, s: GreylistSettings) -> Verdict | None:
        return await asyncio.to_thread(self.check_now, ip, sender, rcpt, s, time.time())

    def check_now(self, ip: str, sender: str, rcpt: str, s: GreylistSettings, now: float) -> Verdict | None:
        client = client_key(ip, s)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")  # read and write as one step across workers
            try:
                known = db.execute("SELECT passes, last FROM clients WHERE client = ?", (client,)).fetchone()
                if whitelisted(known, now, s):
                    db.execute("UPDATE clients SET last = ? WHERE client = ?", (now, client))
                    verdict = None
                else:
                    key = (client, sender.lower(), rcpt.lower())
                    got = db.execute("SELECT first, passed, last FROM triplets WHERE client = ? AND sender = ?"
                                     " AND rcpt = ?", key).fetchone()
                    verdict = decide(Triplet(*got) if got else None, now, s)
                    row = verdict.row
                    db.execute("INSERT OR REPLACE INTO triplets VALUES (?, ?, ?, ?, ?, ?)",
                               (*key, row.first, row.passed, row.last))
                    if verdict.newly_passed:
                        db.execute("INSERT OR REPLACE INTO clients VALUES (?, ?, ?)",
                                   (client, passes_after(known, now, s), now))
                if now - self._pruned > PRUNE_EVERY:
                    self._pruned = now
                    # Waiting triplets past their retry window, passed ones unused for keep.
                    db.execute("DELETE FROM triplets WHERE (passed IS NULL AND first < ?) OR last < ?",
                               (now - s.retry_window, now - s.keep))
                    db.execute("DELETE FROM clients WHERE last < ?", (now - s.keep,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return verdict

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


#: Component "greylist" of the PostgreSQL schema (postroom.storage.postgresql.schema).
#: Appended to, never edited.
PG_MIGRATIONS: tuple[str, ...] = (
    # 1: the same two tables as greylist.sqlite; times are Unix seconds of the node that
    # wrote them (greylisting works in minutes: NTP-synchronised nodes agree well enough).
    """
    CREATE TABLE greylist_triplets (
        client text NOT NULL, sender text NOT NULL, rcpt text NOT NULL,
        first float8 NOT NULL, passed float8, last float8 NOT NULL,
        PRIMARY KEY (client, sender, rcpt)
    );
    CREATE INDEX greylist_triplets_last ON greylist_triplets (last);
    CREATE TABLE greylist_clients (
        client text PRIMARY KEY, passes integer NOT NULL, last float8 NOT NULL
    );
    """,
)
PG_TIMEOUT = 2.0  # seconds one check may take before the mail passes ungreylisted
PG_RETRY = 5.0  # seconds the database is left alone after it failed


class PgGreylist:
    """The same state in PostgreSQL, shared by every node of a scale-out installation."""

    def __init__(self, pg: PgSettings) -> None:
        self.db = FailOpenPool(pg, "greylist", PG_MIGRATIONS, "greylisting", logger, PG_TIMEOUT, PG_RETRY)
        self._pruned = 0.0

    async def check(self, ip: str, sender: str, rcpt: str, s: GreylistSettings) -> Verdict | None:
        return await self.check_at(ip, sender, rcpt, s, time.time())

    async def check_at(self, ip: str, sender: str, rcpt: str, s: GreylistSettings, now: float) -> Verdict | None:
        """As :meth:`check`; a database that cannot be asked lets the mail pass (logged)."""
        client = client_key(ip, s)
        return await self.db.run(lambda conn: self._step(conn, client, sender.lower(), rcpt.lower(), s, now),
                                 transaction=True)

    async def _step(self, conn: Any, client: str, sender: str, rcpt: str, s: GreylistSettings,
                    now: float) -> Verdict | None:
        got = await conn.fetchrow("SELECT passes, last FROM greylist_clients WHERE client = $1 FOR UPDATE", client)
        known = (int(got[0]), float(got[1])) if got else None
        if whitelisted(known, now, s):
            await conn.execute("UPDATE greylist_clients SET last = $2 WHERE client = $1", client, now)
            return None
        got = await conn.fetchrow("SELECT first, passed, last FROM greylist_triplets WHERE client = $1 AND "
                                  "sender = $2 AND rcpt = $3 FOR UPDATE", client, sender, rcpt)
        verdict = decide(Triplet(got[0], got[1], got[2]) if got else None, now, s)
        row = verdict.row
        # Two nodes seeing a new triplet at once both insert it: the later write wins, and
        # either is a first attempt.
        await conn.execute("INSERT INTO greylist_triplets VALUES ($1, $2, $3, $4, $5, $6) "
                           "ON CONFLICT (client, sender, rcpt) DO UPDATE SET first = EXCLUDED.first, "
                           "passed = EXCLUDED.passed, last = EXCLUDED.last",
                           client, sender, rcpt, row.first, row.passed, row.last)
        if verdict.newly_passed:
            await conn.execute("INSERT INTO greylist_clients VALUES ($1, $2, $3) ON CONFLICT (client) DO UPDATE "
                               "SET passes = EXCLUDED.passes, last = EXCLUDED.last",
                               client, passes_after(known, now, s), now)
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            await conn.execute("DELETE FROM greylist_triplets WHERE (passed IS NULL AND first < $1) OR last < $2",
                               now - s.retry_window, now - s.keep)
            await conn.execute("DELETE FROM greylist_clients WHERE last < $1", now - s.keep)
        return verdict

    async def close(self) -> None:
        await self.db.close()


def open_greylist(cfg: Config) -> GreylistStore:
    """PostgreSQL when the store is (every node shares it), else the SQLite file."""
    if cfg.backend == "postgresql" and cfg.pg is not None:
        return PgGreylist(cfg.pg)
    return SqliteGreylist(cfg.data_dir / FILE)


_stores: dict[int, GreylistStore] = {}  # id(ServerContext) → its greylist (closed at stop)


def shared(ctx: ServerContext) -> GreylistStore:
    """The process's greylist state, opened on first use (settings are passed per call,
    so a reload that changes them needs no new store)."""
    g = _stores.get(id(ctx))
    if g is None:
        g = _stores[id(ctx)] = open_greylist(ctx.config)
    return g


async def stop_services(ctx: ServerContext) -> None:
    g = _stores.pop(id(ctx), None)
    if g is not None:
        await g.close()
