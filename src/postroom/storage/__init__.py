"""Storage behind one async interface (:mod:`.api`); backends under sqlite/ (default)."""

from __future__ import annotations

from pathlib import Path

from .api import Store


def open_store(backend: str, data_dir: Path) -> Store:
    """A store object for the configured backend (call ``await store.open()`` next)."""
    if backend == "sqlite":
        from .sqlite.store import SqliteStore

        return SqliteStore(data_dir)
    raise ValueError(f"unknown storage backend {backend!r}")
