"""The outbound queue in PostgreSQL, shared by every node (``[storage] backend = "postgresql"``).

Same interface as :class:`~postroom.outbound.queue.SqliteQueue` (``QueueBackend``), but
nothing lives on the node: the envelope, the per-recipient state and the message bytes
are rows, so any node can deliver, list, hold or delete any message.

Every node runs a runner. :meth:`PgQueue.due` *claims*: in one statement it locks the
candidate messages with ``FOR NO KEY UPDATE SKIP LOCKED`` (two runners never wait for or
take the same message) and sets ``leased_until``/``leased_by`` on their due recipients.
Other runners skip leased recipients until the lease ends, so each recipient is tried by
one node at a time. Recording an outcome clears the lease; a runner renews the leases of
attempts that run long; a killed node's leases simply expire and its recipients become
due for the others (docs/outbound.md, "Queue on PostgreSQL").

Times are the nodes' clocks (seconds since the epoch, as in the SQLite queue): nodes
must keep their clocks synchronised (NTP) to well within the lease.

An enqueue is one statement (its own transaction): it returns after COMMIT, and its
``pg_notify`` reaches the other nodes' listeners when it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

from ..config import PgSettings
from ..errors import StoreUnavailable
from ..log import new_id
from ..storage.postgresql import schema
from ..storage.postgresql.connect import acquire, connect, create_pool, is_unavailable
from .api import Envelope
from .queue import (
    Outcome,
    QueuedMessage,
    QueuedRecipient,
    QueueStats,
    RcptState,
    domain_of,
    envelope_from,
    envelope_meta,
)

log = logging.getLogger("postroom.outbound")

CHANNEL = "postroom_queue"  # NOTIFY channel: new or rescheduled mail
DEFAULT_LEASE = 300.0
LISTEN_RETRY = 5.0  # seconds between attempts to re-open a lost listener connection

# Migrations of the "queue" component: appended, never edited (storage/postgresql/schema.py).
# Tables are prefixed: they share the database with the store's.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE queue_messages (
      id text PRIMARY KEY,
      sender text NOT NULL,
      envelope jsonb NOT NULL,          -- ret, envid, smtputf8, body_8bit, received_from, extra
      size integer NOT NULL,
      created double precision NOT NULL,
      held boolean NOT NULL DEFAULT false
    );
    CREATE INDEX queue_messages_created ON queue_messages (created);
    CREATE TABLE queue_bodies (
      msg_id text PRIMARY KEY REFERENCES queue_messages (id) ON DELETE CASCADE,
      body bytea NOT NULL
    );
    CREATE TABLE queue_recipients (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      msg_id text NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
      address text NOT NULL,
      domain text NOT NULL,
      notify text NOT NULL DEFAULT '',
      orcpt text,
      state text NOT NULL CHECK (state IN ('pending', 'deferred', 'delivered', 'bounced')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt double precision NOT NULL,
      last_error text NOT NULL DEFAULT '',
      last_status text NOT NULL DEFAULT '',
      remote_mta text NOT NULL DEFAULT '',
      delay_notified boolean NOT NULL DEFAULT false,
      leased_until double precision,    -- claimed by leased_by until then (NULL: not claimed)
      leased_by text
    );
    -- The runners' scan: active recipients in next_attempt order (a partial index stays small).
    CREATE INDEX queue_recipients_due ON queue_recipients (next_attempt)
      WHERE state IN ('pending', 'deferred');
    CREATE INDEX queue_recipients_msg ON queue_recipients (msg_id);
    CREATE INDEX queue_recipients_domain ON queue_recipients (domain)
      WHERE state IN ('pending', 'deferred');
    """,
)

ACTIVE = "r.state IN ('pending', 'deferred')"
_RCOLS = ("r.id, r.msg_id, r.address, r.domain, r.notify, r.orcpt, r.state, r.attempts, r.next_attempt,"
          " r.last_error, r.last_status, r.remote_mta, r.delay_notified")
_MCOLS = "m.id, m.sender, m.envelope, m.size, m.created, m.held"

# One statement, so one transaction: candidates in next_attempt order (free, unheld, due),
# their messages locked without waiting (another runner's claim in progress is skipped, not
# waited for), and the due free recipients of those messages leased. FOR NO KEY UPDATE does
# not block an enqueue's foreign-key check. Rows changed by a claim that committed after this
# statement's snapshot are re-checked by the UPDATE (READ COMMITTED re-evaluates its WHERE on
# the newest row version), so a recipient is never leased twice.
# This node's own claims count as free unless ``exclude`` names them: the runner passes every
# recipient it has in flight, so a claim of ours outside that set was left by a job that
# failed while the database was down (its release failed too) and is taken up again at once
# instead of waiting out the lease.
_CLAIM = f"""
WITH cand AS (
  SELECT r.msg_id FROM queue_recipients r JOIN queue_messages m ON m.id = r.msg_id
  WHERE {ACTIVE} AND r.next_attempt <= $1 AND NOT m.held
    AND (r.leased_until IS NULL OR r.leased_until <= $1 OR r.leased_by = $6) AND r.id <> ALL($3::bigint[])
  ORDER BY r.next_attempt LIMIT $4
), locked AS (
  SELECT m.id FROM queue_messages m
  WHERE m.id IN (SELECT msg_id FROM cand) AND NOT m.held
  ORDER BY m.created LIMIT $2
  FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE queue_recipients r SET leased_until = $1 + $5, leased_by = $6
FROM locked
WHERE r.msg_id = locked.id AND {ACTIVE} AND r.next_attempt <= $1
  AND (r.leased_until IS NULL OR r.leased_until <= $1 OR r.leased_by = $6) AND r.id <> ALL($3::bigint[])
RETURNING {_RCOLS}
"""

_ENQUEUE = f"""
WITH m AS (
  INSERT INTO queue_messages (id, sender, envelope, size, created) VALUES ($1, $2, $3::jsonb, $4, $5)
), b AS (
  INSERT INTO queue_bodies (msg_id, body) VALUES ($1, $6)
), r AS (
  INSERT INTO queue_recipients (msg_id, address, domain, notify, orcpt, state, next_attempt)
  SELECT $1, u.a, u.d, u.n, u.o, 'pending', $5
  FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS u(a, d, n, o, i)
  ORDER BY u.i
)
SELECT pg_notify('{CHANNEL}', $1)
"""

_RECORD = """
UPDATE queue_recipients r SET state = u.state, attempts = r.attempts + 1, next_attempt = u.next_attempt,
  last_error = u.error, last_status = u.status, remote_mta = u.mta, leased_until = NULL, leased_by = NULL
FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::text[])
  AS u(id, state, next_attempt, error, status, mta)
WHERE r.id = u.id
"""

_DELETE_IF_DONE = f"""
DELETE FROM queue_messages m WHERE m.id = $1
  AND NOT EXISTS (SELECT 1 FROM queue_recipients r WHERE r.msg_id = $1 AND {ACTIVE})
"""


def node_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is another node)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _recipient(r: asyncpg.Record) -> QueuedRecipient:
    return QueuedRecipient(
        id=r["id"], msg_id=r["msg_id"], address=r["address"], domain=r["domain"],
        notify=tuple(x for x in r["notify"].split(",") if x), orcpt=r["orcpt"], state=RcptState(r["state"]),
        attempts=r["attempts"], next_attempt=r["next_attempt"], last_error=r["last_error"],
        last_status=r["last_status"], remote_mta=r["remote_mta"], delay_notified=r["delay_notified"])


def _messages(mrows: Sequence[asyncpg.Record], rrows: Sequence[asyncpg.Record]) -> list[QueuedMessage]:
    by_msg: dict[str, list[QueuedRecipient]] = {}
    for r in rrows:
        by_msg.setdefault(r["msg_id"], []).append(_recipient(r))
    out = []
    for m in mrows:
        rcpts = tuple(sorted(by_msg.get(m["id"], ()), key=lambda r: r.id))
        env = envelope_from(m["sender"], m["envelope"], rcpts)
        out.append(QueuedMessage(m["id"], env, m["size"], m["created"], m["held"], rcpts))
    return out


class PgQueue:
    """The queue on a pool of its own; open with :meth:`open`, one per process."""

    def __init__(self, pg: PgSettings, lease: float = DEFAULT_LEASE, clock: Callable[[], float] = time.time,
                 pool_size: int | None = None) -> None:
        self.pg = pg
        self.lease = float(lease)
        self.clock = clock
        self.node = node_id()
        # Half the store's pool: queue statements are short (one round trip each) and a
        # node's connections to PostgreSQL add up over its workers.
        self._pool_size = pool_size if pool_size is not None else max(2, pg.pool_size // 2)
        self._pool: asyncpg.Pool | None = None

    # -- plumbing ----------------------------------------------------------------
    async def open(self) -> PgQueue:
        """Connect and bring the queue's tables up to date (SchemaTooNew: refuse to start)."""
        try:
            self._pool = await create_pool(self.pg, max_size=self._pool_size)
            async with self._pool.acquire() as conn:
                await schema.apply(conn, "queue", MIGRATIONS)
        except Exception as exc:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
            if is_unavailable(exc):
                raise StoreUnavailable(f"the queue database cannot be reached: {exc}") from exc
            raise
        return self

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(10):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a lost or unreachable database becomes StoreUnavailable
        (SMTP answers 451, the runner logs a line and tries again later)."""
        if self._pool is None:
            raise StoreUnavailable("the outbound queue is not open")
        try:
            async with acquire(self._pool) as conn:  # a connection the server ended frees its slot
                yield conn
        except StoreUnavailable:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailable(f"the queue database is unavailable: {exc}") from exc
            raise

    # -- enqueue -----------------------------------------------------------------
    async def enqueue(self, envelope: Envelope, raw: bytes) -> str:
        """Returns after COMMIT (synchronous_commit on): the 250 after DATA may be sent."""
        if not envelope.recipients:
            raise ValueError("no recipients")
        msg_id = new_id() + new_id()[:4]
        rcpts = envelope.recipients
        async with self._conn() as conn:
            await conn.execute(_ENQUEUE, msg_id, envelope.sender, envelope_meta(envelope), len(raw), self.clock(), raw,
                               [r.address for r in rcpts], [domain_of(r.address) for r in rcpts],
                               [",".join(r.notify) for r in rcpts], [r.orcpt for r in rcpts])
        return msg_id

    # -- reads -------------------------------------------------------------------
    async def read_body(self, msg_id: str) -> bytes:
        async with self._conn() as conn:
            body = await conn.fetchval("SELECT body FROM queue_bodies WHERE msg_id = $1", msg_id)
        if body is None:  # raised outside _conn: FileNotFoundError is an OSError
            raise FileNotFoundError(f"queued message {msg_id} is gone")
        return bytes(body)

    async def _select(self, conn: asyncpg.Connection, where: str = "", *args: Any) -> list[QueuedMessage]:
        mrows = await conn.fetch(f"SELECT {_MCOLS} FROM queue_messages m {where} ORDER BY m.created, m.id", *args)
        if not mrows:
            return []
        rrows = await conn.fetch(f"SELECT {_RCOLS} FROM queue_recipients r WHERE r.msg_id = ANY($1::text[])"
                                 " ORDER BY r.id", [m["id"] for m in mrows])
        return _messages(mrows, rrows)

    async def get(self, msg_id: str) -> QueuedMessage | None:
        async with self._conn() as conn:
            found = await self._select(conn, "WHERE m.id = $1", msg_id)
        return found[0] if found else None

    async def messages(self) -> list[QueuedMessage]:
        async with self._conn() as conn:
            return await self._select(conn)

    async def due(self, now: float, limit: int, exclude: Sequence[int] = ()) -> list[QueuedMessage]:
        """Claim up to ``limit`` messages' due recipients for ``lease`` seconds (see the module doc)."""
        if limit <= 0:
            return []
        async with self._conn() as conn:
            # Several candidates per message, and some taken by other runners: look a bit further.
            rrows = await conn.fetch(_CLAIM, now, limit, list(exclude), limit * 4, self.lease, self.node)
            if not rrows:
                return []
            ids = list(dict.fromkeys(r["msg_id"] for r in rrows))
            mrows = await conn.fetch(f"SELECT {_MCOLS} FROM queue_messages m WHERE m.id = ANY($1::text[])"
                                     " ORDER BY m.created, m.id", ids)
        return _messages(mrows, rrows)

    async def next_due(self) -> float | None:
        async with self._conn() as conn:
            v = await conn.fetchval(
                f"SELECT min(r.next_attempt) FROM queue_recipients r JOIN queue_messages m ON m.id = r.msg_id"
                f" WHERE {ACTIVE} AND NOT m.held")
        return float(v) if v is not None else None

    async def stats(self) -> QueueStats:
        """The whole cluster's queue (every node reports the same numbers)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM queue_messages) AS messages,"
                " (SELECT count(*) FROM queue_messages WHERE held) AS held,"
                " (SELECT min(created) FROM queue_messages) AS oldest,"
                f" (SELECT count(*) FROM queue_recipients r WHERE {ACTIVE}) AS rcpts")
        oldest = row["oldest"]
        return QueueStats(int(row["messages"]), int(row["held"]), int(row["rcpts"]),
                          float(oldest) if oldest is not None else None)

    # -- claims ------------------------------------------------------------------
    async def renew(self, rcpt_ids: Sequence[int], now: float) -> None:
        """Extend this node's leases (a claim another node took after ours expired stays theirs)."""
        if not rcpt_ids:
            return
        async with self._conn() as conn:
            await conn.execute("UPDATE queue_recipients SET leased_until = $2"
                               " WHERE id = ANY($1::bigint[]) AND leased_by = $3",
                               list(rcpt_ids), now + self.lease, self.node)

    async def release(self, rcpt_ids: Sequence[int]) -> None:
        if not rcpt_ids:
            return
        async with self._conn() as conn:
            await conn.execute("UPDATE queue_recipients SET leased_until = NULL, leased_by = NULL"
                               " WHERE id = ANY($1::bigint[]) AND leased_by = $2", list(rcpt_ids), self.node)

    async def listen(self, wake: Callable[[], None]) -> None:
        """Keep a LISTEN connection open and call ``wake`` on every notification, until
        cancelled. A lost connection is logged once and re-opened every few seconds; the
        runner's poll covers the gap (and ``wake`` is called on reconnection, for what
        was missed)."""
        down_since: float | None = None
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.pg)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda *_a: wake())
                if down_since is not None:
                    log.info("outbound queue: listening for new mail again")
                    down_since = None
                wake()
                await lost.wait()
                raise ConnectionError("the listener connection was closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("outbound queue: listening for new mail failed")
                elif down_since is None:
                    log.warning("outbound queue: lost the listener connection (%s); polling until it is back",
                                exc)
                if down_since is None:
                    down_since = time.monotonic()
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await conn.close()
                    if not conn.is_closed():
                        conn.terminate()
            await asyncio.sleep(LISTEN_RETRY)

    # -- writes ------------------------------------------------------------------
    async def record(self, outcomes: Sequence[Outcome], now: float, delay_notified: Sequence[int] = (),
                     finish: str | None = None) -> bool:
        outcomes = list(outcomes)
        async with self._conn() as conn, conn.transaction():
            if finish is not None:
                # Serialises the "last active recipient?" check with other nodes finishing
                # other recipients of this message, so one of them removes it.
                await conn.execute("SELECT 1 FROM queue_messages WHERE id = $1 FOR UPDATE", finish)
            if outcomes:
                await conn.execute(_RECORD, [o.rcpt_id for o in outcomes], [o.state.value for o in outcomes],
                                   [o.next_attempt or now for o in outcomes], [o.error for o in outcomes],
                                   [o.status for o in outcomes], [o.remote_mta for o in outcomes])
            if delay_notified:
                await conn.execute("UPDATE queue_recipients SET delay_notified = true WHERE id = ANY($1::bigint[])",
                                   list(delay_notified))
            if finish is None:
                return False
            return bool(await conn.execute(_DELETE_IF_DONE, finish) != "DELETE 0")

    async def mark_delay_notified(self, rcpt_ids: Sequence[int]) -> None:
        async with self._conn() as conn:
            await conn.execute("UPDATE queue_recipients SET delay_notified = true WHERE id = ANY($1::bigint[])",
                               list(rcpt_ids))

    async def finish_if_done(self, msg_id: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM queue_messages WHERE id = $1 FOR UPDATE", msg_id)
            return bool(await conn.execute(_DELETE_IF_DONE, msg_id) != "DELETE 0")

    async def reschedule(self, now: float, msg_id: str | None = None, domain: str | None = None,
                         subdomains: bool = False) -> int:
        """Make active recipients due now (flush, retry, release, ETRN) and wake every node's runner.
        A recipient being delivered keeps its lease: it is not tried twice at once."""
        sql = f"UPDATE queue_recipients r SET next_attempt = $1 WHERE {ACTIVE}"
        args: list[Any] = [now]
        if msg_id is not None:
            args.append(msg_id)
            sql += f" AND r.msg_id = ${len(args)}"
        if domain is not None:
            d = domain.lower().rstrip(".")
            args.append(d)
            if subdomains:
                args.append("%." + d.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
                sql += f" AND (r.domain = ${len(args) - 1} OR r.domain LIKE ${len(args)})"
            else:
                sql += f" AND r.domain = ${len(args)}"
        async with self._conn() as conn, conn.transaction():
            n = int((await conn.execute(sql, *args)).split()[-1])
            if n:
                await conn.execute(f"SELECT pg_notify('{CHANNEL}', '')")
        return n

    async def set_held(self, msg_id: str, held: bool) -> bool:
        async with self._conn() as conn:
            status = await conn.execute("UPDATE queue_messages SET held = $2 WHERE id = $1", msg_id, held)
        return status != "UPDATE 0"

    async def delete(self, msg_id: str) -> bool:
        """Remove now, without notice; an attempt already running on some node finishes and
        its outcome is dropped (its recipients are gone)."""
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM queue_messages WHERE id = $1", msg_id)
        return status != "DELETE 0"
