"""What the web keeps on the server beyond the account flags (SQLite migration 9, PostgreSQL
store migration 3): the last accepted TOTP step per account, whose compare-and-set makes a
code usable once (RFC 6238 §5.2), and the web sessions logged out one by one; on every
backend, and the upgrade of a store made before them."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from postroom.accounts import attributes
from postroom.storage.sqlite.schema import MIGRATIONS, _statements

SECRET = "JBSWY3DPEHPK3PXP"
OTHER = "KRSXG5CTMVRXEZLU"


def test_claim_only_later_steps(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            # No secret yet: nothing to claim, and enrolment takes its code's step.
            assert not await attributes.claim_totp_step(s, a.id, SECRET, 100)
            assert await attributes.enable_totp(s, a.id, SECRET, 100)
            assert not await attributes.enable_totp(s, a.id, OTHER, 101)  # on already: kept
            got = await s.get_account_by_id(a.id)
            assert got.totp_secret == SECRET and got.session_epoch == 1  # password-only sessions end
            assert not await attributes.claim_totp_step(s, a.id, SECRET, 100)  # the enrolment's code
            assert not await attributes.claim_totp_step(s, a.id, SECRET, 99)
            assert await attributes.claim_totp_step(s, a.id, SECRET, 101)
            assert not await attributes.claim_totp_step(s, a.id, SECRET, 101)  # a replay
            assert not await attributes.claim_totp_step(s, a.id, OTHER, 105)  # the secret changed meanwhile
            assert not await attributes.claim_totp_step(s, a.id + 1000, SECRET, 200)  # no such account
            # Many claims of one step at once: exactly one wins.
            wins = await asyncio.gather(*(attributes.claim_totp_step(s, a.id, SECRET, 102) for _ in range(8)))
            assert sorted(wins) == [False] * 7 + [True]
            # Turned off and on again with a new secret: the new secret's enrolment sets the step.
            await attributes.set_totp_secret(s, a.address, None)
            assert await attributes.enable_totp(s, a.id, OTHER, 102)
            assert await attributes.claim_totp_step(s, a.id, OTHER, 103)
        async with store_factory() as s:  # kept across a restart
            a = await s.get_account("u@example.test")
            assert not await attributes.claim_totp_step(s, a.id, OTHER, 103)
            assert await attributes.claim_totp_step(s, a.id, OTHER, 104)
    asyncio.run(t())


def test_logged_out_sessions(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            now = time.time()
            one, two, old, gone = (bytes([n]) * 32 for n in range(1, 5))
            assert not await attributes.web_session_ended(s, one)
            await attributes.end_web_session(s, a.id, one, now + 3600)
            await attributes.end_web_session(s, a.id, one, now + 3600)  # twice: no error
            await attributes.end_web_session(s, b.id, two, now + 3600)
            await attributes.end_web_session(s, a.id, old, now - 1)  # past its time: forgotten at the next
            await attributes.end_web_session(s, a.id + b.id + 1000, gone, now + 3600)  # no such account
            assert await attributes.web_session_ended(s, one) and await attributes.web_session_ended(s, two)
            assert not await attributes.web_session_ended(s, old)
            assert not await attributes.web_session_ended(s, gone)
            await s.delete_account(b.address)  # its rows go with it
            assert not await attributes.web_session_ended(s, two)
        async with store_factory() as s:  # kept across a restart
            assert await attributes.web_session_ended(s, one)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite's own schema migration
def test_sqlite_migration_adds_the_step(store_factory, tmp_path):
    # A store as the previous release left it: schema version 8, an account with TOTP on.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    for script in MIGRATIONS[:8]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 8")
    conn.execute("INSERT INTO domains VALUES ('example.test')")
    conn.execute("INSERT INTO accounts(id, address, password_hash, created, admin, session_epoch, totp_secret) "
                 "VALUES (1, 'u@example.test', 'h', 0, 1, 3, ?)", (SECRET,))
    conn.close()

    async def t():
        async with store_factory() as s:
            acct = await s.get_account("u@example.test")
            assert (acct.password_hash, acct.admin, acct.session_epoch, acct.totp_secret) == ("h", True, 3, SECRET)
            assert await s.claim_totp_step(1, SECRET, 59_000_000)
            assert not await s.claim_totp_step(1, SECRET, 59_000_000)
            await s.end_web_session(1, b"d" * 32, time.time() + 60)
            assert await s.web_session_ended(b"d" * 32)
    asyncio.run(t())
    conn = sqlite3.connect(data / "store.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 9
    assert conn.execute("SELECT totp_last_step FROM accounts WHERE id = 1").fetchone() == (59_000_000,)
    conn.close()


def test_postgresql_migration_adds_the_step(pg_database: str) -> None:
    # A database as the previous release left it: store schema 2, an account with TOTP on.
    from postroom.config import PgSettings
    from postroom.storage.postgresql import schema
    from postroom.storage.postgresql.connect import connect
    from postroom.storage.postgresql.migrations import MIGRATIONS as PG_MIGRATIONS
    from postroom.storage.postgresql.store import PostgresStore

    pg = PgSettings(url=pg_database)

    async def t():
        conn = await connect(pg)
        try:
            assert await schema.apply(conn, "store", PG_MIGRATIONS[:2]) == 2
            await conn.execute("INSERT INTO domains VALUES ('example.test')")
            await conn.execute("INSERT INTO accounts (address, password_hash, created, totp_secret) "
                               "VALUES ('u@example.test', 'h', 0, $1)", SECRET)
        finally:
            await conn.close()
        async with PostgresStore(pg) as s:
            assert ("store", len(PG_MIGRATIONS)) in await s.schema_versions()
            acct = await s.get_account("u@example.test")
            assert acct is not None and (acct.password_hash, acct.totp_secret) == ("h", SECRET)
            assert await s.claim_totp_step(acct.id, SECRET, 59_000_000)
            assert not await s.claim_totp_step(acct.id, SECRET, 59_000_000)
            await s.end_web_session(acct.id, b"d" * 32, time.time() + 60)
            assert await s.web_session_ended(b"d" * 32)
        conn = await connect(pg)
        try:
            assert await conn.fetchval("SELECT totp_last_step FROM accounts") == 59_000_000
        finally:
            await conn.close()
    asyncio.run(t())
