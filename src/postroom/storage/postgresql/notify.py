"""Change notifications across nodes: pg_notify after commit, one LISTEN connection per process.

Every write that changes a mailbox or an account records what it changed (:class:`Changes`).
Once it has committed, the store wakes this process's watchers at once and hands the
changes to the process's :class:`Notifier`, which sends them with ``pg_notify`` to every
node; each process keeps one listening connection (:class:`ChangeListener`) that wakes its
:class:`~postroom.storage.watch.WatchHub` watchers (IDLE, NOTIFY) and tells the store to
forget cached facts about the accounts named.

Why not pg_notify inside the writing transaction: PostgreSQL holds one database-wide lock
from a notifying transaction's pre-commit until its commit is flushed, so notifying
transactions commit one at a time and concurrent deliveries lose group commit (measured on
the test machine: 10 KB inserts, 16 at a time, 2.5 times slower with a NOTIFY in each; see
docs/storage.md). Sent afterwards, in a transaction of its own that writes nothing durable
(``synchronous_commit`` off for it: a notification need not survive a crash), the lock is
held for microseconds, and the Notifier coalesces the changes of many writes into one.

What can be missed, and how it is caught: a node that dies between a commit and the send,
and notifications sent while a listening connection is down. Each process's hub re-checks
every watched mailbox's HIGHESTMODSEQ every RECHECK seconds, and a listener that reconnects
wakes every watcher once (a wake only costs the watcher a re-check).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from ...config import PgSettings
from ..watch import WatchHub
from .connect import DB_ERRORS, acquire, connect, is_unavailable

CHANNEL = "postroom_changes"
# pg_notify payloads must stay under 8000 bytes; a batch of changes is split to fit.
_PAYLOAD_MAX = 7000
RECONNECT_DELAY = 0.5  # seconds between attempts while the database is away
RECHECK = 2.0  # seconds between the hub's safety re-checks of watched mailboxes
GATHER = 0.005  # seconds the notifier waits for more changes before sending

log = logging.getLogger("postroom.storage")


class Changes:
    """What one write changed: ``mailboxes`` (id → account id: messages, flags, expunges or the
    mailbox row) and ``accounts`` (the mailbox list, subscriptions, metadata, quota …)."""

    __slots__ = ("accounts", "mailboxes")

    def __init__(self) -> None:
        self.mailboxes: dict[int, int] = {}
        self.accounts: set[int] = set()

    def mailbox(self, mailbox_id: int, account_id: int) -> None:
        self.mailboxes[mailbox_id] = account_id

    def account(self, account_id: int) -> None:
        self.accounts.add(account_id)

    def update(self, other: Changes) -> None:
        self.mailboxes.update(other.mailboxes)
        self.accounts.update(other.accounts)

    def __bool__(self) -> bool:
        return bool(self.mailboxes or self.accounts)


def payloads(origin: str, changes: Changes) -> list[str]:
    """Payload texts: ``<origin>`` then tokens ``m<mailbox id>.<account id>`` and ``a<account id>``,
    separated by spaces, each text under PostgreSQL's limit."""
    tokens = [f"m{m}.{a}" for m, a in changes.mailboxes.items()] + [f"a{a}" for a in changes.accounts]
    out: list[str] = []
    cur: list[str] = [origin]
    size = len(origin)
    for tok in tokens:
        if size + len(tok) + 1 > _PAYLOAD_MAX:
            out.append(" ".join(cur))
            cur, size = [origin], len(origin)
        cur.append(tok)
        size += len(tok) + 1
    if len(cur) > 1:
        out.append(" ".join(cur))
    return out


def parse_payload(payload: str) -> tuple[str, Changes]:
    """(origin, changes) from a payload; malformed tokens are skipped."""
    origin, _, rest = payload.partition(" ")
    ch = Changes()
    for tok in rest.split():
        try:
            if tok[0] == "m":
                m, _, a = tok[1:].partition(".")
                ch.mailbox(int(m), int(a))
            elif tok[0] == "a":
                ch.account(int(tok[1:]))
        except ValueError:
            continue
    return origin, ch


class Notifier:
    """Sends this process's committed changes to every node, coalesced.

    :meth:`add` returns at once; a task sends what gathered meanwhile with one statement
    (per 7000 bytes of payload) on a pooled connection, so a burst of deliveries costs a
    handful of notifications rather than one each.
    """

    def __init__(self, pool: Callable[[], asyncpg.Pool | None], origin: str) -> None:
        self._pool = pool
        self.origin = origin
        self._pending = Changes()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="postroom-pg-notify")

    def add(self, changes: Changes) -> None:
        if changes:
            self._pending.update(changes)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                # Let a burst of commits gather: one notification instead of one each, for a
                # few milliseconds of the 100 ms that other nodes' watchers may take.
                await asyncio.sleep(GATHER)
            self._wake.clear()
            batch, self._pending = self._pending, Changes()
            if batch:
                try:
                    await self._send(batch)
                except Exception:  # a bug must not end this node's notifications for good
                    log.exception("change notification not sent")
            if self._closing and not self._pending:
                return

    async def _send(self, batch: Changes) -> None:
        pool = self._pool()
        if pool is None:
            return
        try:
            async with acquire(pool) as conn:
                for text in payloads(self.origin, batch):
                    # set_config(..., true): synchronous_commit off for this transaction only.
                    await conn.execute("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)",
                                       CHANNEL, text)
        except DB_ERRORS as exc:
            # Lost: the other nodes' re-checks (and their listeners' reconnection) catch up.
            level = logging.DEBUG if is_unavailable(exc) else logging.WARNING
            log.log(level, "change notification not sent: %s", exc)

    async def close(self) -> None:
        """Send what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass


def new_origin() -> str:
    """A token naming this store instance in payloads, so its own notifications are skipped."""
    return f"{os.getpid():x}-{os.urandom(4).hex()}"


class ChangeListener:
    """The process's one LISTEN connection; reconnects by itself when it drops."""

    def __init__(self, pg: PgSettings, hub: WatchHub, origin: str,
                 on_changes: Callable[[Changes | None], None]) -> None:
        self.pg = pg
        self.hub = hub
        self.origin = origin
        self.on_changes = on_changes  # None: anything may have changed (after a reconnection)
        self.generation = 0  # moves on every (re)connection: the hub's poller re-checks then
        self.events = 0  # moves with every change seen (see data_version)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        """Connect (raising if the database cannot be reached) and keep listening."""
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="postroom-pg-listen")

    async def _connect(self) -> None:
        conn = await connect(self.pg)
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self.generation += 1
        self._lost.clear()

    @property
    def up(self) -> bool:
        """Whether notifications are being received now (the caches trust them only then)."""
        return self._conn is not None and not self._lost.is_set() and not self._conn.is_closed()

    def _terminated(self, conn: Any) -> None:
        # Notifications are missed from now on: `up` is False, so the caches are not served,
        # and the reconnection's on_changes(None) forgets them.
        self._lost.set()

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        origin, changes = parse_payload(payload)
        if origin != self.origin:  # this process's own changes woke its watchers at commit
            self.on_changes(changes)

    async def _supervise(self) -> None:
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            log.warning("change notifications: connection to PostgreSQL lost; reconnecting")
            while not self._closing:
                try:
                    await self._connect()
                except DB_ERRORS as exc:
                    log.debug("change notifications: reconnect failed: %s", exc)
                    await asyncio.sleep(RECONNECT_DELAY)
                    continue
                log.info("change notifications: reconnected")
                self.on_changes(None)
                break

    def bump(self) -> None:
        """A change was seen (made here or notified): the hub's next poll compares HIGHESTMODSEQs,
        so that what it last saw stays current (as with SQLite's data_version)."""
        self.events += 1

    async def data_version(self) -> int:
        """For the hub's poller: moves with every change seen, when the listener reconnected,
        and every RECHECK seconds (the safety re-check)."""
        return hash((self.generation, self.events, int(time.monotonic() / RECHECK)))

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._conn is not None and not self._conn.is_closed():
            try:
                await asyncio.wait_for(self._conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                self._conn.terminate()
