"""Numbered schema migrations per component, shared by every PostgreSQL component.

Each component ("store", "queue", "state") owns a list of SQL migrations; migration
``n`` (1-based) is ``migrations[n - 1]``. The version reached is kept in
``schema_versions``. Migrations are appended, never edited: a database at version 3
has run exactly the first three, whatever release ran them.

Several nodes starting at once must not apply a migration twice: each one runs in its
own transaction under a transaction-level advisory lock, and the version is re-read
under that lock. A database at a higher version than the code knows refuses to start
(:class:`SchemaTooNew`): an older node must not write into a schema it does not know.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import asyncpg

from ...errors import PostroomError

_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component text PRIMARY KEY,
    version int NOT NULL
)
"""


class SchemaTooNew(PostroomError):
    """The database was migrated by a newer Postroom than this one."""

    def __init__(self, component: str, found: int, known: int) -> None:
        super().__init__(
            f"the database's {component} schema is at version {found}, but this Postroom knows only "
            f"up to {known}: upgrade Postroom on this node (it refuses to start rather than write "
            f"into a schema it does not know)")
        self.component = component
        self.found = found
        self.known = known


def _lock_key(component: str) -> int:
    # One advisory lock per component (a stable 32-bit number from its name), plus one
    # for creating schema_versions itself, so unrelated components migrate in parallel.
    return zlib.crc32(f"postroom-schema:{component}".encode())


async def version(conn: asyncpg.Connection, component: str) -> int:
    """The component's version in the database (0: never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_versions') IS NOT NULL")
    if not exists:
        return 0
    v = await conn.fetchval("SELECT version FROM schema_versions WHERE component = $1", component)
    return int(v or 0)


async def apply(conn: asyncpg.Connection, component: str, migrations: Sequence[str]) -> int:
    """Bring ``component`` up to ``len(migrations)``; return the version reached.

    Raises SchemaTooNew when the database is already past what ``migrations`` knows.
    """
    known = len(migrations)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("schema_versions"))
        await conn.execute(_VERSIONS_TABLE)
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(component))
            current = await version(conn, component)
            if current > known:
                raise SchemaTooNew(component, current, known)
            if current == known:
                return current
            # Multi-statement text is sent with the simple protocol (no parameters),
            # so one migration may hold several statements.
            await conn.execute(migrations[current])
            await conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES ($1, $2) "
                "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                component, current + 1)
