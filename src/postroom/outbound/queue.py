"""The durable outbound queue: messages, per-recipient state, hold/release.

:class:`QueueBackend` is the small interface the scheduler, the CLI and SMTP's
hand-off use; :class:`SqliteQueue` implements it with its own SQLite database
(WAL, ``synchronous=FULL``) next to one file per message, separate from the
mailbox store. :class:`~postroom.outbound.pgqueue.PgQueue` implements the same
Protocol in PostgreSQL, shared by every node.

Durability (the 250 after DATA depends on it): the message file is written,
fsynced, renamed into place and its directory fsynced *before* the rows are
committed, so a committed row always has its bytes. A crash between the two
leaves an orphan file, which :meth:`SqliteQueue.sweep_orphans` removes.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, TypeVar

from ..log import new_id
from ..storage.sqlite.engine import connect
from .api import Envelope, Recipient

T = TypeVar("T")


class RcptState(enum.Enum):
    PENDING = "pending"  # never tried
    DEFERRED = "deferred"  # tried, temporary failure; next_attempt and last_error set
    DELIVERED = "delivered"
    BOUNCED = "bounced"

    @property
    def final(self) -> bool:
        return self in (RcptState.DELIVERED, RcptState.BOUNCED)


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    id: int
    msg_id: str
    address: str
    domain: str
    notify: tuple[str, ...]
    orcpt: str | None
    state: RcptState
    attempts: int
    next_attempt: float
    last_error: str
    last_status: str
    remote_mta: str
    delay_notified: bool


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: str
    envelope: Envelope
    size: int
    created: float
    held: bool
    recipients: tuple[QueuedRecipient, ...]

    @property
    def sender(self) -> str:
        return self.envelope.sender

    def active(self) -> tuple[QueuedRecipient, ...]:
        return tuple(r for r in self.recipients if not r.state.final)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt did for one recipient."""

    rcpt_id: int
    state: RcptState
    status: str = ""  # RFC 3463, e.g. "2.0.0", "4.4.1", "5.1.1"
    error: str = ""  # diagnostic: the remote reply or our reason
    remote_mta: str = ""
    next_attempt: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueStats:
    messages: int  # in the queue, held ones included
    held: int
    recipients: int  # not yet delivered or bounced
    oldest: float | None  # arrival time of the oldest message (None: empty)


class QueueBackend(Protocol):
    """What the runner, the CLI, ETRN and SMTP's hand-off need of a queue.

    :class:`SqliteQueue` (one machine: a single runner chosen by the scheduler lock) and
    :class:`~postroom.outbound.pgqueue.PgQueue` (PostgreSQL: every node runs a runner,
    claims are leases) implement it.
    """

    # Seconds a claim by :meth:`due` lasts unless renewed; 0: no leases (one runner only).
    lease: float

    async def open(self) -> QueueBackend:
        """Make it usable (create or migrate its tables); returns itself."""
        ...
    async def enqueue(self, envelope: Envelope, raw: bytes) -> str: ...
    async def read_body(self, msg_id: str) -> bytes:
        """The message; FileNotFoundError when it is no longer queued (or its file was lost)."""
        ...
    async def get(self, msg_id: str) -> QueuedMessage | None: ...
    async def messages(self) -> list[QueuedMessage]:
        """Every queued message, oldest first."""
        ...
    async def due(self, now: float, limit: int, exclude: Sequence[int] = ()) -> list[QueuedMessage]:
        """Unheld messages with at least one active recipient whose next attempt is due;
        only the due recipients are included. With leases, the recipients returned are
        claimed for ``lease`` seconds: no other runner gets them until then. ``exclude``
        must name every recipient this runner has in flight."""
        ...
    async def renew(self, rcpt_ids: Sequence[int], now: float) -> None:
        """Extend this runner's claims on ``rcpt_ids`` (an attempt running long)."""
        ...
    async def release(self, rcpt_ids: Sequence[int]) -> None:
        """Give up claims without recording an outcome (a failed job, shutdown)."""
        ...
    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when another process adds or reschedules mail, until cancelled;
        returns at once where there is no such signal (the runner then only polls)."""
        ...
    async def next_due(self) -> float | None: ...
    async def stats(self) -> QueueStats: ...
    async def record(self, outcomes: Sequence[Outcome], now: float, delay_notified: Sequence[int] = (),
                     finish: str | None = None) -> bool:
        """Store an attempt's outcomes (and which recipients got a delay notice) in one
        transaction; with ``finish``, remove that message if no recipient is left active.
        Returns True if it was removed."""
        ...
    async def mark_delay_notified(self, rcpt_ids: Sequence[int]) -> None: ...
    async def finish_if_done(self, msg_id: str) -> bool:
        """Remove the message once every recipient is final; True if removed."""
        ...
    async def reschedule(self, now: float, msg_id: str | None = None, domain: str | None = None,
                         subdomains: bool = False) -> int:
        """Make active recipients due now (flush/retry/ETRN); returns how many."""
        ...
    async def set_held(self, msg_id: str, held: bool) -> bool: ...
    async def delete(self, msg_id: str) -> bool: ...
    async def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  envelope TEXT NOT NULL,      -- JSON: ret, envid, smtputf8, body_8bit, received_from, extra
  size INTEGER NOT NULL,
  created REAL NOT NULL,
  held INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recipients (
  id INTEGER PRIMARY KEY,
  msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  notify TEXT NOT NULL DEFAULT '',
  orcpt TEXT,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt REAL NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  last_status TEXT NOT NULL DEFAULT '',
  remote_mta TEXT NOT NULL DEFAULT '',
  delay_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recipients_due ON recipients(state, next_attempt);
CREATE INDEX IF NOT EXISTS recipients_msg ON recipients(msg_id);
CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain);
"""
SCHEMA_VERSION = 1
ACTIVE = ("pending", "deferred")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def envelope_meta(env: Envelope) -> str:
    """The envelope's fields besides sender and recipients, as stored (JSON)."""
    return json.dumps({"ret": env.ret, "envid": env.envid, "smtputf8": env.smtputf8, "body_8bit": env.body_8bit,
                       "received_from": env.received_from, "extra": env.extra})


def envelope_from(sender: str, meta_json: str, rcpts: Sequence[QueuedRecipient]) -> Envelope:
    """The :class:`Envelope` of a stored message (``envelope_meta`` reversed), for ``rcpts``."""
    meta = json.loads(meta_json)
    return Envelope(sender=sender, recipients=tuple(Recipient(r.address, r.notify, r.orcpt) for r in rcpts),
                    ret=meta.get("ret"), envid=meta.get("envid"), smtputf8=bool(meta.get("smtputf8")),
                    body_8bit=bool(meta.get("body_8bit")), received_from=meta.get("received_from", ""),
                    extra=meta.get("extra") or {})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SqliteQueue:
    """One per process; every SQL call runs on one private thread (no shared connection)."""

    lease = 0.0  # no claims: one runner per machine (the scheduler lock in service.py)

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.msg_dir = self.root / "msgs"
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound-queue")
        self._db: sqlite3.Connection | None = None
        # Group commit: writes from concurrent callers share one transaction (one fsync).
        self._batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flushing = False

    # -- plumbing ----------------------------------------------------------------
    def open_sync(self) -> "SqliteQueue":
        self.msg_dir.mkdir(parents=True, exist_ok=True)
        self._pool.submit(self._open).result()
        return self

    async def open(self) -> "SqliteQueue":
        self.msg_dir.mkdir(parents=True, exist_ok=True)
        await self._run(self._open)
        return self

    def _open(self) -> None:
        # WAL, synchronous=FULL (the 250 reply promises the commit is on disk), and a
        # retried switch to WAL when two workers open a new queue at the same moment.
        db = connect(self.root / "queue.db", check_same_thread=True)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            # Idempotent (IF NOT EXISTS), so two processes opening at once is harmless.
            db.executescript(SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
        self._db = db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op(db)`` inside a transaction shared with other waiting writes."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._batch.append((op, fut))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    results = await self._run(self._apply, [op for op, _ in batch])
                except BaseException as exc:  # the COMMIT failed: nobody's write is durable
                    results = [exc] * len(batch)
                for (_, fut), res in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            self._flushing = False

    def _apply(self, ops: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        results: list[Any] = []
        try:
            for op in ops:
                db.execute("SAVEPOINT op")
                try:
                    results.append(op(db))
                    db.execute("RELEASE op")
                except Exception as exc:  # this caller's op fails alone
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    results.append(exc)
            db.execute("COMMIT")  # synchronous=FULL: durable when this returns
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def _sync_write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        [res] = self._apply([op])
        if isinstance(res, BaseException):
            raise res
        return res  # type: ignore[no-any-return]

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a sync method on the queue thread from non-async code (the CLI)."""
        return self._pool.submit(fn, *args).result()

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "queue not opened"
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._db is not None:
            self._pool.submit(self._db.close).result()
            self._db = None
        self._pool.shutdown(wait=True)

    def _path(self, msg_id: str) -> Path:
        return self.msg_dir / msg_id

    # -- enqueue -----------------------------------------------------------------
    async def enqueue(self, envelope: Envelope, raw: bytes) -> str:
        if not envelope.recipients:
            raise ValueError("no recipients")
        msg_id = new_id() + new_id()[:4]
        # The file write and fsyncs run on the default pool so they overlap with
        # other enqueues; only the commit is serialised on the queue thread.
        await asyncio.to_thread(self._write_file, msg_id, raw)
        now = self.clock()
        await self._write(lambda db: self._insert(db, msg_id, envelope, len(raw), now))
        return msg_id

    def enqueue_sync(self, envelope: Envelope, raw: bytes) -> str:
        msg_id = new_id() + new_id()[:4]
        self._write_file(msg_id, raw)
        now = self.clock()
        self.call(self._sync_write, lambda db: self._insert(db, msg_id, envelope, len(raw), now))
        return msg_id

    def _write_file(self, msg_id: str, raw: bytes) -> None:
        final = self._path(msg_id)
        tmp = final.with_name(f".{msg_id}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(raw)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        _fsync_dir(self.msg_dir)

    @staticmethod
    def _insert(db: sqlite3.Connection, msg_id: str, env: Envelope, size: int, now: float) -> None:
        db.execute("INSERT INTO messages(id, sender, envelope, size, created) VALUES (?,?,?,?,?)",
                   (msg_id, env.sender, envelope_meta(env), size, now))
        db.executemany(
            "INSERT INTO recipients(msg_id, address, domain, notify, orcpt, state, next_attempt)"
            " VALUES (?,?,?,?,?,?,?)",
            [(msg_id, r.address, domain_of(r.address), ",".join(r.notify), r.orcpt, "pending", now)
             for r in env.recipients])

    # -- reads -------------------------------------------------------------------
    async def read_body(self, msg_id: str) -> bytes:
        return await asyncio.to_thread(self._path(msg_id).read_bytes)

    def _rows_to_messages(self, mrows: list[sqlite3.Row], rrows: list[sqlite3.Row]) -> list[QueuedMessage]:
        by_msg: dict[str, list[QueuedRecipient]] = {}
        for r in rrows:
            by_msg.setdefault(r[1], []).append(QueuedRecipient(
                id=r[0], msg_id=r[1], address=r[2], domain=r[3],
                notify=tuple(x for x in r[4].split(",") if x), orcpt=r[5], state=RcptState(r[6]),
                attempts=r[7], next_attempt=r[8], last_error=r[9], last_status=r[10], remote_mta=r[11],
                delay_notified=bool(r[12])))
        out = []
        for m in mrows:
            rcpts = tuple(by_msg.get(m[0], ()))
            out.append(QueuedMessage(m[0], envelope_from(m[1], m[2], rcpts), m[3], m[4], bool(m[5]), rcpts))
        return out

    _RCOLS = ("id, msg_id, address, domain, notify, orcpt, state, attempts, next_attempt, last_error,"
              " last_status, remote_mta, delay_notified")
    _MCOLS = "id, sender, envelope, size, created, held"

    def _select(self, where: str = "", args: Sequence[Any] = (), rwhere: str = "",
                rargs: Sequence[Any] = ()) -> list[QueuedMessage]:
        mrows = self.db.execute(f"SELECT {self._MCOLS} FROM messages {where} ORDER BY created", args).fetchall()
        if not mrows:
            return []
        ids = [m[0] for m in mrows]
        rrows: list[sqlite3.Row] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rrows += self.db.execute(
                f"SELECT {self._RCOLS} FROM recipients WHERE msg_id IN ({marks}) {rwhere} ORDER BY id",
                [*chunk, *rargs]).fetchall()
        return self._rows_to_messages(mrows, rrows)

    async def get(self, msg_id: str) -> QueuedMessage | None:
        return await self._run(self._get, msg_id)

    def _get(self, msg_id: str) -> QueuedMessage | None:
        found = self._select("WHERE id = ?", (msg_id,))
        return found[0] if found else None

    async def messages(self) -> list[QueuedMessage]:
        return await self._run(self._select)

    async def due(self, now: float, limit: int, exclude: Sequence[int] = ()) -> list[QueuedMessage]:
        return await self._run(self._due, now, limit, tuple(exclude))

    def _due(self, now: float, limit: int, exclude: tuple[int, ...]) -> list[QueuedMessage]:
        ex = set(exclude)
        rows = self.db.execute(
            "SELECT r.id, r.msg_id FROM recipients r JOIN messages m ON m.id = r.msg_id"
            " WHERE r.state IN ('pending','deferred') AND r.next_attempt <= ? AND m.held = 0"
            " ORDER BY r.next_attempt LIMIT ?", (now, limit + len(ex))).fetchall()
        ids = list(dict.fromkeys(msg for rid, msg in rows if rid not in ex))[:limit]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._select(f"WHERE id IN ({marks})", ids,
                            "AND state IN ('pending','deferred') AND next_attempt <= ?", (now,))

    async def renew(self, rcpt_ids: Sequence[int], now: float) -> None:
        """Nothing to renew: only the runner holding the scheduler lock delivers."""

    async def release(self, rcpt_ids: Sequence[int]) -> None:
        """Nothing to release (no claims)."""

    async def listen(self, wake: Callable[[], None]) -> None:
        """No cross-process signal: other workers' enqueues are seen by the poll."""

    async def next_due(self) -> float | None:
        return await self._run(self._next_due)

    def _next_due(self) -> float | None:
        row = self.db.execute(
            "SELECT MIN(r.next_attempt) FROM recipients r JOIN messages m ON m.id = r.msg_id"
            " WHERE r.state IN ('pending','deferred') AND m.held = 0").fetchone()
        return float(row[0]) if row[0] is not None else None

    async def stats(self) -> QueueStats:
        """How much is waiting and since when, for ``/metrics`` (two counts; the queue is small)."""
        return await self._run(self._stats)

    def _stats(self) -> QueueStats:
        messages, held, oldest = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(held), 0), MIN(created) FROM messages").fetchone()
        rcpts = self.db.execute("SELECT COUNT(*) FROM recipients WHERE state IN ('pending','deferred')").fetchone()[0]
        return QueueStats(int(messages), int(held), int(rcpts), float(oldest) if oldest is not None else None)

    # -- writes ------------------------------------------------------------------
    async def record(self, outcomes: Sequence[Outcome], now: float, delay_notified: Sequence[int] = (),
                     finish: str | None = None) -> bool:
        outcomes, delay_notified = list(outcomes), list(delay_notified)

        def op(db: sqlite3.Connection) -> bool:
            db.executemany(
                "UPDATE recipients SET state=?, attempts=attempts+1, next_attempt=?, last_error=?,"
                " last_status=?, remote_mta=? WHERE id=?",
                [(o.state.value, o.next_attempt or now, o.error, o.status, o.remote_mta, o.rcpt_id)
                 for o in outcomes])
            db.executemany("UPDATE recipients SET delay_notified=1 WHERE id=?", [(i,) for i in delay_notified])
            return finish is not None and self._delete_if_done(db, finish)

        removed = await self._write(op)
        if removed and finish is not None:
            await asyncio.to_thread(self._unlink, finish)
        return removed

    async def mark_delay_notified(self, rcpt_ids: Sequence[int]) -> None:
        ids = list(rcpt_ids)
        await self._write(lambda db: db.executemany("UPDATE recipients SET delay_notified=1 WHERE id=?",
                                                    [(i,) for i in ids]))

    @staticmethod
    def _delete_if_done(db: sqlite3.Connection, msg_id: str) -> bool:
        row = db.execute("SELECT COUNT(*) FROM recipients WHERE msg_id=? AND state IN ('pending','deferred')",
                         (msg_id,)).fetchone()
        if row[0]:
            return False
        return db.execute("DELETE FROM messages WHERE id=?", (msg_id,)).rowcount > 0

    def _unlink(self, msg_id: str) -> None:
        try:
            self._path(msg_id).unlink()
        except FileNotFoundError:
            pass

    async def finish_if_done(self, msg_id: str) -> bool:
        removed = await self._write(lambda db: self._delete_if_done(db, msg_id))
        if removed:
            await asyncio.to_thread(self._unlink, msg_id)
        return removed

    async def reschedule(self, now: float, msg_id: str | None = None, domain: str | None = None,
                         subdomains: bool = False) -> int:
        return await self._run(self._reschedule, now, msg_id, domain, subdomains)

    def _reschedule(self, now: float, msg_id: str | None, domain: str | None, subdomains: bool) -> int:
        sql = "UPDATE recipients SET next_attempt=? WHERE state IN ('pending','deferred')"
        args: list[Any] = [now]
        if msg_id is not None:
            sql += " AND msg_id=?"
            args.append(msg_id)
        if domain is not None:
            d = domain.lower().rstrip(".")
            if subdomains:
                sql += " AND (domain=? OR domain LIKE ? ESCAPE '\\')"
                args += [d, "%." + d.replace("%", "\\%").replace("_", "\\_")]
            else:
                sql += " AND domain=?"
                args.append(d)
        return self.db.execute(sql, args).rowcount

    async def set_held(self, msg_id: str, held: bool) -> bool:
        return await self._run(self._set_held, msg_id, held)

    def _set_held(self, msg_id: str, held: bool) -> bool:
        return self.db.execute("UPDATE messages SET held=? WHERE id=?", (int(held), msg_id)).rowcount > 0

    async def delete(self, msg_id: str) -> bool:
        return await self._run(self._delete, msg_id)

    def _delete(self, msg_id: str) -> bool:
        n = self.db.execute("DELETE FROM messages WHERE id=?", (msg_id,)).rowcount
        self._unlink(msg_id)
        return n > 0

    async def sweep_orphans(self, older_than: float = 3600.0) -> int:
        """Remove message files without a row (a crash between fsync and commit)."""
        return await self._run(self._sweep, older_than)

    def _sweep(self, older_than: float) -> int:
        known = {r[0] for r in self.db.execute("SELECT id FROM messages")}
        cutoff = time.time() - older_than
        n = 0
        for p in self.msg_dir.iterdir():
            name = p.name.lstrip(".").removesuffix(".tmp")
            if name not in known and p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                n += 1
        return n
