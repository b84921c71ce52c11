"""Account attributes and credentials (app passwords, API tokens) in the SQLite store.

A mixin of :class:`~postroom.storage.sqlite.store.SqliteStore`, kept apart so that the
store module does not grow: the Store methods ``set_account_attributes``,
``add_credential``, ``list_credentials``, ``delete_credential``, ``find_credential``,
``touch_credential``, ``claim_totp_step``, ``enable_totp``, ``end_web_session``,
``web_session_ended`` (storage/api.py), over migration 8's columns and table and migration 9's.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ...errors import AccountNotFound
from ..api import UNSET, CredentialExists, Unset
from ..models import Account, Credential
from .engine import Engine

#: The columns :func:`account` reads, in the order of Account's fields.
ACCOUNT_COLS = "id, address, password_hash, apop_secret, admin, disabled, session_epoch, totp_secret"
_CRED_COLS = "id, account_id, kind, name, created, last_used"


def account(row: tuple[Any, ...]) -> Account:
    aid, address, password_hash, apop, admin, disabled, epoch, totp = row
    return Account(aid, address, password_hash, apop, bool(admin), bool(disabled), epoch, totp)


class CredentialsMixin:
    engine: Engine

    async def set_account_attributes(self, address: str, *, admin: bool | None = None,
                                     disabled: bool | None = None, totp_secret: str | None | Unset = UNSET,
                                     bump_epoch: bool = False) -> Account:
        sets: list[str] = []
        args: list[Any] = []
        if admin is not None:
            sets.append("admin = ?")
            args.append(int(admin))
        if disabled is not None:
            sets.append("disabled = ?")
            args.append(int(disabled))
        if not isinstance(totp_secret, Unset):
            sets.append("totp_secret = ?")
            args.append(totp_secret)
        if bump_epoch:
            sets.append("session_epoch = session_epoch + 1")

        def w(c: sqlite3.Connection, a: str) -> Account:
            if sets:
                c.execute(f"UPDATE accounts SET {', '.join(sets)} WHERE address = ?", (*args, a))
            row = c.execute(f"SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?", (a,)).fetchone()
            if row is None:
                raise AccountNotFound(a)
            return account(row)
        result: Account = await self.engine.write(w, address.strip().lower())
        return result

    async def claim_totp_step(self, account_id: int, secret: str, step: int) -> bool:
        # The WHERE is the whole check (migration 9): a racing worker's UPDATE waits for the
        # write lock, then finds totp_last_step already at ``step`` and changes no row.
        def w(c: sqlite3.Connection) -> bool:
            return c.execute("UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_secret = ? "
                             "AND totp_last_step < ?", (step, account_id, secret, step)).rowcount == 1
        result: bool = await self.engine.write(w)
        return result

    async def enable_totp(self, account_id: int, secret: str, step: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            return c.execute("UPDATE accounts SET totp_secret = ?, totp_last_step = ?, "
                             "session_epoch = session_epoch + 1 WHERE id = ? AND totp_secret IS NULL",
                             (secret, step, account_id)).rowcount == 1
        result: bool = await self.engine.write(w)
        return result

    async def end_web_session(self, account_id: int, digest: bytes, expires: float) -> None:
        now = time.time()

        def w(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM web_logouts WHERE expires < ?", (now,))
            c.execute("INSERT OR IGNORE INTO web_logouts(digest, account_id, expires) "
                      "SELECT ?, id, ? FROM accounts WHERE id = ?", (digest, expires, account_id))
        await self.engine.write(w)

    async def web_session_ended(self, digest: bytes) -> bool:
        row = await self.engine.read_small(lambda c: c.execute(
            "SELECT 1 FROM web_logouts WHERE digest = ?", (digest,)).fetchone())
        return row is not None

    async def add_credential(self, account_id: int, kind: str, name: str, digest: bytes) -> Credential:
        now = time.time()

        def w(c: sqlite3.Connection) -> Credential:
            if c.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                raise AccountNotFound(str(account_id))
            if c.execute("SELECT 1 FROM credentials WHERE account_id = ? AND kind = ? AND name = ?",
                         (account_id, kind, name)).fetchone() is not None:
                raise CredentialExists(name)
            cur = c.execute("INSERT INTO credentials(account_id, kind, name, digest, created) VALUES (?,?,?,?,?)",
                            (account_id, kind, name, digest, now))
            assert cur.lastrowid is not None
            return Credential(cur.lastrowid, account_id, kind, name, now)
        result: Credential = await self.engine.write(w)
        return result

    async def list_credentials(self, account_id: int, kind: str) -> list[Credential]:
        rows = await self.engine.read(lambda c: c.execute(
            f"SELECT {_CRED_COLS} FROM credentials WHERE account_id = ? AND kind = ? ORDER BY name",
            (account_id, kind)).fetchall())
        return [Credential(*r) for r in rows]

    async def delete_credential(self, account_id: int, kind: str, name: str) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM credentials WHERE account_id = ? AND kind = ? AND name = ?",
                             (account_id, kind, name)).rowcount > 0
        result: bool = await self.engine.write(w)
        return result

    async def find_credential(self, kind: str, digest: bytes) -> Credential | None:
        # read_small: one probe of the unique index on digest, asked by a login.
        row = await self.engine.read_small(lambda c: c.execute(
            f"SELECT {_CRED_COLS} FROM credentials WHERE digest = ? AND kind = ?", (digest, kind)).fetchone())
        return Credential(*row) if row else None

    async def touch_credential(self, credential_id: int, when: float) -> None:
        await self.engine.write(lambda c: c.execute(
            "UPDATE credentials SET last_used = ? WHERE id = ?", (when, credential_id)))
