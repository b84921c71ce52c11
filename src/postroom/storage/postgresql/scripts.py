"""Sieve scripts, Sieve tracking and IMAP metadata in the PostgreSQL store.

The same rules as the SQLite store's (sqlite/store.py): at most one active script per
account (a partial unique index), the script count checked inside the writing
transaction, metadata entry names lower-case with server entries under mailbox 0, and a
numbered log of metadata writes for IMAP NOTIFY. Where SQLite's single writer made a
check-then-write safe, a row lock on the account does here (two nodes writing the same
account's scripts or metadata take turns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from ...errors import AccountNotFound, MailboxNotFound
from ..api import (
    METADATA_LOG_KEEP,
    InvalidSieveScriptName,
    MetadataChanges,
    MetadataLimits,
    MetadataTooLarge,
    MetadataTooMany,
    SieveDelivery,
    SieveScriptActive,
    SieveScriptExists,
    SieveScriptInfo,
    SieveScriptNotFound,
    SieveScriptQuota,
    sieve_script_name_problem,
)
from .base import PgBase
from .notify import Changes


async def _lock_account(c: asyncpg.Connection, account_id: int) -> None:
    if await c.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id) is None:
        raise AccountNotFound(str(account_id))


def tracking_key(key: str) -> str:
    """The key as PostgreSQL text can hold it: NUL (the Sieve stage's separator) and the
    escape character itself escaped, so distinct keys stay distinct."""
    if "\0" not in key and "%" not in key:
        return key
    return key.replace("%", "%25").replace("\0", "%00")


def _count(status: str) -> int:
    return int(status.split()[-1])


class ScriptsMixin(PgBase):
    # --- sieve scripts (RFC 5804 §1.6, §2.5-§2.11) ------------------------------------
    async def list_sieve_scripts(self, account_id: int) -> list[SieveScriptInfo]:
        async def r(c: asyncpg.Connection) -> list[SieveScriptInfo]:
            return [SieveScriptInfo(n, bool(a), int(s)) for n, a, s in await c.fetch(
                "SELECT name, active, octet_length(content) FROM sieve_scripts WHERE account_id = $1 "
                "ORDER BY name COLLATE \"C\"", account_id)]
        return await self.read(r)

    async def get_sieve_script(self, account_id: int, name: str) -> str | None:
        async def r(c: asyncpg.Connection) -> str | None:
            v = await c.fetchval("SELECT content FROM sieve_scripts WHERE account_id = $1 AND name = $2",
                                 account_id, name)
            return None if v is None else str(v)
        return await self.read(r)

    async def put_sieve_script(self, account_id: int, name: str, content: str, *,
                               max_scripts: int | None = None, activate: bool = False) -> None:
        problem = sieve_script_name_problem(name)
        if problem:
            raise InvalidSieveScriptName(problem)

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await _lock_account(c, account_id)  # two sessions cannot both take the last slot
            if await c.execute("UPDATE sieve_scripts SET content = $1, updated = $2 WHERE account_id = $3 "
                               "AND name = $4", content, time.time(), account_id, name) == "UPDATE 0":
                if max_scripts is not None and await c.fetchval(
                        "SELECT count(*) FROM sieve_scripts WHERE account_id = $1", account_id) >= max_scripts:
                    raise SieveScriptQuota(f"at most {max_scripts} scripts")
                await c.execute("INSERT INTO sieve_scripts (account_id, name, content, updated) "
                                "VALUES ($1, $2, $3, $4)", account_id, name, content, time.time())
            if activate:
                await self._w_activate_sieve(c, account_id, name)
        await self.write(w)

    async def delete_sieve_script(self, account_id: int, name: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            active = await c.fetchval("SELECT active FROM sieve_scripts WHERE account_id = $1 AND name = $2 "
                                      "FOR UPDATE", account_id, name)
            if active is None:
                raise SieveScriptNotFound(name)
            if active:
                raise SieveScriptActive(name)  # RFC 5804 §2.10
            await c.execute("DELETE FROM sieve_scripts WHERE account_id = $1 AND name = $2", account_id, name)
        await self.write(w)

    async def rename_sieve_script(self, account_id: int, old: str, new: str) -> None:
        problem = sieve_script_name_problem(new)
        if problem:
            raise InvalidSieveScriptName(problem)

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            if await c.fetchval("SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2",
                                account_id, old) is None:
                raise SieveScriptNotFound(old)
            if await c.fetchval("SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2",
                                account_id, new) is not None:
                raise SieveScriptExists(new)  # RFC 5804 §2.11.1
            try:
                await c.execute("UPDATE sieve_scripts SET name = $1, updated = $2 WHERE account_id = $3 AND name = $4",
                                new, time.time(), account_id, old)
            except asyncpg.UniqueViolationError:  # created by another session meanwhile
                raise SieveScriptExists(new) from None
        await self.write(w)

    @staticmethod
    async def _w_activate_sieve(c: asyncpg.Connection, account_id: int, name: str | None) -> None:
        # Clear first: the partial unique index allows one active row per account at any moment.
        await c.execute("UPDATE sieve_scripts SET active = false WHERE account_id = $1 AND active", account_id)
        if name is not None and await c.execute(
                "UPDATE sieve_scripts SET active = true WHERE account_id = $1 AND name = $2",
                account_id, name) == "UPDATE 0":
            raise SieveScriptNotFound(name)

    async def set_active_sieve_script(self, account_id: int, name: str | None) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await _lock_account(c, account_id)
            await self._w_activate_sieve(c, account_id, name)
        try:
            await self.write(w)
        except AccountNotFound:
            if name is not None:
                raise SieveScriptNotFound(name) from None

    async def get_active_sieve_script(self, account_id: int) -> tuple[str, str] | None:
        async def r(c: asyncpg.Connection) -> tuple[str, str] | None:
            row = await c.fetchrow("SELECT name, content FROM sieve_scripts WHERE account_id = $1 AND active",
                                   account_id)
            return (row[0], row[1]) if row else None
        return await self.read(r)

    async def get_sieve_delivery(self, account_id: int) -> SieveDelivery | None:
        async def r(c: asyncpg.Connection) -> SieveDelivery | None:
            row = await c.fetchrow("SELECT a.address, s.name, s.content FROM accounts a LEFT JOIN sieve_scripts s "
                                   "ON s.account_id = a.id AND s.active WHERE a.id = $1", account_id)
            if row is None:
                return None
            return SieveDelivery(row[0], (row[1], row[2]) if row[1] is not None else None)
        return await self.read(r)

    # --- sieve tracking (RFC 5230 §4.2 vacation, RFC 7352 duplicate) ---------------------
    # Keys are made by the Sieve stage with NUL separators, which PostgreSQL's text refuses:
    # stored through tracking_key(), an injective escape (migrate-store uses it too).
    async def sieve_tracked(self, account_id: int, kind: str, key: str, now: float) -> float | None:
        async def r(c: asyncpg.Connection) -> float | None:
            v = await c.fetchval("SELECT recorded FROM sieve_tracking WHERE account_id = $1 AND kind = $2 "
                                 "AND key = $3 AND expires > $4", account_id, kind, tracking_key(key), now)
            return None if v is None else float(v)
        return await self.read(r)

    async def sieve_track(self, account_id: int, kind: str, key: str, now: float, expires: float,
                          unless_since: float | None = None) -> bool:
        key = tracking_key(key)

        async def w(c: asyncpg.Connection, ch: Changes) -> bool:
            await _lock_account(c, account_id)  # two deliveries racing for one vacation reply: one wins
            await c.execute("DELETE FROM sieve_tracking WHERE account_id = $1 AND expires <= $2", account_id, now)
            if unless_since is not None:
                rec = await c.fetchval("SELECT recorded FROM sieve_tracking WHERE account_id = $1 AND kind = $2 "
                                       "AND key = $3", account_id, kind, key)
                if rec is not None and rec > unless_since:
                    return False
            await c.execute("INSERT INTO sieve_tracking VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, kind, key) "
                            "DO UPDATE SET recorded = EXCLUDED.recorded, expires = EXCLUDED.expires",
                            account_id, kind, key, now, expires)
            return True
        return await self.write(w)

    async def prune_sieve_tracking(self, now: float) -> int:
        async def w(c: asyncpg.Connection, ch: Changes) -> int:
            return _count(await c.execute("DELETE FROM sieve_tracking WHERE expires <= $1", now))
        return await self.write(w)

    # --- metadata (RFC 5464) ---------------------------------------------------------------
    _MD_WHERE = "account_id = $1 AND coalesce(mailbox_id, 0) = $2"

    async def get_metadata(self, account_id: int, mailbox_id: int | None, names: Sequence[str],
                           depth: int | None = 0) -> list[tuple[str, bytes]]:
        key = mailbox_id or 0
        wanted = sorted({n.lower() for n in names})

        async def r(c: asyncpg.Connection) -> list[tuple[str, bytes]]:
            found: dict[str, bytes] = {}
            for name in wanted:
                v = await c.fetchval(f"SELECT value FROM metadata WHERE {self._MD_WHERE} AND name = $3",
                                     account_id, key, name)
                if v is not None:
                    found[name] = bytes(v)
                if depth == 0:
                    continue
                for child, value in await c.fetch(
                        f"SELECT name, value FROM metadata WHERE {self._MD_WHERE} AND name COLLATE \"C\" >= $3 "
                        f"AND name COLLATE \"C\" < $4", account_id, key, name + "/", name + "0"):
                    if depth is None or "/" not in child[len(name) + 1:]:
                        found[child] = bytes(value)
            return sorted(found.items())
        return await self.read_tx(r)

    async def set_metadata(self, account_id: int, mailbox_id: int | None, entries: dict[str, bytes | None],
                           limits: MetadataLimits | None = None) -> int:
        lim = limits or MetadataLimits()
        key = mailbox_id or 0
        changes = [(n.lower(), None if v is None else bytes(v)) for n, v in entries.items()]
        for _, value in changes:
            if value is not None and len(value) > lim.value_size:
                raise MetadataTooLarge(lim.value_size)

        async def w(c: asyncpg.Connection, ch: Changes) -> int:
            await _lock_account(c, account_id)  # the limits below are counted under this lock
            if mailbox_id is not None and await c.fetchval(
                    "SELECT 1 FROM mailboxes WHERE id = $1 AND account_id = $2", mailbox_id, account_id) is None:
                raise MailboxNotFound(str(mailbox_id))
            added = False
            changed: list[str] = []
            for name, value in changes:
                old = await c.fetchval(f"SELECT value FROM metadata WHERE {self._MD_WHERE} AND name = $3",
                                       account_id, key, name)
                if (None if old is None else bytes(old)) == value:
                    continue  # as it was: not a change for NOTIFY (RFC 5465 §5.6)
                changed.append(name)
                await c.execute(f"DELETE FROM metadata WHERE {self._MD_WHERE} AND name = $3", account_id, key, name)
                if value is not None:
                    await c.execute("INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES ($1, $2, $3, $4)",
                                    account_id, mailbox_id, name, value)
                    added = True
            if not changed:
                return 0
            number = int(await c.fetchval("UPDATE accounts SET metadata_change = metadata_change + 1 WHERE id = $1 "
                                          "RETURNING metadata_change", account_id))
            await c.executemany("INSERT INTO metadata_log (account_id, change, mailbox_id, name) VALUES ($1, $2, $3, $4)",
                                [(account_id, number, mailbox_id, n) for n in changed])
            await c.execute("DELETE FROM metadata_log WHERE account_id = $1 AND change <= $2",
                            account_id, number - METADATA_LOG_KEEP)
            ch.account(account_id)
            if not added:
                return number  # removals only: never refused
            n = await c.fetchval(f"SELECT count(*) FROM metadata WHERE {self._MD_WHERE}", account_id, key)
            total, size = await c.fetchrow("SELECT count(*), coalesce(sum(octet_length(name) + octet_length(value)), 0) "
                                           "FROM metadata WHERE account_id = $1", account_id)
            if n > lim.entries or total > lim.account_entries or size > lim.account_size:
                raise MetadataTooMany(f"account {account_id}: {n} entries here, {total} in all, {size} octets")
            return number
        return await self.write(w)

    async def metadata_changes(self, account_id: int, since: int | None) -> MetadataChanges:
        async def r(c: asyncpg.Connection) -> MetadataChanges:
            v = await c.fetchval("SELECT metadata_change FROM accounts WHERE id = $1", account_id)
            last = int(v) if v is not None else 0
            if since is None or since >= last:
                return MetadataChanges(last)
            if since < last - METADATA_LOG_KEEP:
                return MetadataChanges(last, complete=False)
            rows = await c.fetch("SELECT change, mailbox_id, name FROM metadata_log WHERE account_id = $1 "
                                 "AND change > $2 ORDER BY change, id", account_id, since)
            return MetadataChanges(last, True, tuple((int(a), b, n) for a, b, n in rows))
        return await self.read_tx(r)
