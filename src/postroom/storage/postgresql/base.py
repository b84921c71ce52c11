"""What every part of the PostgreSQL store shares: the pool, transactions, error mapping.

Each public method runs one function on a pooled connection: :meth:`PgBase.read` as is,
:meth:`PgBase.write` inside a transaction whose changes are announced once it
committed (notify.py) and which returns only after COMMIT (synchronous_commit is on: the commit
record is flushed to disk, and with synchronous replicas also to them). Concurrent
writes use separate connections, so PostgreSQL's own group commit merges their WAL
flushes. Failures that mean "the database is away" become StoreUnavailable; deadlocks
and serialization failures are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg

from ...errors import StoreUnavailable
from .connect import DB_ERRORS, acquire, is_unavailable
from .notify import Changes

T = TypeVar("T")
log = logging.getLogger("postroom.store")

_RETRIES = 5  # attempts of a write that PostgreSQL aborted as a deadlock or serialization failure
_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def unavailable(exc: BaseException) -> StoreUnavailable:
    what = type(exc).__name__
    return StoreUnavailable(f"PostgreSQL is unavailable ({what}: {exc})")


@contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    """Turn a failure that means "the database is away" into StoreUnavailable."""
    try:
        yield
    except DB_ERRORS as exc:
        if is_unavailable(exc):
            raise unavailable(exc) from exc
        raise


class PgBase:
    """The connection plumbing the store's parts build on."""

    _pool: asyncpg.Pool | None

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(conn, *args)`` on a pooled connection (autocommit: one statement sees
        one snapshot; a function running several uses :meth:`read_tx`)."""
        pool = self._require_pool()
        with unavailable_as_store_error():
            async with acquire(pool) as conn:
                return await fn(conn, *args)

    async def read_tx(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Like :meth:`read`, in one REPEATABLE READ read-only snapshot."""
        async def run(conn: asyncpg.Connection) -> T:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await fn(conn, *args)
        return await self.read(run)

    async def write_statement(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(conn, *args)`` for a function that writes with ONE statement: PostgreSQL
        runs a lone statement as its own transaction and answers after its COMMIT, so this
        costs one round trip instead of BEGIN … COMMIT. The caller reports its changes
        (:meth:`_committed`)."""
        async def run(conn: asyncpg.Connection) -> T:
            return await fn(conn, *args)
        return await self._retrying(run)

    def _committed(self, changes: Changes) -> None:
        """Called after a write committed: wake watchers, tell the other nodes (store.py)."""

    async def write(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(conn, changes, *args)`` in a transaction, committed before returning;
        ``changes`` collects what to announce to every node (notify.py)."""
        async def run(conn: asyncpg.Connection) -> T:
            changes = Changes()
            async with conn.transaction():
                result = await fn(conn, changes, *args)
            self._committed(changes)
            return result
        return await self._retrying(run)

    async def _retrying(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``run`` on a pooled connection, again after a deadlock or serialization failure
        (PostgreSQL undid it whole); an unavailable database becomes StoreUnavailable.

        A connection lost during COMMIT leaves the outcome unknown: the caller is told
        "temporary failure", not "stored", so the sender retries; at worst a message is
        stored twice, never lost."""
        pool = self._require_pool()
        for attempt in range(_RETRIES):
            try:
                with unavailable_as_store_error():
                    async with acquire(pool) as conn:
                        return await run(conn)
            except _RETRYABLE:
                if attempt == _RETRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")
