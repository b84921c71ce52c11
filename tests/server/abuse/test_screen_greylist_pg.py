"""Greylisting state in PostgreSQL, shared by every node (postroom.abuse.greylist).

Two PgGreylist objects on one database stand for two nodes: a first attempt seen by one
node is remembered by the other, and so is the client's whitelisting. A database that
cannot be reached lets mail pass instead of holding it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from postroom.abuse.greylist import PgGreylist, SqliteGreylist
from postroom.abuse.screen_settings import GreylistSettings
from postroom.config import PgSettings
from postroom.storage.postgresql import schema
from postroom.storage.postgresql.connect import connect

S = GreylistSettings(enabled=True, delay=300, whitelist_after=1)
IP = "192.0.2.7"


def test_two_nodes_share_the_triplets_and_the_whitelist(pg_database: str) -> None:
    async def t() -> None:
        a, b = PgGreylist(PgSettings(url=pg_database)), PgGreylist(PgSettings(url=pg_database))
        try:
            first = await a.check_at(IP, "list@remote.test", "joe@example.test", S, 1000.0)
            assert first is not None and not first.accept and first.wait == 300
            soon = await b.check_at("192.0.2.8", "list@remote.test", "joe@example.test", S, 1100.0)
            assert soon is not None and not soon.accept and soon.wait == 200  # same /24, seen by a
            ok = await b.check_at(IP, "LIST@remote.test", "joe@example.test", S, 1300.0)
            assert ok is not None and ok.accept and ok.newly_passed
            # whitelist_after = 1: the client's next new triplet passes, on either node.
            assert await a.check_at(IP, "other@remote.test", "ann@example.test", S, 1400.0) is None
            # Past keep, the whitelisting lapses and a new triplet waits again.
            later = await a.check_at(IP, "third@remote.test", "bob@example.test", S, 1400.0 + S.keep + 1)
            assert later is not None and not later.accept
            conn = await connect(PgSettings(url=pg_database))
            try:
                assert await schema.version(conn, "greylist") == 1
            finally:
                await conn.close()
        finally:
            await a.close()
            await b.close()
    asyncio.run(t())


def test_database_away_lets_mail_pass() -> None:
    async def t() -> None:
        g = PgGreylist(PgSettings(url="postgresql://nobody@127.0.0.1:9/none"))
        try:
            assert await g.check_at(IP, "a@remote.test", "joe@example.test", S, 1000.0) is None
        finally:
            await g.close()
    asyncio.run(t())


def test_sqlite_state_is_shared_by_two_processes_worth_of_connections(tmp_path: Path) -> None:
    a, b = SqliteGreylist(tmp_path / "greylist.sqlite"), SqliteGreylist(tmp_path / "greylist.sqlite")
    first = a.check_now(IP, "list@remote.test", "joe@example.test", S, 1000.0)
    assert first is not None and not first.accept
    ok = b.check_now(IP, "list@remote.test", "joe@example.test", S, 1300.0)
    assert ok is not None and ok.accept and ok.newly_passed
    assert a.check_now(IP, "x@remote.test", "ann@example.test", S, 1301.0) is None
    asyncio.run(a.close())
    asyncio.run(b.close())
