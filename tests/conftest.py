"""Shared fixtures: a fresh store, and event-loop helpers for plain pytest tests."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[..., Any]:
    """``async with store_factory() as store`` → an opened SqliteStore in a temp dir."""
    from postroom.storage.sqlite.store import SqliteStore

    def make(sub: str = "data") -> SqliteStore:
        return SqliteStore(tmp_path / sub)

    return make


@pytest.fixture
def postroom_log() -> Iterator[list[str]]:
    """The formatted lines the ``postroom`` loggers write while the test runs (any thread).

    Attached to the ``postroom`` logger itself: once ``log.setup`` has run in this
    process (a CLI test) that logger no longer propagates to the root, where caplog listens.
    """
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("postroom")
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- PostgreSQL: one throwaway cluster per test session (tests/pgcluster.py) -------------------

_pg_databases = 0


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL cluster on loopback for the whole session; skipped where the server is not
    installed, unless ``POSTROOM_TEST_REQUIRE_PG=1`` (scripts/test.sh sets it) makes that a failure."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from pgcluster import PgCluster, available

    if not available():
        if os.environ.get("POSTROOM_TEST_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL server binaries missing (scripts/install-test-deps.sh installs them)")
        pytest.skip("PostgreSQL server not installed")
    cluster = PgCluster(tmp_path_factory.mktemp("pgcluster")).start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_database(pg_cluster: Any) -> str:
    """The URL of a new, empty database in the session's cluster."""
    global _pg_databases
    _pg_databases += 1
    return str(pg_cluster.create_database(f"t{os.getpid()}_{_pg_databases}"))
