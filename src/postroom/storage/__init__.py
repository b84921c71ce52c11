"""Storage behind one async interface (:mod:`.api`); backends under sqlite/ (default)
and postgresql/ (several nodes on one database, docs/storage.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .api import Store

if TYPE_CHECKING:
    from ..config import Config


def open_store(cfg: Config) -> Store:
    """A store object for the configured backend (call ``await store.open()`` next)."""
    if cfg.backend == "sqlite":
        from .sqlite.store import SqliteStore

        return SqliteStore(cfg.data_dir)
    if cfg.backend == "postgresql" and cfg.pg is not None:
        from .postgresql.store import PostgresStore

        return PostgresStore(cfg.pg, cfg.data_dir)
    raise ValueError(f"unknown storage backend {cfg.backend!r}")


async def migrate(cfg: Config) -> list[tuple[str, int]]:
    """Run the store's schema migrations (what every start does) and return each schema
    component's version, as ``(component, version)``, for ``postroom migrate``.

    On PostgreSQL, a database migrated by a newer Postroom raises SchemaTooNew.
    """
    store = open_store(cfg)
    await store.open()
    try:
        if cfg.backend == "postgresql":
            from .postgresql.store import PostgresStore

            assert isinstance(store, PostgresStore)
            await _migrate_pg_components(cfg)
            return await store.schema_versions()
        from .sqlite.store import SqliteStore

        assert isinstance(store, SqliteStore)
        version = await store.engine.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        return [("store", int(version))]
    finally:
        await store.close()


# The other components on PostgreSQL: (module, its migrations' name, component). Each also
# migrates itself when a node starts; ``postroom migrate`` runs them all at once.
_PG_COMPONENTS = (("postroom.outbound.pgqueue", "MIGRATIONS", "queue"),
                  ("postroom.auth.pgthrottle", "MIGRATIONS", "state"),
                  ("postroom.news.state", "PG_MIGRATIONS", "news"),
                  ("postroom.abuse.counters", "PG_MIGRATIONS", "ratelimit"),
                  ("postroom.abuse.greylist", "PG_MIGRATIONS", "greylist"))


async def _migrate_pg_components(cfg: Config) -> None:
    import importlib

    from .postgresql import schema
    from .postgresql.connect import connect

    assert cfg.pg is not None
    conn = await connect(cfg.pg)
    try:
        for module, attr, component in _PG_COMPONENTS:
            try:
                migrations = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                continue  # a build without that component
            await schema.apply(conn, component, migrations)
    finally:
        await conn.close()
