"""One SQL statement straight on a store's database, for the few contract tests that must
reach past the interface (make a state no client can make, count rows left behind).

The statement is written once with ``?`` placeholders and portable SQL; on PostgreSQL the
placeholders become ``$1``, ``$2`` …
"""

from __future__ import annotations

import itertools
import re
from typing import Any


async def rawsql(store: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` run in its own committed transaction on ``store``'s database."""
    if hasattr(store, "engine"):  # SqliteStore: through its writer, committed before it returns
        return await store.engine.write(lambda c: [tuple(r) for r in c.execute(sql, args).fetchall()])
    n = itertools.count(1)
    pg_sql = re.sub(r"\?", lambda _m: f"${next(n)}", sql)
    async with store._pool.acquire() as conn:
        return [tuple(r) for r in await conn.fetch(pg_sql, *args)]
