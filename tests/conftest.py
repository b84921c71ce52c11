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


STORE_BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: tests SQLite internals (segments, its writer, backup); "
                                       "store_factory runs it on the SQLite backend only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test using store_factory runs once per backend (the contract suite), except
    # those marked sqlite_only.
    if "store_backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("store_backend", ("sqlite",) if only else STORE_BACKENDS)


@pytest.fixture
def store_factory(tmp_path: Path, store_backend: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``async with store_factory() as store`` → an opened store of the backend under test:
    a SqliteStore in a temp dir, or a PostgresStore on a new database of the session's
    cluster. Calls with the same ``sub`` give stores on the same data (a restart, or a
    second process); another ``sub`` is another store."""
    if store_backend == "sqlite":
        from postroom.storage.sqlite.store import SqliteStore

        def make_sqlite(sub: str = "data") -> Any:
            return SqliteStore(tmp_path / sub)

        return make_sqlite
    from postroom.config import PgSettings
    from postroom.storage.postgresql.store import PostgresStore

    cluster = request.getfixturevalue("pg_cluster")
    urls: dict[str, str] = {}

    def make_pg(sub: str = "data") -> Any:
        if sub not in urls:
            global _pg_databases
            _pg_databases += 1
            urls[sub] = str(cluster.create_database(f"t{os.getpid()}_{_pg_databases}"))
        return PostgresStore(PgSettings(url=urls[sub]), tmp_path / sub)

    return make_pg


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
def pg_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster on loopback for the whole session; skipped where the server is not
    installed, unless ``POSTROOM_TEST_REQUIRE_PG=1`` (scripts/test.sh sets it) makes that a failure."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from pgcluster import PgCluster, available

    if not available():
        if os.environ.get("POSTROOM_TEST_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL server binaries missing (scripts/install-test-deps.sh installs them)")
        pytest.skip("PostgreSQL server not installed")
    # Not under tmp_path_factory: every pytest session that starts (another terminal, a child
    # pytest) resets /tmp/pytest-of-USER to mode 0700, and the server, running as `postgres`,
    # then loses its own data directory (PANIC: pg_control: Permission denied).
    import tempfile

    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="postroom-pgcluster-"))).start()
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


# -- POSTROOM_TEST_STORE=postgresql: the in-process test servers on PostgreSQL (tests/pgswitch.py) --

_pg_switch: Any = None  # a pgswitch.Switch while the switch is on


def pytest_sessionstart(session: pytest.Session) -> None:
    # Before collection: test modules import ``from_dict`` by name when they are imported.
    global _pg_switch
    import pgswitch

    try:
        on = pgswitch.enabled()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if on and _pg_switch is None:
        _pg_switch = pgswitch.Switch()
        _pg_switch.install()


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _pg_switch
    if _pg_switch is not None:
        _pg_switch.uninstall()
        _pg_switch = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _pg_switch is None:
        return
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        if mark is not None:
            why = mark.args[0] if mark.args else mark.kwargs.get("reason", "depends on the SQLite store's files")
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only under POSTROOM_TEST_STORE=postgresql: {why}"))


@pytest.fixture(scope="session", autouse=True)
def _pg_switch_session(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Under the switch, start the session's cluster before the first test's servers."""
    if _pg_switch is None:
        yield None
        return
    _pg_switch.cluster = request.getfixturevalue("pg_cluster")
    try:
        yield _pg_switch
    finally:
        _pg_switch.cluster = None


@pytest.fixture(scope="module", autouse=True)
def _pg_switch_module(_pg_switch_session: Any) -> Iterator[None]:
    """Torn down after the module's own fixtures (its servers): drop the databases it used."""
    yield
    if _pg_switch_session is not None:
        _pg_switch_session.drop_unused()
