"""Account attributes and credentials (app passwords, API tokens) in the PostgreSQL store.

A mixin of :class:`~postroom.storage.postgresql.store.PostgresStore` with the same
methods and rules as the SQLite store's (sqlite/credentials.py), over migrations 2 and 3.
Changing an account's attributes announces the account as changed (notify.py), so other
nodes drop what they keep of it.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from ...errors import AccountNotFound
from ..api import UNSET, CredentialExists, Unset
from ..models import Account, Credential
from .base import PgBase
from .notify import Changes

#: The columns :func:`account` reads, in the order of Account's fields.
ACCOUNT_COLS = "id, address, password_hash, apop_secret, admin, disabled, session_epoch, totp_secret"
_CRED_COLS = "id, account_id, kind, name, created, last_used"


def account(row: Any) -> Account:
    return Account(*row)


def _credential(row: Any) -> Credential:
    return Credential(*row)


class CredentialsMixin(PgBase):
    async def set_account_attributes(self, address: str, *, admin: bool | None = None,
                                     disabled: bool | None = None, totp_secret: str | None | Unset = UNSET,
                                     bump_epoch: bool = False) -> Account:
        sets: list[str] = []
        args: list[Any] = []
        for column, value in (("admin", admin), ("disabled", disabled)):
            if value is not None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")
        if not isinstance(totp_secret, Unset):
            args.append(totp_secret)
            sets.append(f"totp_secret = ${len(args)}")
        if bump_epoch:
            sets.append("session_epoch = session_epoch + 1")
        address = address.strip().lower()

        async def w(c: asyncpg.Connection, ch: Changes) -> Account:
            if sets:
                row = await c.fetchrow(f"UPDATE accounts SET {', '.join(sets)} WHERE address = ${len(args) + 1} "
                                       f"RETURNING {ACCOUNT_COLS}", *args, address)
            else:
                row = await c.fetchrow(f"SELECT {ACCOUNT_COLS} FROM accounts WHERE address = $1", address)
            if row is None:
                raise AccountNotFound(address)
            ch.account(row[0])
            return account(row)
        return await self.write(w)

    async def claim_totp_step(self, account_id: int, secret: str, step: int) -> bool:
        # One statement, its own transaction: row locking makes a racing UPDATE (another
        # worker or node) re-check the WHERE after this one commits, and change nothing.
        # totp_last_step is not part of Account, so nothing is announced.
        async def w(c: asyncpg.Connection) -> bool:
            done = await c.execute("UPDATE accounts SET totp_last_step = $1 WHERE id = $2 AND totp_secret = $3 "
                                   "AND totp_last_step < $1", step, account_id, secret)
            return bool(done == "UPDATE 1")
        return await self.write_statement(w)

    async def enable_totp(self, account_id: int, secret: str, step: int) -> bool:
        async def w(c: asyncpg.Connection, ch: Changes) -> bool:
            done = await c.execute("UPDATE accounts SET totp_secret = $1, totp_last_step = $2, "
                                   "session_epoch = session_epoch + 1 WHERE id = $3 AND totp_secret IS NULL",
                                   secret, step, account_id)
            if done != "UPDATE 1":
                return False
            ch.account(account_id)
            return True
        return await self.write(w)

    async def end_web_session(self, account_id: int, digest: bytes, expires: float) -> None:
        now = time.time()

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await c.execute("DELETE FROM web_logouts WHERE expires < $1", now)
            await c.execute("INSERT INTO web_logouts (digest, account_id, expires) SELECT $1, id, $2 FROM accounts "
                            "WHERE id = $3 ON CONFLICT (digest) DO NOTHING", digest, expires, account_id)
        await self.write(w)

    async def web_session_ended(self, digest: bytes) -> bool:
        async def r(c: asyncpg.Connection) -> bool:
            return await c.fetchval("SELECT 1 FROM web_logouts WHERE digest = $1", digest) is not None
        return await self.read(r)

    async def add_credential(self, account_id: int, kind: str, name: str, digest: bytes) -> Credential:
        now = time.time()

        async def w(c: asyncpg.Connection, ch: Changes) -> Credential:
            if await c.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id) is None:
                raise AccountNotFound(str(account_id))
            cid = await c.fetchval(
                "INSERT INTO credentials (account_id, kind, name, digest, created) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (account_id, kind, name) DO NOTHING RETURNING id", account_id, kind, name, digest, now)
            if cid is None:
                raise CredentialExists(name)
            return Credential(cid, account_id, kind, name, now)
        return await self.write(w)

    async def list_credentials(self, account_id: int, kind: str) -> list[Credential]:
        async def r(c: asyncpg.Connection) -> list[Credential]:
            return [_credential(row) for row in await c.fetch(
                f"SELECT {_CRED_COLS} FROM credentials WHERE account_id = $1 AND kind = $2 ORDER BY name",
                account_id, kind)]
        return await self.read(r)

    async def delete_credential(self, account_id: int, kind: str, name: str) -> bool:
        async def w(c: asyncpg.Connection) -> bool:
            return await c.fetchval("DELETE FROM credentials WHERE account_id = $1 AND kind = $2 AND name = $3 "
                                    "RETURNING true", account_id, kind, name) is not None
        return await self.write_statement(w)

    async def find_credential(self, kind: str, digest: bytes) -> Credential | None:
        async def r(c: asyncpg.Connection) -> Credential | None:
            row = await c.fetchrow(f"SELECT {_CRED_COLS} FROM credentials WHERE digest = $1 AND kind = $2",
                                   digest, kind)
            return _credential(row) if row else None
        return await self.read(r)

    async def touch_credential(self, credential_id: int, when: float) -> None:
        async def w(c: asyncpg.Connection) -> None:
            await c.execute("UPDATE credentials SET last_used = $1 WHERE id = $2", when, credential_id)
        await self.write_statement(w)
