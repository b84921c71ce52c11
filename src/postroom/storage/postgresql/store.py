"""The PostgreSQL store: several Postroom nodes on one database (docs/storage.md).

Implements :class:`postroom.storage.api.Store` with the SQLite store's behaviour. This
module holds the lifecycle and the account-level records (domains, accounts, aliases,
mailboxes, subscriptions, watches, locks); messages.py the messages, scripts.py Sieve
scripts and IMAP metadata. Every method is one function run on a pooled connection
(base.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import asyncpg

from ...config import PgSettings
from ...errors import (
    AccountExists,
    AccountNotFound,
    DomainNotFound,
    MailboxExists,
    MailboxNotFound,
    MaildropLocked,
    StoreError,
)
from ..models import (
    DEFAULT_MAILBOXES,
    HIERARCHY_SEPARATOR,
    Account,
    Alias,
    Mailbox,
    MailboxStatus,
    Quota,
)
from ..watch import Watch, WatchHub
from . import blobs, schema
from .base import PgBase, unavailable_as_store_error
from .connect import connect, create_pool
from .credentials import ACCOUNT_COLS, CredentialsMixin
from .messages import MAILBOX_COLS, MessagesMixin, mailbox, norm_mailbox
from .migrations import COMPONENT, MIGRATIONS
from .notify import ChangeListener, Changes, Notifier, new_origin
from .scripts import ScriptsMixin

QUOTA_TTL = 10.0  # seconds an account seen without quota limits is taken to have none
_ACCOUNT_COLS = ACCOUNT_COLS


def _domain(d: str) -> str:
    return d.lower().rstrip(".")


def _addr(a: str) -> str:
    return a.strip().lower()


def _maildrop_key(account_id: int) -> tuple[int, int]:
    # pg_try_advisory_lock(int, int): the first number names Postroom's maildrop locks
    # (ASCII "POP3"), the second the account.
    return 0x504F5033, account_id


class PostgresStore(MessagesMixin, ScriptsMixin, CredentialsMixin, PgBase):
    def __init__(self, pg: PgSettings, data_dir: Path | str | None = None) -> None:
        self.pg = pg
        # Local files (DKIM keys …) still live in the data directory; the store needs none.
        self.dir = Path(data_dir) if data_dir is not None else None
        self._pool: asyncpg.Pool | None = None
        self._listener: ChangeListener | None = None
        self._notifier: Notifier | None = None
        self._origin = new_origin()
        self.hub = WatchHub(self._data_version, self._modseqs, self._account_marks)
        self._unlimited: dict[int, float] = {}  # account id → when it was seen with no quota
        self._marks: dict[int, Any] = {}  # account id → the fingerprint _account_marks last read
        MessagesMixin.__init__(self)

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        """Connect, run the store's migrations (SchemaTooNew refuses a newer schema), listen."""
        with unavailable_as_store_error():
            conn = await connect(self.pg)
            try:
                await schema.apply(conn, COMPONENT, MIGRATIONS)
            finally:
                await conn.close()
            self._pool = await create_pool(self.pg, reset_session=False)
        self._notifier = Notifier(lambda: self._pool, self._origin)
        self._notifier.start()
        self._listener = ChangeListener(self.pg, self.hub, self._origin, self._changed)
        await self._listener.start()

    async def close(self) -> None:
        await self.hub.close()
        if self._notifier is not None:
            await self._notifier.close()  # what was committed is still announced
            self._notifier = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except (OSError, asyncpg.InterfaceError):
                pool.terminate()

    async def schema_versions(self) -> list[tuple[str, int]]:
        """Every component's schema version in the database (store, queue, state …)."""
        async def r(c: asyncpg.Connection) -> list[tuple[str, int]]:
            return [(row[0], int(row[1])) for row in await c.fetch(
                "SELECT component, version FROM schema_versions ORDER BY component")]
        return await self.read(r)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _committed(self, changes: Changes) -> None:
        """A write of this process committed: wake its watchers now, tell the other nodes."""
        if changes:
            self._changed(changes)
            if self._notifier is not None:
                self._notifier.add(changes)

    def _listening(self) -> bool:
        return self._listener is not None and self._listener.up

    def _changed(self, changes: Changes | None) -> None:
        """Something changed, here or on another node (None: maybe anything, after the
        listening connection was re-established): wake the watchers, forget cached facts."""
        if self._listener is not None:
            self._listener.bump()
        if changes is None:
            self._forget_all()
            self._unlimited.clear()
            # WatchHub keeps its watchers by mailbox and by account; its public calls wake them.
            self.hub.changed(list(self.hub._watches))
            self.hub.account_changed(list(self.hub._accounts))
            return
        self._forget(changes.mailboxes, changes.accounts)  # before the watchers wake and read
        accounts = changes.accounts | set(changes.mailboxes.values())
        for aid in accounts:
            self._unlimited.pop(aid, None)
        if changes.mailboxes:
            self.hub.changed(changes.mailboxes)
        if accounts:
            self.hub.account_changed(accounts)

    # -- domains -------------------------------------------------------------------
    async def add_domain(self, domain: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await c.execute("INSERT INTO domains VALUES ($1) ON CONFLICT DO NOTHING", _domain(domain))
        await self.write(w)

    async def delete_domain(self, domain: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            if await c.execute("DELETE FROM domains WHERE name = $1", _domain(domain)) == "DELETE 0":
                raise DomainNotFound(_domain(domain))
        await self.write(w)

    async def list_domains(self) -> list[str]:
        async def r(c: asyncpg.Connection) -> list[str]:
            return [row[0] for row in await c.fetch("SELECT name FROM domains ORDER BY name")]
        return await self.read(r)

    async def has_domain(self, domain: str) -> bool:
        async def r(c: asyncpg.Connection) -> bool:
            return await c.fetchval("SELECT 1 FROM domains WHERE name = $1", _domain(domain)) is not None
        return await self.read(r)

    # -- accounts ------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        address = _addr(address)
        domain = address.rpartition("@")[2]

        async def w(c: asyncpg.Connection, ch: Changes) -> Account:
            if await c.fetchval("SELECT 1 FROM domains WHERE name = $1", domain) is None:
                raise DomainNotFound(domain)
            aid = await c.fetchval("INSERT INTO accounts (address, password_hash, created) VALUES ($1, $2, $3) "
                                   "ON CONFLICT (address) DO NOTHING RETURNING id", address, password_hash, time.time())
            if aid is None:
                raise AccountExists(address)
            for name, use in DEFAULT_MAILBOXES:
                await self._w_create_mailbox(c, ch, aid, name, use)
            await c.executemany("INSERT INTO subscriptions VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                [(aid, name) for name, _ in DEFAULT_MAILBOXES])
            return Account(aid, address, password_hash)
        return await self.write(w)

    async def get_account(self, address: str) -> Account | None:
        async def r(c: asyncpg.Connection) -> Account | None:
            row = await c.fetchrow(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE address = $1", _addr(address))
            return Account(*row) if row else None
        return await self.read(r)

    async def get_account_by_id(self, account_id: int) -> Account | None:
        async def r(c: asyncpg.Connection) -> Account | None:
            row = await c.fetchrow(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = $1", account_id)
            return Account(*row) if row else None
        return await self.read(r)

    async def list_accounts(self) -> list[Account]:
        async def r(c: asyncpg.Connection) -> list[Account]:
            return [Account(*row) for row in await c.fetch(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY address")]
        return await self.read(r)

    async def delete_account(self, address: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            aid = await c.fetchval("SELECT id FROM accounts WHERE address = $1 FOR UPDATE", _addr(address))
            if aid is None:
                raise AccountNotFound(_addr(address))
            await blobs.unref_messages(c, "mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $1)", aid)
            for (mid,) in await c.fetch("SELECT id FROM mailboxes WHERE account_id = $1", aid):
                ch.mailbox(mid, aid)
            await c.execute("DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $1)",
                            aid)
            await c.execute("DELETE FROM accounts WHERE id = $1", aid)
            ch.account(aid)
        await self.write(w)

    async def set_password_hash(self, address: str, password_hash: str) -> None:
        await self._update_account(address, "password_hash", password_hash)

    async def set_apop_secret(self, address: str, secret: str | None) -> None:
        await self._update_account(address, "apop_secret", secret)

    async def _update_account(self, address: str, column: str, value: str | None) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            aid = await c.fetchval(f"UPDATE accounts SET {column} = $1 WHERE address = $2 RETURNING id",
                                   value, _addr(address))
            if aid is None:
                raise AccountNotFound(_addr(address))
            ch.account(aid)
        await self.write(w)

    async def get_quota(self, account_id: int, with_usage: bool = False) -> Quota | None:
        # Asked for every local recipient: an account seen without limits is answered from
        # memory for QUOTA_TTL seconds, or until a notification says the account changed.
        now = time.monotonic()
        seen = self._unlimited.get(account_id)
        if not with_usage and seen is not None and now - seen < QUOTA_TTL:
            return Quota(None, None)

        async def r(c: asyncpg.Connection) -> Quota | None:
            row = await c.fetchrow("SELECT quota_storage, quota_messages FROM accounts WHERE id = $1", account_id)
            if row is None:
                return None
            if row[0] is None and row[1] is None:
                if len(self._unlimited) > 100_000:
                    self._unlimited.clear()
                self._unlimited[account_id] = now
                if not with_usage:
                    return Quota(None, None)
            count, size = await c.fetchrow(
                "SELECT count(*), coalesce(sum(m.size), 0) FROM mailboxes b "
                "JOIN messages m ON m.mailbox_id = b.id WHERE b.account_id = $1", account_id)
            return Quota(row[0], row[1], int(size), int(count))
        return await self.read(r)

    async def set_quota(self, address: str, storage: int | None, messages: int | None) -> None:
        self._unlimited.clear()

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            aid = await c.fetchval("UPDATE accounts SET quota_storage = $1, quota_messages = $2 WHERE address = $3 "
                                   "RETURNING id", storage, messages, _addr(address))
            if aid is None:
                raise AccountNotFound(_addr(address))
            ch.account(aid)
        await self.write(w)

    # -- aliases -------------------------------------------------------------------
    async def set_alias(self, source: str, targets: Sequence[str]) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await c.execute("INSERT INTO aliases VALUES ($1, $2) ON CONFLICT (source) DO UPDATE "
                            "SET targets = EXCLUDED.targets", _addr(source), list(targets))
        await self.write(w)

    async def get_alias(self, source: str) -> Alias | None:
        async def r(c: asyncpg.Connection) -> Alias | None:
            row = await c.fetchrow("SELECT source, targets FROM aliases WHERE source = $1", _addr(source))
            return Alias(row[0], tuple(row[1])) if row else None
        return await self.read(r)

    async def list_aliases(self) -> list[Alias]:
        async def r(c: asyncpg.Connection) -> list[Alias]:
            return [Alias(s, tuple(t)) for s, t in await c.fetch("SELECT source, targets FROM aliases ORDER BY source")]
        return await self.read(r)

    async def delete_alias(self, source: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            if await c.execute("DELETE FROM aliases WHERE source = $1", _addr(source)) == "DELETE 0":
                raise AccountNotFound(f"no alias {_addr(source)}")
        await self.write(w)

    # -- mailboxes -----------------------------------------------------------------
    @staticmethod
    async def _w_next_uidvalidity(c: asyncpg.Connection) -> int:
        # Time-based like Dovecot, strictly increasing store-wide (RFC 3501 §2.3.1.1): the
        # row lock makes concurrent creations on several nodes take turns.
        return int(await c.fetchval(
            "UPDATE meta SET value = greatest(extract(epoch FROM now())::bigint, value + 1) "
            "WHERE key = 'last_uidvalidity' RETURNING value"))

    async def _w_create_mailbox(self, c: asyncpg.Connection, ch: Changes, account_id: int, name: str,
                                special_use: str | None) -> Mailbox:
        name = norm_mailbox(name)
        uv = await self._w_next_uidvalidity(c)
        try:
            mid = await c.fetchval("INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) "
                                   "VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, name) DO NOTHING RETURNING id",
                                   account_id, name, uv, special_use)
        except asyncpg.ForeignKeyViolationError:
            raise AccountNotFound(str(account_id)) from None
        if mid is None:
            raise MailboxExists(name)
        ch.account(account_id)
        return Mailbox(mid, account_id, name, uv, 1, 1, special_use)

    async def create_mailbox(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        return await self.write(self._w_create_mailbox, account_id, name, special_use)

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        async def r(c: asyncpg.Connection) -> list[Mailbox]:
            return [mailbox(row) for row in await c.fetch(
                f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 ORDER BY name COLLATE \"C\"",
                account_id)]
        return await self.read(r)

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        async def r(c: asyncpg.Connection) -> Mailbox | None:
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name = $2",
                                   account_id, norm_mailbox(name))
            return mailbox(row) if row else None
        return await self.read(r)

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        async def r(c: asyncpg.Connection) -> Mailbox | None:
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = $1", mailbox_id)
            return mailbox(row) if row else None
        return await self.read(r)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        name = norm_mailbox(name)

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            mid = await c.fetchval("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE",
                                   account_id, name)
            if mid is None:
                raise MailboxNotFound(name)
            await blobs.unref_messages(c, "mailbox_id = $1", mid)
            await c.execute("DELETE FROM messages WHERE mailbox_id = $1", mid)
            await c.execute("DELETE FROM mailboxes WHERE id = $1", mid)
            ch.mailbox(mid, account_id)
            ch.account(account_id)
        await self.write(w)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        old, new = norm_mailbox(old), norm_mailbox(new)

        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            rows = await c.fetch("SELECT id, name FROM mailboxes WHERE account_id = $1 AND "
                                 "(name = $2 OR left(name, $3) = $4) ORDER BY id FOR UPDATE",
                                 account_id, old, len(old) + 1, old + HIERARCHY_SEPARATOR)
            if not any(n == old for _, n in rows):
                raise MailboxNotFound(old)
            if await c.fetchval("SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2", account_id, new):
                raise MailboxExists(new)
            for mid, name in rows:
                target = new + name[len(old):]
                if name != old and await c.fetchval(
                        "SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2", account_id, target):
                    raise MailboxExists(target)
                await c.execute("UPDATE mailboxes SET name = $1 WHERE id = $2", target, mid)
            ch.account(account_id)
        await self.write(w)

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        async def r(c: asyncpg.Connection) -> MailboxStatus:
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = $1", mailbox_id)
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            st = await c.fetchrow(
                "SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE uid >= $2), "
                "count(*) FILTER (WHERE strpos(' ' || flags || ' ', ' \\Seen ') = 0), "
                "min(uid) FILTER (WHERE strpos(' ' || flags || ' ', ' \\Seen ') = 0) "
                "FROM messages WHERE mailbox_id = $1", mailbox_id, row[-1])
            return MailboxStatus(mailbox(row[:-1]), st[0], st[3], st[2], int(st[1]), st[4])
        return await self.read_tx(r)

    async def list_subscriptions(self, account_id: int) -> list[str]:
        async def r(c: asyncpg.Connection) -> list[str]:
            return [row[0] for row in await c.fetch(
                "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name COLLATE \"C\"", account_id)]
        return await self.read(r)

    async def subscribe(self, account_id: int, name: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            try:
                await c.execute("INSERT INTO subscriptions VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                account_id, norm_mailbox(name))
            except asyncpg.ForeignKeyViolationError:
                raise AccountNotFound(str(account_id)) from None
            ch.account(account_id)
        await self.write(w)

    async def unsubscribe(self, account_id: int, name: str) -> None:
        async def w(c: asyncpg.Connection, ch: Changes) -> None:
            await c.execute("DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                            account_id, norm_mailbox(name))
            ch.account(account_id)
        await self.write(w)

    # -- watches -------------------------------------------------------------------
    def watch(self, mailbox_id: int) -> Watch:
        return self.hub.watch(mailbox_id)

    def watch_account(self, account_id: int) -> Watch:
        return self.hub.watch_account(account_id)

    async def _data_version(self) -> int:
        # The hub's poller asks this a few times a second: it moves only when the LISTEN
        # connection was re-established (changes themselves arrive as notifications).
        if self._listener is None:
            raise RuntimeError("store closed")
        return await self._listener.data_version()

    async def _modseqs(self, ids: list[int]) -> dict[int, int]:
        async def r(c: asyncpg.Connection) -> dict[int, int]:
            return {row[0]: row[1] for row in await c.fetch(
                "SELECT id, highestmodseq FROM mailboxes WHERE id = ANY($1::bigint[])", ids)}
        got = await self.read(r)
        # The hub's re-check may see a change before its notification arrives (or one whose
        # notification was lost): the watchers it wakes must then not be served the cache.
        stale = [mid for mid, idx in self._indexes.items()
                 if mid in self._current and got.get(mid, -1) != idx.mailbox.highestmodseq and mid in ids]
        if stale:
            self._forget(stale)
        return got

    async def _account_marks(self, ids: list[int]) -> dict[int, tuple[int, tuple[int, ...]]]:
        """The account watch's fingerprints (storage/watch.py), as the SQLite store makes them."""
        async def r(c: asyncpg.Connection) -> dict[int, tuple[int, tuple[int, ...]]]:
            boxes = await c.fetch(
                "SELECT account_id, string_agg(id || ' ' || uidvalidity || ' ' || highestmodseq || ' ' || name, "
                "chr(1) ORDER BY id), array_agg(id ORDER BY id) FROM mailboxes WHERE account_id = ANY($1::bigint[]) "
                "GROUP BY account_id", ids)
            subs = {row[0]: row[1] for row in await c.fetch(
                "SELECT account_id, string_agg(name, chr(1) ORDER BY name) FROM subscriptions "
                "WHERE account_id = ANY($1::bigint[]) GROUP BY account_id", ids)}
            meta = {row[0]: row[1] for row in await c.fetch(
                "SELECT id, metadata_change FROM accounts WHERE id = ANY($1::bigint[])", ids)}
            return {aid: (hash((text, subs.get(aid), meta.get(aid))), tuple(mids)) for aid, text, mids in boxes}
        got = await self.read_tx(r)
        # A fingerprint that moved (a rename, a deletion seen before its notification): the hub
        # wakes the account's watchers, whose reads must then ask the database.
        moved = {aid for aid, mark in got.items() if self._marks.get(aid, mark) != mark}
        self._marks.update(got)
        if moved:
            self._forget((), moved)
        return got

    # -- maintenance ---------------------------------------------------------------
    async def free_space(self) -> int | None:
        return None  # the database server's disk is not visible from here

    async def backup(self, dest: Path) -> Any:
        raise StoreError("the PostgreSQL store is backed up with PostgreSQL's own tools: pg_dump for a "
                         "logical copy, pg_basebackup (with WAL archiving) for point-in-time recovery")

    async def purge(self, min_age: float = 0.0, sparse: float = 0.5) -> tuple[int, int]:
        """Delete the blobs no message refers to any more; (blobs removed, bytes freed).

        ``min_age`` and ``sparse`` tune the SQLite store's segment compaction; here there
        are no segments: an unreferenced blob goes at once, whatever its age."""
        async def w(c: asyncpg.Connection, ch: Changes) -> tuple[int, int]:
            return await blobs.purge(c)
        return await self.write(w)

    # -- locks ---------------------------------------------------------------------
    @asynccontextmanager
    async def lock_maildrop(self, account_id: int) -> AsyncIterator[None]:
        """POP3's maildrop lock as a session-level advisory lock on a connection of its own:
        released when the session ends, and by the server when this node dies (the backend
        goes with its connection)."""
        with unavailable_as_store_error():
            conn = await connect(self.pg)
        try:
            with unavailable_as_store_error():
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *_maildrop_key(account_id))
            if not got:
                raise MaildropLocked(str(account_id))
            yield
        finally:
            # Closing the connection releases the lock (also if the unlock never ran).
            if not conn.is_closed():
                try:
                    await conn.close(timeout=2)
                except (OSError, asyncpg.InterfaceError, TimeoutError):
                    conn.terminate()
