"""Login throttling shared between nodes through PostgreSQL (postroom.auth.pgthrottle).

Two Authenticator objects, each with its own SharedFailures on one database, stand for
two nodes: failures counted on one throttle the same client on the other; a database
that goes away leaves logins working on the node's own counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from postroom.auth import Authenticator, hash_password
from postroom.auth.pgthrottle import MIGRATIONS, SharedFailures
from postroom.auth.throttle import LocalFailures
from postroom.config import PgSettings
from postroom.storage.postgresql import schema
from postroom.storage.sqlite.store import SqliteStore

IP = "192.0.2.7"


async def _nodes(store: Any, url: str, n: int = 2) -> list[Authenticator]:
    nodes = []
    for _ in range(n):
        auth = Authenticator(store, max_failures_per_ip=3, base_delay=0.001,
                             failures=SharedFailures(PgSettings(url=url)))
        await auth.open()
        nodes.append(auth)
    return nodes


async def _account(store: Any) -> None:
    await store.add_domain("example.test")
    await store.create_account("joe@example.test", hash_password("pw"))


def test_failures_on_one_node_throttle_on_the_other(tmp_path: Path, pg_database: str) -> None:
    async def t() -> None:
        async with SqliteStore(tmp_path) as store:  # where the accounts are does not matter here
            await _account(store)
            a, b = await _nodes(store, pg_database)
            try:
                # Guesses spread over both nodes meet one limit.
                assert (await a.authenticate("joe@example.test", "x1", IP)).account is None
                assert (await b.authenticate("joe@example.test", "x2", IP)).account is None
                assert not await a.throttled(IP) and not await b.throttled(IP)
                assert (await a.authenticate("joe@example.test", "x3", IP)).account is None
                assert await b.throttled(IP)
                # b saw only one failure itself: its local view alone would let the client on.
                assert not b.is_throttled(IP)
                refused = await b.authenticate("joe@example.test", "pw", IP)
                assert refused.account is None and refused.throttled
                # Another address is not affected, and its success clears the name's failures
                # for every node.
                other = "198.51.100.1"
                assert (await a.authenticate("joe@example.test", "pw", other)).account is not None
                assert (await b.failures.counts(other, "joe@example.test")).user == 0
                assert (await a.failures.counts(IP, None)).ip == 3
            finally:
                await a.close()
                await b.close()

    asyncio.run(t())


def test_name_failures_count_across_nodes_and_ips(tmp_path: Path, pg_database: str) -> None:
    """A guesser rotating addresses and nodes still piles failures on one name (the delay grows)."""
    async def t() -> None:
        async with SqliteStore(tmp_path) as store:  # where the accounts are does not matter here
            await _account(store)
            a, b = await _nodes(store, pg_database)
            try:
                for i in range(4):
                    node = (a, b)[i % 2]
                    await node.record_failure("Joe@Example.test", f"203.0.113.{i}")
                c = await a.failures.counts("203.0.113.0", "joe@example.test")
                assert (c.ip, c.user) == (1, 4)
                # The table holds one row per failure and key, with the database's clock.
                async with a.failures._pool.acquire() as conn:  # type: ignore[union-attr]
                    n = await conn.fetchval("SELECT count(*) FROM rate_events WHERE key LIKE 'user:%'")
                    assert n == 4
            finally:
                await a.close()
                await b.close()

    asyncio.run(t())


def test_expired_rows_are_pruned(pg_database: str) -> None:
    async def t() -> None:
        shared = SharedFailures(PgSettings(url=pg_database))
        await shared.open()
        try:
            assert shared._pool is not None
            async with shared._pool.acquire() as conn:
                await conn.execute("INSERT INTO rate_events (key, at, expires) VALUES "
                                   "('ip:old', now() - interval '1 hour', now() - interval '55 minutes')")
            assert (await shared.counts("old", None)).ip == 0  # outside the window
            await shared.add("192.0.2.1", "someone")  # the first failure also prunes
            async with shared._pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = 'ip:old'") == 0
                # Checking is one statement on the (key, at) index.
                await conn.execute("SET enable_seqscan = off")
                plan = "\n".join(r[0] for r in await conn.fetch(
                    "EXPLAIN SELECT count(*) FROM rate_events WHERE key IN ('ip:a', 'user:b') "
                    "AND at > clock_timestamp() - interval '300 seconds'"))
                assert "rate_events_key_at" in plan
        finally:
            await shared.close()

    asyncio.run(t())


def test_hourly_cap_shared_by_nodes(pg_database: str) -> None:
    """The Sieve outgoing cap's counter (take_event): one limit for both nodes, and a
    row that still counts in its own (longer) window is not pruned with login failures."""
    async def t() -> None:
        a, b = SharedFailures(PgSettings(url=pg_database)), SharedFailures(PgSettings(url=pg_database))
        await a.open()
        await b.open()
        try:
            taken = [await (a, b)[i % 2].take_event("sieve-out:7", 3, 3600.0) for i in range(5)]
            assert taken == [True, True, True, False, False]
            assert await b.take_event("sieve-out:8", 3, 3600.0) is True
            assert await LocalFailures().take_event("sieve-out:7", 3, 3600.0) is None  # one node: not shared
            assert a._pool is not None
            async with a._pool.acquire() as conn:
                await conn.execute("UPDATE rate_events SET at = at - interval '10 minutes'")
            a._next_prune = 0.0
            await a.add("192.0.2.1", "x")  # prunes: the cap's rows are 10 minutes old but not expired
            async with a._pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = 'sieve-out:7'") == 3
            assert await a.take_event("sieve-out:7", 3, 3600.0) is False
            assert await a.take_event("sieve-out:7", 3, 300.0) is True  # a shorter window sees none
        finally:
            await a.close()
            await b.close()

    asyncio.run(t())


def test_migration_is_component_state_and_idempotent(pg_database: str) -> None:
    async def t() -> None:
        from postroom.storage.postgresql.connect import connect

        first, second = SharedFailures(PgSettings(url=pg_database)), SharedFailures(PgSettings(url=pg_database))
        await asyncio.gather(first.open(), second.open())  # two nodes starting together
        await first.close()
        await second.close()
        conn = await connect(PgSettings(url=pg_database))
        try:
            assert await schema.version(conn, "state") == len(MIGRATIONS)
            await conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'state'")
        finally:
            await conn.close()
        with pytest.raises(schema.SchemaTooNew):
            await SharedFailures(PgSettings(url=pg_database)).open()

    asyncio.run(t())


def test_database_away_falls_back_to_local_counts(tmp_path: Path, pg_cluster: Any, pg_database: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A stopped database costs no login: the node counts alone, says so once, and goes
    back to the shared counters when the database returns."""
    async def t() -> None:
        async with SqliteStore(tmp_path) as store:  # where the accounts are does not matter here
            await _account(store)
            (a,) = await _nodes(store, pg_database, 1)
            try:
                await a.authenticate("joe@example.test", "bad", IP)  # counted in the database
                pg_cluster.stop()
                try:
                    with caplog.at_level(logging.WARNING, logger="postroom.auth"):
                        assert (await a.authenticate("joe@example.test", "pw", "198.51.100.9")).account
                        for _ in range(2):
                            assert (await a.authenticate("joe@example.test", "bad", IP)).account is None
                        # Local counts: the failure before the outage and the two during it.
                        assert await a.throttled(IP)
                    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
                    assert len(down) == 1
                finally:
                    pg_cluster.start()
                import postroom.auth.pgthrottle as pgt

                assert isinstance(a.failures, SharedFailures)
                a.failures._down_until = 0.0  # do not wait out RETRY in a test
                with caplog.at_level(logging.WARNING, logger="postroom.auth"):
                    # The database has only the one failure from before the outage.
                    for _ in range(20):  # the pool reconnects on first use
                        c = await a.failures.counts(IP, None)
                        if not a.failures._down_logged:
                            break
                        a.failures._down_until = 0.0
                        await asyncio.sleep(0.1)
                    assert c.ip == 1
                assert any("reachable again" in r.getMessage() for r in caplog.records)
                assert pgt.RETRY > 0
            finally:
                await a.close()

    asyncio.run(t())


def test_local_failures_stay_bounded() -> None:
    """A scan from many addresses, each failing once: expired keys are dropped, and the
    table is scanned only when it has doubled (not at every new key)."""
    async def t() -> None:
        local = LocalFailures()
        t0 = time.process_time()
        for i in range(20_000):
            await local.add(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"user{i}")
        assert time.process_time() - t0 < 2.0  # linear, not a scan per failure
        assert len(local._ip.table) == 20_000  # nothing has expired yet
        for table in (local._ip.table, local._user.table):
            for q in table.values():
                q[0] -= 10_000.0  # all of them expired
        added = 0
        while len(local._ip.table) > added or added == 0:
            await local.add(f"192.0.{added // 256}.{added % 256}", "x")
            added += 1
            assert added <= local._ip.prune_at
        assert len(local._ip.table) == added and len(local._user.table) <= local._user.prune_at

    asyncio.run(t())
