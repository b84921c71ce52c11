"""A defence's shared state in PostgreSQL that fails open.

Abuse defences keep small tables that every node of a scale-out installation must see
(greylisting triplets, rate counters). None of them may hold up mail when the database
is away: this opens a small pool on first use (migrating the defence's schema
component, :mod:`postroom.storage.postgresql.schema`), bounds each use to ``timeout``
seconds, and when the database cannot be reached answers ``None`` at once for the next
``retry`` seconds, logging the outage once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..config import PgSettings

T = TypeVar("T")


class FailOpenPool:
    def __init__(self, pg: PgSettings, component: str, migrations: Sequence[str], what: str,
                 logger: logging.Logger, timeout: float = 1.0, retry: float = 5.0) -> None:
        self.pg = pg
        self.component = component
        self.migrations = migrations
        self.what = what  # "greylisting: …" in the outage log lines
        self.logger = logger
        self.timeout = timeout
        self.retry = retry
        self._pool: Any = None  # asyncpg.Pool, imported only with PostgreSQL
        self._opening: asyncio.Lock | None = None
        self._down_until = 0.0
        self._failing = False

    async def _get_pool(self) -> Any:
        from ..storage.postgresql import schema
        from ..storage.postgresql.connect import create_pool

        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool = await create_pool(self.pg, min_size=1, max_size=2)
                try:
                    async with pool.acquire() as conn:
                        await schema.apply(conn, self.component, self.migrations)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def run(self, step: Callable[[Any], Awaitable[T]], transaction: bool = False) -> T | None:
        """``step(connection)``, in a transaction if asked; None when the database cannot
        be asked now. Errors other than unavailability propagate (they are bugs)."""
        from ..storage.postgresql.connect import acquire, is_unavailable

        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                pool = await self._get_pool()
                async with acquire(pool) as conn:
                    if transaction:
                        async with conn.transaction():
                            result = await step(conn)
                    else:
                        result = await step(conn)
        except Exception as exc:
            if not (is_unavailable(exc) or isinstance(exc, (TimeoutError, OSError))):
                raise
            self._down_until = time.monotonic() + self.retry
            if not self._failing:
                self._failing = True
                self.logger.warning("%s: PostgreSQL unreachable (%s); failing open until it is back",
                                    self.what, type(exc).__name__)
            return None
        if self._failing:
            self._failing = False
            self.logger.warning("%s: PostgreSQL reachable again", self.what)
        return result

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
