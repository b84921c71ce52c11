"""Account attributes and credentials in the store (postroom.accounts; migration 8 on
SQLite, 2 on PostgreSQL), on every backend, and the upgrade of a store made before them."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from postroom.accounts import app_passwords, attributes, tokens
from postroom.accounts.credentials import digest, normalize_app_password
from postroom.errors import AccountNotFound
from postroom.storage.api import CredentialExists
from postroom.storage.sqlite.schema import MIGRATIONS, _statements


def test_attributes_round_trip(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            assert (a.admin, a.disabled, a.session_epoch, a.totp_secret) == (False, False, 0, None)
            got = await attributes.set_admin(s, "U@example.test", True)
            assert got.admin and got.session_epoch == 0
            got = await attributes.set_totp_secret(s, "u@example.test", "JBSWY3DPEHPK3PXP")
            assert got.totp_secret == "JBSWY3DPEHPK3PXP" and got.admin  # the others are kept
            got = await attributes.set_disabled(s, "u@example.test", True)
            assert got.disabled and got.session_epoch == 1  # disabling ends web sessions
            got = await attributes.log_out_everywhere(s, "u@example.test")
            assert got.session_epoch == 2
            got = await attributes.change_password(s, "u@example.test", "new secret")
            assert got.session_epoch == 3 and got.password_hash.startswith("{ARGON2ID}")
            # Read back through every path that builds an Account.
            for acct in (await s.get_account("u@example.test"), await s.get_account_by_id(a.id),
                         (await s.list_accounts())[0]):
                assert (acct.admin, acct.disabled, acct.session_epoch, acct.totp_secret) == \
                    (True, True, 3, "JBSWY3DPEHPK3PXP")
            got = await attributes.set_totp_secret(s, "u@example.test", None)
            assert got.totp_secret is None
            got = await attributes.set_admin(s, "u@example.test", False)
            assert not got.admin and got.session_epoch == 4  # losing admin ends the sessions too
            with pytest.raises(AccountNotFound):
                await attributes.set_admin(s, "nobody@example.test", True)
            with pytest.raises(AccountNotFound):
                await attributes.log_out_everywhere(s, "nobody@example.test")
        async with store_factory() as s:  # kept across a restart
            acct = await s.get_account("u@example.test")
            assert acct.disabled and acct.session_epoch == 4
    asyncio.run(t())


def test_app_passwords_and_tokens(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            cred, password = await app_passwords.create(s, a, " phone ")
            assert cred.name == "phone" and cred.last_used is None and cred.kind == "app"
            raw = normalize_app_password(password)
            assert raw is not None and len(raw) * 5 >= 128  # at least 128 random bits
            assert normalize_app_password(password.upper().replace("-", " ")) == raw
            assert normalize_app_password("an ordinary password") is None
            with pytest.raises(CredentialExists):
                await app_passwords.create(s, a, "phone")
            await app_passwords.create(s, b, "phone")  # names are per account
            for bad in ("", " ", "x" * 65, "tab\there"):
                with pytest.raises(ValueError):
                    await app_passwords.create(s, a, bad)
            laptop, _ = await app_passwords.create(s, a, "laptop")
            assert [c.name for c in await app_passwords.list_for(s, a)] == ["laptop", "phone"]
            # Only the digest is stored: found by it, and the secret itself is nowhere.
            found = await s.find_credential("app", digest(raw))
            assert found is not None and found.id == cred.id and found.account_id == a.id
            assert await s.find_credential("token", digest(raw)) is None  # kinds are apart
            await s.touch_credential(cred.id, 1234.5)
            assert (await s.find_credential("app", digest(raw))).last_used == 1234.5
            assert await app_passwords.revoke(s, a, "phone")
            assert not await app_passwords.revoke(s, a, "phone")
            assert await s.find_credential("app", digest(raw)) is None
            assert [c.name for c in await app_passwords.list_for(s, a)] == ["laptop"]
            with pytest.raises(AccountNotFound):
                await s.add_credential(999_999, "app", "x", b"\0" * 32)

            # API tokens: admins only, prefixed, disarmed when the account loses admin.
            with pytest.raises(tokens.NotAdmin):
                await tokens.create(s, a, "ci")
            a = await attributes.set_admin(s, a.address, True)
            tcred, token = await tokens.create(s, a, "ci")
            assert token.startswith("prt_") and len(token) > 40 and tcred.kind == "token"
            assert (await tokens.resolve(s, token)).address == a.address
            assert (await s.find_credential("token", digest(token))).last_used is not None
            assert await tokens.resolve(s, token + "x") is None
            assert await tokens.resolve(s, "not a token") is None
            assert [c.name for c in await tokens.list_for(s, a)] == ["ci"]
            assert [c.name for c in await app_passwords.list_for(s, a)] == ["laptop"]
            await attributes.set_disabled(s, a.address, True)
            assert await tokens.resolve(s, token) is None
            await attributes.set_disabled(s, a.address, False)
            await attributes.set_admin(s, a.address, False)
            assert await tokens.resolve(s, token) is None
            a = await attributes.set_admin(s, a.address, True)
            assert await tokens.resolve(s, token) is not None
            assert await tokens.revoke(s, a, "ci")
            assert await tokens.resolve(s, token) is None
            # Deleting the account deletes its credentials.
            await s.delete_account(a.address)
            assert await s.list_credentials(laptop.account_id, "app") == []
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite's own schema migration
def test_migration_adds_attributes_to_an_existing_store(store_factory, tmp_path):
    # A store as the previous release left it: schema version 7, an account with a password.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    for script in MIGRATIONS[:7]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 7")
    conn.execute("INSERT INTO domains VALUES ('example.test')")
    conn.execute("INSERT INTO accounts(id, address, password_hash, created) VALUES (1, 'u@example.test', 'h', 0)")
    conn.close()

    async def t():
        async with store_factory() as s:
            acct = await s.get_account("u@example.test")
            assert acct is not None and acct.password_hash == "h"
            assert (acct.admin, acct.disabled, acct.session_epoch, acct.totp_secret) == (False, False, 0, None)
            _, password = await app_passwords.create(s, acct, "phone")
            assert await s.find_credential("app", digest(normalize_app_password(password))) is not None
            assert (await attributes.set_admin(s, acct.address, True)).admin
    asyncio.run(t())
    conn = sqlite3.connect(data / "store.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 8
    conn.close()


def test_postgresql_migration_adds_attributes(pg_database: str) -> None:
    # A database as the previous release left it: store schema 1, an account.
    from postroom.config import PgSettings
    from postroom.storage.postgresql import schema
    from postroom.storage.postgresql.connect import connect
    from postroom.storage.postgresql.migrations import MIGRATIONS as PG_MIGRATIONS
    from postroom.storage.postgresql.store import PostgresStore

    pg = PgSettings(url=pg_database)

    async def t():
        conn = await connect(pg)
        try:
            assert await schema.apply(conn, "store", PG_MIGRATIONS[:1]) == 1
            await conn.execute("INSERT INTO domains VALUES ('example.test')")
            await conn.execute("INSERT INTO accounts (address, password_hash, created) VALUES ('u@example.test', 'h', 0)")
        finally:
            await conn.close()
        async with PostgresStore(pg) as s:
            assert ("store", len(PG_MIGRATIONS)) in await s.schema_versions()
            acct = await s.get_account("u@example.test")
            assert acct is not None and acct.password_hash == "h"
            assert (acct.admin, acct.disabled, acct.session_epoch, acct.totp_secret) == (False, False, 0, None)
            _, password = await app_passwords.create(s, acct, "phone")
            assert await s.find_credential("app", digest(normalize_app_password(password))) is not None
    asyncio.run(t())
