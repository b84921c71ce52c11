"""The ``POSTROOM_TEST_STORE=postgresql`` switch (tests/pgswitch.py, tests/conftest.py).

The rewrite and the one-database-per-data-directory rule are checked with a recording
fake cluster; the switch as a pytest plugin (marker skips, a config loaded by a test
landing on a real database, a misspelt value refused) in a child pytest run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom import config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: pgswitch
import pgswitch

TESTS = Path(__file__).resolve().parents[1]


class FakeCluster:
    """Records the databases asked for; what Switch needs of tests/pgcluster.PgCluster."""

    admin_url = "postgresql://admin@127.0.0.1:1/postgres"

    def __init__(self) -> None:
        self.created: list[str] = []

    def create_database(self, name: str) -> str:
        self.created.append(name)
        return f"postgresql://admin@127.0.0.1:1/{name}"


@pytest.fixture
def switch() -> Iterator[pgswitch.Switch]:
    sw = pgswitch.Switch()
    sw.cluster = FakeCluster()
    sw.install()
    try:
        yield sw
    finally:
        sw.uninstall()


def test_rewrite_adds_backend_and_url_for_the_data_directory(tmp_path: Path) -> None:
    seen: list[Path] = []

    def url_for(d: Path) -> str:
        seen.append(d)
        return "postgresql://u@h:5/db"

    data: dict[str, Any] = {"hostname": "mx.example.test", "storage": {"path": "spool"}}
    out = pgswitch.rewrite(data, tmp_path / "postroom.toml", url_for)
    assert out["storage"] == {"path": "spool", "backend": "postgresql", "url": "postgresql://u@h:5/db"}
    assert out["hostname"] == "mx.example.test"
    assert data == {"hostname": "mx.example.test", "storage": {"path": "spool"}}  # the caller's dict is untouched
    # No [storage] at all: the default data directory next to the config file.
    out = pgswitch.rewrite({}, tmp_path / "sub" / "c.toml", url_for)
    assert out["storage"]["backend"] == "postgresql"
    assert seen == [tmp_path.resolve() / "spool", tmp_path.resolve() / "sub" / "data"]
    # An absolute path is taken as it is.
    pgswitch.rewrite({"storage": {"path": str(tmp_path / "abs")}}, Path("/elsewhere/c.toml"), url_for)
    assert seen[-1] == tmp_path.resolve() / "abs"


@pytest.mark.parametrize("data", [
    {"storage": {"backend": "sqlite"}},  # named on purpose: that backend is under test
    {"storage": {"backend": "postgresql", "url": "postgresql://u@h/x"}},
    {"storage": "data"},  # malformed: from_dict reports it, the switch must not hide it
    {"storage": {"path": 7}},
])
def test_rewrite_leaves_explicit_and_malformed_storage_alone(data: dict[str, Any], tmp_path: Path) -> None:
    def url_for(d: Path) -> str:
        raise AssertionError("no database for a table the switch leaves alone")

    assert pgswitch.rewrite(data, tmp_path / "c.toml", url_for) is data


def test_one_database_per_data_directory(switch: pgswitch.Switch, tmp_path: Path) -> None:
    fake = switch.cluster
    a = config.from_dict({"hostname": "a.example.test"}, tmp_path / "a.toml")
    assert a.backend == "postgresql" and a.pg is not None
    assert a.pg.url == f"postgresql://admin@127.0.0.1:1/{pgswitch.database_name(tmp_path.resolve() / 'data')}"
    assert a.data_dir == tmp_path.resolve() / "data"  # DKIM keys and the like still live there
    # A reload, or another config file on the same directory: the same database, not a new one.
    (tmp_path / "b.toml").write_text('hostname = "b.example.test"\n[storage]\npath = "data"\n')
    b = config.load(tmp_path / "b.toml")
    assert b.pg is not None and b.pg.url == a.pg.url and len(fake.created) == 1
    c = config.from_dict({"storage": {"path": "other"}}, tmp_path / "a.toml")
    assert c.pg is not None and c.pg.url != a.pg.url and len(fake.created) == 2
    # Names are valid identifiers whatever the path looks like.
    assert all(len(n) <= 63 and n.isidentifier() for n in fake.created)


def test_concurrent_loads_create_one_database(switch: pgswitch.Switch, tmp_path: Path) -> None:
    urls: list[str] = []

    def load() -> None:
        cfg = config.from_dict({}, tmp_path / "c.toml")
        urls.append(cfg.pg.url)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(urls)) == 1 and len(urls) == 8 and len(switch.cluster.created) == 1


def test_uninstall_restores_from_dict(tmp_path: Path) -> None:
    before = config.from_dict
    sw = pgswitch.Switch()
    sw.install()
    assert config.from_dict is not before
    sw.uninstall()
    assert config.from_dict is before
    assert config.from_dict({}, tmp_path / "c.toml").backend in ("sqlite", "postgresql")


def test_loading_before_the_cluster_is_attached_is_an_error(tmp_path: Path) -> None:
    sw = pgswitch.Switch()
    sw.install()
    try:
        with pytest.raises(RuntimeError, match="before the session's PostgreSQL cluster started"):
            config.from_dict({}, tmp_path / "c.toml")
    finally:
        sw.uninstall()


def test_selected_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pgswitch.ENV, raising=False)
    assert pgswitch.selected_backend() == "sqlite" and not pgswitch.enabled()
    monkeypatch.setenv(pgswitch.ENV, "postgresql")
    assert pgswitch.enabled()
    monkeypatch.setenv(pgswitch.ENV, "postgres")
    with pytest.raises(ValueError, match="must be one of sqlite, postgresql"):
        pgswitch.selected_backend()


def test_drop_unused_keeps_databases_in_use(pg_cluster: Any, tmp_path: Path) -> None:
    import asyncio

    import asyncpg

    sw = pgswitch.Switch()
    sw.cluster = pg_cluster
    idle = sw.url_for(tmp_path / "idle")
    busy = sw.url_for(tmp_path / "busy")

    # The connection lives on its own loop in another thread (drop_unused runs its own loop).
    loop = asyncio.new_event_loop()
    holder = threading.Thread(target=loop.run_forever, daemon=True)
    holder.start()
    conn = asyncio.run_coroutine_threadsafe(asyncpg.connect(busy), loop).result(30)
    try:
        dropped = sw.drop_unused()
    finally:
        asyncio.run_coroutine_threadsafe(conn.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        holder.join(30)
        loop.close()
    assert dropped == [idle.rsplit("/", 1)[1]]
    names = pg_cluster.psql("SELECT datname FROM pg_database").split()
    assert busy.rsplit("/", 1)[1] in names and idle.rsplit("/", 1)[1] not in names
    assert sw.drop_unused() == [busy.rsplit("/", 1)[1]]  # nobody connected any more
    # Used again after being dropped: a fresh database under the same name.
    assert sw.url_for(tmp_path / "idle") == idle
    assert sw.drop_unused() == [idle.rsplit("/", 1)[1]]


CHILD_TESTS = '''
import asyncio
import pytest
import asyncpg
from postroom.config import from_dict, load

@pytest.mark.sqlite_only("reads store.db")
def test_skipped_on_postgresql():
    pass

def test_config_lands_on_a_database(tmp_path):
    (tmp_path / "postroom.toml").write_text('hostname = "mx.example.test"\\n')
    cfg = load(tmp_path / "postroom.toml")
    assert cfg.backend == "postgresql"
    assert from_dict({}, tmp_path / "postroom.toml").pg.url == cfg.pg.url  # imported by name: wrapped too

    async def check():
        conn = await asyncpg.connect(cfg.pg.url)
        await conn.close()
    asyncio.run(check())

def test_sqlite_named_explicitly_stays(tmp_path):
    assert from_dict({"storage": {"backend": "sqlite"}}, tmp_path / "c.toml").backend == "sqlite"
'''


def _child_pytest(tmp_path: Path, store: str) -> subprocess.CompletedProcess[str]:
    """A pytest run with tests/conftest.py loaded as a plugin, on a test file in ``tmp_path``."""
    (tmp_path / "test_child.py").write_text(CHILD_TESTS)
    env = {**os.environ, "PYTHONPATH": str(TESTS), pgswitch.ENV: store, "POSTROOM_TEST_REQUIRE_PG": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-c", str(TESTS.parent / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "-rs", str(tmp_path / "test_child.py")],
        check=False, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_switch_as_a_plugin(pg_cluster: Any, tmp_path: Path) -> None:
    # pg_cluster: the child needs the server binaries (skipped, or failed under REQUIRE_PG, without).
    r = _child_pytest(tmp_path, "postgresql")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 1 skipped" in r.stdout
    assert "sqlite_only under POSTROOM_TEST_STORE=postgresql: reads store.db" in r.stdout
    r = _child_pytest(tmp_path, "postgres")
    assert r.returncode == 4 and "must be one of sqlite, postgresql" in r.stdout + r.stderr
