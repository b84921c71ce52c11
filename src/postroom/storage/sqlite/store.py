"""The embedded default store: SQLite (WAL) metadata, message bytes in segment files.

Layout under the data directory::

    store.db          metadata (accounts, mailboxes, messages, flags, MODSEQs …)
    segments/*.seg    message bytes (see segments.py)
    locks/            POP3 maildrop locks (flock: released by the kernel if a process dies)

Every write goes through :class:`Engine` (group commit); every read runs on a reader
thread. Functions named ``_w_*`` run on the writer thread inside a transaction,
``_r_*`` on a reader thread inside a read snapshot.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

from ...errors import (
    AccountExists,
    AccountNotFound,
    DomainNotFound,
    MailboxExists,
    MailboxNotFound,
    MaildropLocked,
    MessageDamaged,
)
from ...mime import ParsedMessage, parse
from ...mime.model import FORMAT_VERSION
from ..api import (  # sieve scripts
    METADATA_LOG_KEEP,  # metadata (RFC 5464)
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
from ..common import BARE_LF
from ..common import dump_structure as _dump_structure
from ..common import flags_str as _flags_str
from ..common import idate as _idate
from ..common import load_structure as _load_structure
from ..common import norm_mailbox as _norm_mailbox
from ..index import ROW_COLS, MailboxView, MessageIndex, RowCache
from ..models import (
    DEFAULT_MAILBOXES,
    HIERARCHY_SEPARATOR,
    Account,
    Alias,
    CopyResult,
    Delivered,
    DeliveryTarget,
    FlagOp,
    Mailbox,
    MailboxChanges,
    MailboxStatus,
    MessageInfo,
    NewMessage,
    Quota,
    StoreFlagsResult,
)
from ..watch import Watch, WatchHub
from .backup import BackupResult, backup
from .changes import COMMITS, MAILBOXES, MAX_AGE, SIEVE, Changes
from .credentials import ACCOUNT_COLS, CredentialsMixin
from .credentials import account as account_from_row
from .engine import Engine, WriteRequest
from .schema import migrate
from .segments import SEALED_AFTER, SegmentReader

_MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use"
_MSG_COLS = "mailbox_id, " + ROW_COLS
_MSG_FROM = "messages JOIN blobs ON blobs.id = messages.blob_id"
# Columns named: migration 3 added ``savedate`` (RFC 8514), set to now by every path that
# puts a message into a mailbox (delivery, APPEND, COPY, MOVE) on the writer thread.
_MSG_INSERT = ("INSERT INTO messages(mailbox_id, uid, modseq, flags, internaldate, tzoffset, size, blob_id, "
               "savedate) VALUES (?,?,?,?,?,?,?,?,?)")


def _w_drop_unused_blobs(c: sqlite3.Connection) -> None:
    """Delete the blobs no message refers to any more, except the one with the highest id.

    A blob id is the message's RFC 8474 EMAILID (``MessageInfo.email_id``), which must never
    name other bytes later. SQLite gives a new row max(id) + 1 (and the bulk delivery path
    does the same), so deleting the highest row would hand its id out again: that row stays
    as a tombstone with no bytes (segment '', which purge never lists) until a newer blob
    lets a later call delete it. The ids come from data the store keeps; no schema change.
    """
    c.execute("UPDATE blobs SET segment = '', offset = 0, length = 0, structure = NULL "
              "WHERE refcount <= 0 AND id = (SELECT max(id) FROM blobs)")
    c.execute("DELETE FROM blobs WHERE refcount <= 0 AND id < (SELECT max(id) FROM blobs)")


def _log_floor(c: sqlite3.Connection, mailbox_id: int) -> int:
    """The MODSEQ up to which the mailbox's expunge log was pruned (0: complete)."""
    row = c.execute("SELECT modseq FROM expunged WHERE mailbox_id = ? AND uid = 0", (mailbox_id,)).fetchone()
    return int(row[0]) if row else 0
LARGE_MESSAGE = 1024 * 1024
_log = logging.getLogger("postroom.store")
_STRUCTURE_CACHE = 10000  # parsed MIME structures kept in memory (LRU by blob)
_INDEXED_MAILBOXES = 256  # message indexes kept in memory (LRU by mailbox)
_BARE_LF = BARE_LF  # parse such messages off the event loop


# What local delivery asks per message, kept in memory under a change number (changes.py):
_KEPT_ACCOUNTS = 4096  # accounts (their address and active script, their mailbox names)
_KEPT_TRACKED = 16384  # vacation replies already sent (sender and handle)
_KEPT_IDS = 16384  # mailbox ids by name, for the writer's bulk delivery


_zone: list[tuple[int, int]] = [(-1, 0)]  # (a second, the local zone's offset in minutes then)


def _now_idate() -> tuple[int, int]:
    """``idate(None)`` for a delivery: the zone's offset looked up once a second, not per
    message (``time.localtime`` was 2-3 % of the delivery path's CPU)."""
    now = int(time.time())
    last = _zone[0]
    if last[0] != now:
        last = _zone[0] = (now, time.localtime(now).tm_gmtoff // 60)
    return last


def _crlf_line_ends(raw: bytes) -> tuple[bytes, int]:
    """The message with CRLF line ends, and its count of LFs (what the parse needs: a bare
    LF made CRLF is still one LF). Stored mail has CRLF line ends (what SMTP carries and
    IMAP must send), so sizes, sections and POP3 octet counts all agree with the bytes served."""
    newlines = raw.count(b"\n")
    if newlines != raw.count(b"\r\n"):
        raw = _BARE_LF.sub(b"\r\n", raw)
    return raw, newlines


def _keep(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > limit:
        cache.popitem(last=False)


def _damaged(msg: MessageInfo, seg: str, off: str | int, exc: OSError) -> MessageDamaged:
    reason = exc.strerror or str(exc)
    return MessageDamaged(f"uid {msg.uid} of mailbox {msg.mailbox_id} cannot be read "
                          f"(segment {seg}, offset {off}): {reason}")


def _mailbox(row: tuple[Any, ...]) -> Mailbox:
    return Mailbox(*row)


FREE_SPACE_TTL = 1.0  # seconds a free_space() answer is reused
QUOTA_TTL = 10.0  # seconds an account seen without quota limits is taken to have none


class SqliteStore(CredentialsMixin):
    def __init__(self, data_dir: Path | str, readers: int = 4) -> None:
        self.dir = Path(data_dir)
        self.engine = Engine(self.dir / "store.db", self.dir / "segments", readers=readers)
        self.segments = SegmentReader(self.dir / "segments")
        self._rows = RowCache()
        # Per-mailbox message indexes shared by all sessions of this process (see index.py).
        self._indexes: OrderedDict[int, MessageIndex] = OrderedDict()
        #: mailbox id -> (the COMMITS number read before its index in _indexes was read, when)
        self._index_marks: dict[int, tuple[int, float]] = {}
        # Indexes being built in the background after a SELECT answered from a MailboxView.
        self._building: dict[int, asyncio.Task[None]] = {}
        self._views: dict[int, MailboxView] = {}  # the last MailboxView of each, while building
        self._structures: OrderedDict[int, Any] = OrderedDict()
        self._poll_conn: sqlite3.Connection | None = None
        self._touched: set[int] = set()  # mailboxes changed by the batch being committed
        self._touched_accounts: set[int] = set()  # accounts whose mailbox list or subscriptions changed
        self.hub = WatchHub(self._data_version, self._modseqs, self._account_marks)
        self.engine.on_commit.append(self._committed)
        self._segments_dir = self.dir / "segments"
        self._free: int | None = None
        self._free_at = 0.0
        self._unlimited: dict[int, float] = {}  # account id → when it was seen with no quota
        # Answers local delivery asks for every message, kept under the change number (and
        # the monotonic time) they were read at; see changes.py. Oldest entries go first.
        self._changes: Changes | None = None
        self._changed: set[int] = set()  # kinds changed by the batch being committed
        self._kept_delivery: OrderedDict[int, tuple[int, float, SieveDelivery]] = OrderedDict()
        self._kept_names: OrderedDict[int, tuple[int, float, frozenset[str]]] = OrderedDict()
        self._kept_tracked: OrderedDict[tuple[int, str], tuple[int, float, float, float]] = OrderedDict()
        # (account id, mailbox name) → (change number, time, mailbox id): the writer thread's.
        self._kept_ids: OrderedDict[tuple[int, str], tuple[int, float, int]] = OrderedDict()

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        for sub in ("", "segments", "locks"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._changes = Changes(self.dir / "store.changes")
        await self.engine.start(migrate)

    async def close(self) -> None:
        await self.hub.close()
        for task in list(self._building.values()):
            task.cancel()
        if self._building:
            await asyncio.wait(list(self._building.values()))
        await self.engine.stop()
        self.segments.close()
        if self._poll_conn is not None:
            self._poll_conn.close()
        if self._changes is not None:
            self._changes.close()
            self._changes = None

    async def __aenter__(self) -> "SqliteStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- domains -------------------------------------------------------------------
    async def add_domain(self, domain: str) -> None:
        await self.engine.write(lambda c, d: c.execute("INSERT OR IGNORE INTO domains VALUES (?)", (d,)),
                                domain.lower().rstrip("."))

    async def delete_domain(self, domain: str) -> None:
        def w(c: sqlite3.Connection, d: str) -> None:
            if c.execute("DELETE FROM domains WHERE name = ?", (d,)).rowcount == 0:
                raise DomainNotFound(d)
        await self.engine.write(w, domain.lower().rstrip("."))

    async def list_domains(self) -> list[str]:
        return await self.engine.read(lambda c: [r[0] for r in c.execute("SELECT name FROM domains ORDER BY name")])

    async def has_domain(self, domain: str) -> bool:
        return await self.engine.read(lambda c, d: c.execute(
            "SELECT 1 FROM domains WHERE name = ?", (d,)).fetchone() is not None, domain.lower().rstrip("."))

    # -- accounts ------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]

        def w(c: sqlite3.Connection) -> Account:
            if c.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is None:
                raise DomainNotFound(domain)
            try:
                cur = c.execute("INSERT INTO accounts(address, password_hash, created) VALUES (?,?,?)",
                                (address, password_hash, time.time()))
            except sqlite3.IntegrityError:
                raise AccountExists(address) from None
            aid = cur.lastrowid
            assert aid is not None
            for name, use in DEFAULT_MAILBOXES:
                self._w_create_mailbox(c, aid, name, use)
                c.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)", (aid, name))
            return Account(aid, address, password_hash)

        return await self.engine.write(w)

    async def get_account(self, address: str) -> Account | None:
        # read_small: one probe of the unique index, asked for every RCPT (smtp/recipients.py)
        row = await self.engine.read_small(lambda c, a: c.execute(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?", (a,)).fetchone(),
            address.strip().lower())
        return account_from_row(row) if row else None

    async def get_account_by_id(self, account_id: int) -> Account | None:
        row = await self.engine.read_small(lambda c: c.execute(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?", (account_id,)).fetchone())
        return account_from_row(row) if row else None

    async def list_accounts(self) -> list[Account]:
        rows = await self.engine.read(lambda c: c.execute(
            f"SELECT {ACCOUNT_COLS} FROM accounts ORDER BY address").fetchall())
        return [account_from_row(r) for r in rows]

    async def delete_account(self, address: str) -> None:
        def w(c: sqlite3.Connection, a: str) -> None:
            row = c.execute("SELECT id FROM accounts WHERE address = ?", (a,)).fetchone()
            if row is None:
                raise AccountNotFound(a)
            for (mid,) in c.execute("SELECT id FROM mailboxes WHERE account_id = ?", (row[0],)).fetchall():
                self._w_drop_mailbox_messages(c, mid)
            c.execute("DELETE FROM accounts WHERE id = ?", (row[0],))
            # Its scripts and mailboxes went with it, and SQLite may give its id out again.
            self._changed.update((SIEVE, MAILBOXES))
        await self.engine.write(w, address.strip().lower())

    async def set_password_hash(self, address: str, password_hash: str) -> None:
        await self._update_account(address, "password_hash", password_hash)

    async def set_apop_secret(self, address: str, secret: str | None) -> None:
        await self._update_account(address, "apop_secret", secret)

    async def get_quota(self, account_id: int, with_usage: bool = False) -> Quota | None:
        # Asked for every local recipient of every message: an account seen without limits
        # is answered from memory for QUOTA_TTL seconds (a limit set by `postroom user quota`
        # in another process applies within that time; one set here, at once).
        now = time.monotonic()
        seen = self._unlimited.get(account_id)
        if not with_usage and seen is not None and now - seen < QUOTA_TTL:
            return Quota(None, None)

        def r(c: sqlite3.Connection) -> Quota | None:
            row = c.execute("SELECT quota_storage, quota_messages FROM accounts WHERE id = ?",
                            (account_id,)).fetchone()
            if row is None:
                return None
            if row[0] is None and row[1] is None:
                if len(self._unlimited) > 100_000:
                    self._unlimited.clear()
                self._unlimited[account_id] = now
                if not with_usage:
                    return Quota(None, None)
            # Summed when asked rather than kept as counters that every write path would
            # have to maintain: one range scan of the messages primary key per mailbox
            # (6 ms per 100,000 messages, warm cache, test machine), only for accounts with a limit.
            count, size = c.execute(
                "SELECT count(*), coalesce(sum(m.size), 0) FROM mailboxes b "
                "JOIN messages m ON m.mailbox_id = b.id WHERE b.account_id = ?", (account_id,)).fetchone()
            return Quota(row[0], row[1], size, count)
        return await self.engine.read(r)

    async def set_quota(self, address: str, storage: int | None, messages: int | None) -> None:
        self._unlimited.clear()

        def w(c: sqlite3.Connection, a: str) -> None:
            if c.execute("UPDATE accounts SET quota_storage = ?, quota_messages = ? WHERE address = ?",
                         (storage, messages, a)).rowcount == 0:
                raise AccountNotFound(a)
        await self.engine.write(w, address.strip().lower())

    async def _update_account(self, address: str, column: str, value: str | None) -> None:
        def w(c: sqlite3.Connection, a: str) -> None:
            if c.execute(f"UPDATE accounts SET {column} = ? WHERE address = ?", (value, a)).rowcount == 0:
                raise AccountNotFound(a)
        await self.engine.write(w, address.strip().lower())

    # -- aliases -------------------------------------------------------------------
    async def set_alias(self, source: str, targets: Sequence[str]) -> None:
        await self.engine.write(lambda c: c.execute(
            "INSERT OR REPLACE INTO aliases VALUES (?, ?)", (source.strip().lower(), json.dumps(list(targets)))))

    async def get_alias(self, source: str) -> Alias | None:
        row = await self.engine.read_small(lambda c, s: c.execute(  # one probe, for every RCPT
            "SELECT source, targets FROM aliases WHERE source = ?", (s,)).fetchone(), source.strip().lower())
        return Alias(row[0], tuple(json.loads(row[1]))) if row else None

    async def list_aliases(self) -> list[Alias]:
        rows = await self.engine.read(lambda c: c.execute(
            "SELECT source, targets FROM aliases ORDER BY source").fetchall())
        return [Alias(s, tuple(json.loads(t))) for s, t in rows]

    async def delete_alias(self, source: str) -> None:
        def w(c: sqlite3.Connection, s: str) -> None:
            if c.execute("DELETE FROM aliases WHERE source = ?", (s,)).rowcount == 0:
                raise AccountNotFound(f"no alias {s}")
        await self.engine.write(w, source.strip().lower())

    # -- mailboxes -----------------------------------------------------------------
    @staticmethod
    def _w_next_uidvalidity(c: sqlite3.Connection) -> int:
        # Time-based like Dovecot, but strictly increasing so that a mailbox deleted and
        # re-created under the same name never gets the UIDVALIDITY it had (RFC 3501 §2.3.1.1).
        last = c.execute("SELECT value FROM meta WHERE key = 'last_uidvalidity'").fetchone()[0]
        value = max(int(time.time()), last + 1)
        c.execute("UPDATE meta SET value = ? WHERE key = 'last_uidvalidity'", (value,))
        return value

    def _w_create_mailbox(self, c: sqlite3.Connection, account_id: int, name: str,
                          special_use: str | None) -> Mailbox:
        name = _norm_mailbox(name)
        uv = self._w_next_uidvalidity(c)
        try:
            cur = c.execute("INSERT INTO mailboxes(account_id, name, uidvalidity, special_use) VALUES (?,?,?,?)",
                            (account_id, name, uv, special_use))
        except sqlite3.IntegrityError:
            raise MailboxExists(name) from None
        assert cur.lastrowid is not None
        self._touched_accounts.add(account_id)
        return Mailbox(cur.lastrowid, account_id, name, uv, 1, 1, special_use)

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        rows = await self.engine.read(lambda c: c.execute(
            f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = ? ORDER BY name", (account_id,)).fetchall())
        return [_mailbox(r) for r in rows]

    @staticmethod
    def _r_mailbox(c: sqlite3.Connection, account_id: int, name: str) -> Mailbox | None:
        row = c.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = ? AND name = ?",
                        (account_id, name)).fetchone()
        return _mailbox(row) if row else None

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        return await self.engine.read_small(self._r_mailbox, account_id, _norm_mailbox(name))

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        row = await self.engine.read(lambda c: c.execute(
            f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone())
        return _mailbox(row) if row else None

    async def create_mailbox(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        return await self.engine.write(self._w_create_mailbox, account_id, name, special_use)

    def _w_drop_mailbox_messages(self, c: sqlite3.Connection, mailbox_id: int) -> None:
        c.execute("""UPDATE blobs SET refcount = refcount - (
                         SELECT count(*) FROM messages m WHERE m.mailbox_id = ? AND m.blob_id = blobs.id)
                     WHERE id IN (SELECT blob_id FROM messages WHERE mailbox_id = ?)""", (mailbox_id, mailbox_id))
        c.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
        c.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
        _w_drop_unused_blobs(c)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        def w(c: sqlite3.Connection, n: str) -> int:
            mb = self._r_mailbox(c, account_id, n)
            if mb is None:
                raise MailboxNotFound(n)
            self._w_drop_mailbox_messages(c, mb.id)
            c.execute("DELETE FROM mailboxes WHERE id = ?", (mb.id,))
            self._touched.add(mb.id)
            self._touched_accounts.add(account_id)
            return mb.id
        await self.engine.write(w, _norm_mailbox(name))

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        old, new = _norm_mailbox(old), _norm_mailbox(new)

        def w(c: sqlite3.Connection) -> None:
            if self._r_mailbox(c, account_id, old) is None:
                raise MailboxNotFound(old)
            if self._r_mailbox(c, account_id, new) is not None:
                raise MailboxExists(new)
            prefix = old + HIERARCHY_SEPARATOR
            rows = c.execute("SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR substr(name, 1, ?) = ?)",
                             (account_id, old, len(prefix), prefix)).fetchall()
            for mid, name in rows:
                target = new + name[len(old):]
                if name != old and self._r_mailbox(c, account_id, target) is not None:
                    raise MailboxExists(target)
                c.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (target, mid))
            self._touched_accounts.add(account_id)
        await self.engine.write(w)

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        def r(c: sqlite3.Connection) -> MailboxStatus:
            row = c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = ?",
                            (mailbox_id,)).fetchone()
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            mb = _mailbox(row[:-1])
            count, size, recent = c.execute(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(uid >= ?), 0) FROM messages WHERE mailbox_id = ?",
                (row[-1], mailbox_id)).fetchone()
            unseen_row = c.execute(
                "SELECT count(*), min(uid) FROM messages WHERE mailbox_id = ? AND ' ' || flags || ' ' NOT LIKE '% \\Seen %'",
                (mailbox_id,)).fetchone()
            return MailboxStatus(mb, count, unseen_row[0], recent, size, unseen_row[1])
        return await self.engine.read(r)

    async def list_subscriptions(self, account_id: int) -> list[str]:
        return await self.engine.read(lambda c: [r[0] for r in c.execute(
            "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name", (account_id,))])

    async def subscribe(self, account_id: int, name: str) -> None:
        def w(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)", (account_id, _norm_mailbox(name)))
            self._touched_accounts.add(account_id)
        await self.engine.write(w)

    async def unsubscribe(self, account_id: int, name: str) -> None:
        def w(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, _norm_mailbox(name)))
            self._touched_accounts.add(account_id)
        await self.engine.write(w)

    # -- delivery ------------------------------------------------------------------
    async def _structure_json(self, raw: bytes, newlines: int | None = None) -> str:
        if len(raw) > LARGE_MESSAGE:
            parsed = await asyncio.to_thread(parse, raw, newlines)
        else:
            parsed = parse(raw, newlines)
        return _dump_structure(parsed.to_json())

    def _w_bump(self, c: sqlite3.Connection, mailbox_id: int) -> int:
        """Take the mailbox's next MODSEQ (RFC 7162: strictly increasing per mailbox)."""
        self._touched.add(mailbox_id)
        return c.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
                         (mailbox_id,)).fetchone()[0]

    def _w_insert(self, c: sqlite3.Connection, mb_id: int, blob_id: int, flags: frozenset[str],
                  idate: int, tzoff: int, size: int) -> tuple[int, int, int]:
        self._touched.add(mb_id)
        uid, uv, modseq = c.execute(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = ? "
            "RETURNING uidnext - 1, uidvalidity, highestmodseq", (mb_id,)).fetchone()
        c.execute(_MSG_INSERT, (mb_id, uid, modseq, _flags_str(flags), idate, tzoff, size, blob_id, int(time.time())))
        return uid, uv, modseq

    def _w_target_mailbox(self, c: sqlite3.Connection, t: DeliveryTarget, fallback_inbox: bool) -> int:
        mb = self._r_mailbox(c, t.account_id, _norm_mailbox(t.mailbox))
        if mb is None:
            if not fallback_inbox:
                raise MailboxNotFound(t.mailbox)
            mb = self._r_mailbox(c, t.account_id, "INBOX")
            if mb is None:
                raise AccountNotFound(str(t.account_id))
        return mb.id

    def _w_kept_mailbox(self, c: sqlite3.Connection, t: DeliveryTarget, fallback_inbox: bool, change: int,
                        used: dict[int, tuple[int, str]]) -> int:
        """``_w_target_mailbox`` with the ids of mailboxes found kept (writer thread only):
        a delivery into an existing mailbox then needs no lookup. An id taken from what was
        kept goes into ``used``: the batch's UPDATE checks that it is still that account's
        mailbox of that name (not deleted, renamed, or its id given to another mailbox), and
        when it is not, ``_w_store_bulk`` drops every kept id and the requests run again."""
        key = (t.account_id, _norm_mailbox(t.mailbox))
        now = time.monotonic()
        kept = self._kept_ids.get(key)
        if kept is not None and kept[0] == change and now - kept[1] < MAX_AGE:
            used[kept[2]] = key
            return kept[2]
        mb = self._r_mailbox(c, key[0], key[1])
        if mb is None:  # missing: INBOX instead (or the error), and nothing kept
            return self._w_target_mailbox(c, t, fallback_inbox)
        _keep(self._kept_ids, key, (change, now, mb.id), _KEPT_IDS)
        return mb.id

    async def deliver(self, raw: bytes, targets: Sequence[DeliveryTarget],
                      internaldate: datetime | None = None, *, crlf: bool = False,
                      newlines: int | None = None) -> list[Delivered]:
        # The hot path of every delivery: this coroutine awaits the batch's future itself, and the
        # parse runs inline (no coroutine of its own) unless the message is large.
        if not targets:
            return []
        if not crlf:
            raw, newlines = _crlf_line_ends(raw)
        if len(raw) > LARGE_MESSAGE:
            structure = await self._structure_json(raw, newlines)
        else:
            structure = _dump_structure(parse(raw, newlines).to_json())
        return await self._submit_store(raw, list(targets), structure, internaldate, True)

    async def append(self, account_id: int, mailbox: str, raw: bytes, flags: frozenset[str] = frozenset(),
                     internaldate: datetime | None = None) -> Delivered:
        out = await self._store_message(raw, [DeliveryTarget(account_id, mailbox, flags)], internaldate,
                                        fallback_inbox=False)
        return out[0]

    async def append_many(self, account_id: int, mailbox: str, messages: Sequence[NewMessage]) -> list[Delivered]:
        # One write request runs in one SAVEPOINT (engine.py): all the rows or none. Bytes
        # already appended to a segment for a refused request are reclaimed by purge().
        if not messages:
            return []
        raws = []
        metas = []
        for m in messages:
            raw, newlines = _crlf_line_ends(m.raw)
            raws.append(raw)
            metas.append((m.flags, await self._structure_json(raw, newlines), *_idate(m.internaldate)))
        return await self.engine.write(self._w_append_many, account_id, mailbox, metas, blobs=tuple(raws))

    def _w_append_many(self, c: sqlite3.Connection, account_id: int, mailbox: str,
                       metas: list[tuple[frozenset[str], str, int, int]],
                       refs: list[tuple[str, int, int]]) -> list[Delivered]:
        mb_id = self._w_target_mailbox(c, DeliveryTarget(account_id, mailbox), False)
        out = []
        for (flags, structure, idate, tzoff), (seg, off, length) in zip(metas, refs):
            cur = c.execute("INSERT INTO blobs(segment, offset, length, refcount, structure) VALUES (?,?,?,?,?)",
                            (seg, off, length, 1, structure))
            assert cur.lastrowid is not None
            uid, uv, modseq = self._w_insert(c, mb_id, cur.lastrowid, flags, idate, tzoff, length)
            out.append(Delivered(account_id, mb_id, uv, uid, modseq))
        return out

    async def _store_message(self, raw: bytes, targets: list[DeliveryTarget], internaldate: datetime | None,
                             fallback_inbox: bool, crlf: bool = False,
                             newlines: int | None = None) -> list[Delivered]:
        if not targets:
            return []
        if not crlf:
            raw, newlines = _crlf_line_ends(raw)
        structure = await self._structure_json(raw, newlines)
        return await self._submit_store(raw, targets, structure, internaldate, fallback_inbox)

    def _submit_store(self, raw: bytes, targets: list[DeliveryTarget], structure: str,
                      internaldate: datetime | None, fallback_inbox: bool) -> asyncio.Future[list[Delivered]]:
        """Queue one message's write (``_w_store``, in bulk with its batch's other deliveries)."""
        idate, tzoff = _idate(internaldate) if internaldate is not None else _now_idate()
        return self.engine.submit(self._w_store, targets, structure, idate, tzoff, fallback_inbox,
                                  blobs=(raw,), bulk=self._w_store_bulk)

    def _w_store(self, c: sqlite3.Connection, targets: list[DeliveryTarget], structure: str, idate: int,
                 tzoff: int, fallback_inbox: bool, refs: list[tuple[str, int, int]]) -> list[Delivered]:
        seg, off, length = refs[0]
        # Every target gets one row or the whole request fails: the count is known now.
        cur = c.execute("INSERT INTO blobs(segment, offset, length, refcount, structure) VALUES (?,?,?,?,?)",
                        (seg, off, length, len(targets), structure))
        blob_id = cur.lastrowid
        assert blob_id is not None
        out = []
        for t in targets:
            mb_id = self._w_target_mailbox(c, t, fallback_inbox)
            uid, uv, modseq = self._w_insert(c, mb_id, blob_id, t.flags, idate, tzoff, length)
            out.append(Delivered(t.account_id, mb_id, uv, uid, modseq))
        return out

    def _w_store_bulk(self, c: sqlite3.Connection, reqs: list[WriteRequest]) -> None:
        """``_w_store`` for a whole run of deliveries: a handful of statements per batch.

        Blob ids are taken consecutively after the largest in use (what SQLite itself
        would pick one insert at a time), and each mailbox's UIDs and MODSEQs are
        reserved with one UPDATE for all its new messages, then handed out in order.
        """
        resolved: dict[tuple[int, str, bool], int] = {}
        placed: list[list[int]] = []
        wanted: dict[int, int] = {}
        # Mailbox ids by name are kept across batches under the mailbox change number
        # (changes.py), unless this batch itself changed mailboxes before (not yet bumped).
        change = self._changes.read(MAILBOXES) if self._changes is not None and not self._touched_accounts else None
        kept: dict[int, tuple[int, str]] = {}  # mailbox ids taken from what was kept → (account, name)
        for req in reqs:
            targets, fallback_inbox = req.args[0], req.args[4]
            ids = []
            for t in targets:
                key = (t.account_id, t.mailbox, fallback_inbox)
                mb_id = resolved.get(key)
                if mb_id is None:
                    mb_id = resolved[key] = self._w_target_mailbox(c, t, fallback_inbox) if change is None \
                        else self._w_kept_mailbox(c, t, fallback_inbox, change, kept)
                ids.append(mb_id)
                wanted[mb_id] = wanted.get(mb_id, 0) + 1
            placed.append(ids)
        # mailbox id -> [next uid, uidvalidity, next modseq]
        counters: dict[int, list[int]] = {}
        for mb_id, k in wanted.items():
            if mb_id in kept:  # still that account's mailbox of that name?
                row = c.execute(
                    "UPDATE mailboxes SET uidnext = uidnext + ?1, highestmodseq = highestmodseq + ?1 "
                    "WHERE id = ?2 AND account_id = ?3 AND name = ?4 "
                    "RETURNING uidnext - ?1, uidvalidity, highestmodseq - ?1 + 1", (k, mb_id, *kept[mb_id])).fetchone()
            else:
                row = c.execute(
                    "UPDATE mailboxes SET uidnext = uidnext + ?1, highestmodseq = highestmodseq + ?1 WHERE id = ?2 "
                    "RETURNING uidnext - ?1, uidvalidity, highestmodseq - ?1 + 1", (k, mb_id)).fetchone()
            if row is None:  # deleted or renamed since its id was kept: each request again, looked up anew
                self._kept_ids.clear()
                raise MailboxNotFound(str(mb_id))
            counters[mb_id] = list(row)
        self._touched.update(counters)
        blob_id = c.execute("SELECT coalesce(max(id), 0) FROM blobs").fetchone()[0]
        saved = int(time.time())
        blob_rows = []
        msg_rows = []
        for req, ids in zip(reqs, placed):
            targets, structure, idate, tzoff = req.args[:4]
            seg, off, length = req.blob_refs[0]
            blob_id += 1
            blob_rows.append((blob_id, seg, off, length, len(targets), structure))
            out = []
            for t, mb_id in zip(targets, ids):
                ctr = counters[mb_id]
                uid, uv, modseq = ctr
                ctr[0] += 1
                ctr[2] += 1
                msg_rows.append((mb_id, uid, modseq, _flags_str(t.flags), idate, tzoff, length, blob_id, saved))
                out.append(Delivered(t.account_id, mb_id, uv, uid, modseq))
            req.result = out
        c.executemany("INSERT INTO blobs(id, segment, offset, length, refcount, structure) VALUES (?,?,?,?,?,?)",
                      blob_rows)
        c.executemany(_MSG_INSERT, msg_rows)

    # -- messages ------------------------------------------------------------------
    async def list_messages(self, mailbox_id: int) -> list[MessageInfo]:
        make = self._rows.message
        return await self.engine.read(lambda c: [make(r) for r in c.execute(
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))])

    async def get_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageInfo]:
        uids = sorted(set(uids))
        make = self._rows.message

        def r(c: sqlite3.Connection) -> list[MessageInfo]:
            out: list[MessageInfo] = []
            for i in range(0, len(uids), 500):
                chunk = uids[i:i + 500]
                q = f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) ORDER BY uid"
                out.extend(make(row) for row in c.execute(q, (mailbox_id, *chunk)))
            return out
        return await self.engine.read(r)

    async def read_message(self, msg: MessageInfo) -> bytes:
        """The message's bytes. FileNotFoundError: expunged and purged meanwhile (gone);
        MessageDamaged: still in the index, but its bytes cannot be read back."""
        blob_id, seg, off, length = msg.blob.split(":")
        cached = self.segments.read_cached(seg, int(off), int(length))
        if cached is not None:
            return cached
        try:
            return await self.engine.run_io(self.segments.read, seg, int(off), int(length))
        except FileNotFoundError as exc:
            # purge() moved the bytes to another segment after this record was read?
            row = await self.engine.read(lambda c: c.execute(
                "SELECT segment, offset, length FROM blobs WHERE id = ?", (int(blob_id),)).fetchone())
            if row is None:
                raise  # expunged, and its bytes purged meanwhile: gone, not damaged
            if tuple(row) == (seg, int(off), int(length)):
                raise _damaged(msg, seg, off, exc) from exc  # not moved: its segment is missing
        except OSError as exc:
            raise _damaged(msg, seg, off, exc) from exc
        try:
            return await self.engine.run_io(self.segments.read, *row)
        except OSError as exc:
            raise _damaged(msg, row[0], row[1], exc) from exc

    def read_message_now(self, msg: MessageInfo) -> bytes | None:
        """The message's bytes when the kernel has them cached, without waiting (no thread hop,
        no await: NNTP's ARTICLE answers from it in the same step); None when they are not at
        hand, and then :meth:`read_message` decides (a cold read, a purge's move, a loss)."""
        _, seg, off, length = msg.blob.split(":")
        return self.segments.read_cached(seg, int(off), int(length))

    async def read_messages(self, msgs: Sequence[MessageInfo]) -> list[bytes | None]:
        locs = [m.blob.split(":")[1:] for m in msgs]
        # From the page cache without the thread hop when every message is there.
        datas: list[bytes | None] = []
        for seg, off, length in locs:
            data = self.segments.read_cached(seg, int(off), int(length))
            if data is None:
                break
            datas.append(data)

        def io() -> list[bytes | None]:
            out: list[bytes | None] = []
            for seg, off, length in locs[len(datas):]:
                try:
                    out.append(self.segments.read(seg, int(off), int(length)))
                except OSError:
                    out.append(None)  # moved by purge(), gone or damaged: the slow path below decides
            return out

        if len(datas) < len(msgs):
            datas += await self.engine.run_io(io)
        for i, data in enumerate(datas):
            if data is None:
                try:
                    datas[i] = await self.read_message(msgs[i])
                except FileNotFoundError:
                    pass  # expunged and purged meanwhile
        return datas

    def read_message_sync(self, msg: MessageInfo) -> bytes:
        """For export tools that already run off the event loop."""
        _, seg, off, length = msg.blob.split(":")
        try:
            return self.segments.read(seg, int(off), int(length))
        except OSError as exc:
            raise _damaged(msg, seg, off, exc) from exc

    async def read_structure(self, msg: MessageInfo) -> Any:
        [parsed] = await self.read_structures([msg])
        if parsed is None:
            raise FileNotFoundError(msg.blob)
        return parsed

    async def read_structures(self, msgs: Sequence[MessageInfo]) -> list[Any]:
        ids = [int(m.blob.split(":", 1)[0]) for m in msgs]
        cache = self._structures
        out: list[Any] = []
        for blob_id in ids:
            got = cache.get(blob_id)
            if got is not None:
                cache.move_to_end(blob_id)
            out.append(got)
        todo = sorted({b for b, got in zip(ids, out) if got is None})
        if not todo:
            return out

        def r(c: sqlite3.Connection) -> dict[int, Any]:
            found: dict[int, Any] = {}
            for i in range(0, len(todo), 500):
                chunk = todo[i:i + 500]
                for blob_id, text in c.execute(
                        f"SELECT id, structure FROM blobs WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                    if text is not None:  # decoded here, off the event loop
                        parsed = ParsedMessage.from_json(_load_structure(text))
                        # Stored by an older parser (FORMAT_VERSION moved): parse again below.
                        if parsed.version == FORMAT_VERSION:
                            found[blob_id] = parsed
            return found

        found = await self.engine.read(r)
        for i, (blob_id, m) in enumerate(zip(ids, msgs)):
            if out[i] is not None:
                continue
            parsed = found.get(blob_id)
            if parsed is None:  # stored before structures were kept, by an older parser, or gone
                try:
                    parsed = found[blob_id] = parse(await self.read_message(m))
                except FileNotFoundError:
                    continue
            out[i] = cache[blob_id] = parsed
        while len(cache) > _STRUCTURE_CACHE:
            cache.popitem(last=False)
        return out

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], op: FlagOp, flags: frozenset[str],
                          unchangedsince: int | None = None) -> StoreFlagsResult:
        uids = sorted(set(uids))
        make = self._rows.message

        def w(c: sqlite3.Connection) -> StoreFlagsResult:
            updated, failed = [], []
            modseq = 0
            for i in range(0, len(uids), 500):
                chunk = uids[i:i + 500]
                rows = c.execute(f"SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND uid IN "
                                 f"({','.join('?' * len(chunk))})", (mailbox_id, *chunk)).fetchall()
                for uid, fstr, mseq in rows:
                    if unchangedsince is not None and mseq > unchangedsince:
                        failed.append(uid)
                        continue
                    old = frozenset(fstr.split())
                    new = flags if op is FlagOp.SET else (old | flags if op is FlagOp.ADD else old - flags)
                    if new == old:
                        continue
                    if not modseq:
                        modseq = self._w_bump(c, mailbox_id)
                    c.execute("UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                              (_flags_str(new), modseq, mailbox_id, uid))
                    updated.append(uid)
            infos: list[MessageInfo] = []
            for i in range(0, len(updated), 500):
                chunk = updated[i:i + 500]
                infos.extend(make(r) for r in c.execute(
                    f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ? AND uid IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY uid", (mailbox_id, *chunk)))
            return StoreFlagsResult(tuple(infos), tuple(failed))
        return await self.engine.write(w)

    def _w_expunge(self, c: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> list[int]:
        if not uids:
            return []
        modseq = self._w_bump(c, mailbox_id)
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            c.execute(f"""UPDATE blobs SET refcount = refcount - (
                              SELECT count(*) FROM messages m WHERE m.mailbox_id = ? AND m.blob_id = blobs.id
                              AND m.uid IN ({marks}))
                          WHERE id IN (SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid IN ({marks}))""",
                      (mailbox_id, *chunk, mailbox_id, *chunk))
            c.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})", (mailbox_id, *chunk))
            c.executemany("INSERT OR REPLACE INTO expunged VALUES (?,?,?)", [(mailbox_id, u, modseq) for u in chunk])
        _w_drop_unused_blobs(c)
        return uids

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        wanted = None if uids is None else set(uids)

        def w(c: sqlite3.Connection) -> list[int]:
            rows = c.execute("SELECT uid FROM messages WHERE mailbox_id = ? AND ' ' || flags || ' ' LIKE '% \\Deleted %' "
                             "ORDER BY uid", (mailbox_id,)).fetchall()
            found = [r[0] for r in rows if wanted is None or r[0] in wanted]
            return self._w_expunge(c, mailbox_id, found)
        return await self.engine.write(w)

    def _w_copy(self, c: sqlite3.Connection, src: int, uids: list[int], dst: int) -> CopyResult:
        if c.execute("SELECT 1 FROM mailboxes WHERE id = ?", (dst,)).fetchone() is None:
            raise MailboxNotFound(str(dst))
        pairs = []
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            rows.extend(c.execute(f"SELECT uid, flags, internaldate, tzoffset, size, blob_id FROM messages "
                                  f"WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) ORDER BY uid",
                                  (src, *chunk)).fetchall())
        uv = c.execute("SELECT uidvalidity FROM mailboxes WHERE id = ?", (dst,)).fetchone()[0]
        if rows:
            first = c.execute("UPDATE mailboxes SET uidnext = uidnext + ? WHERE id = ? RETURNING uidnext - ?",
                              (len(rows), dst, len(rows))).fetchone()[0]
            modseq = self._w_bump(c, dst)
            saved = int(time.time())  # RFC 8514 §3: a copy is saved now; INTERNALDATE is kept
            for n, (uid, flags, idate, tzoff, size, blob_id) in enumerate(rows):
                c.execute(_MSG_INSERT, (dst, first + n, modseq, flags, idate, tzoff, size, blob_id, saved))
                c.execute("UPDATE blobs SET refcount = refcount + 1 WHERE id = ?", (blob_id,))
                pairs.append((uid, first + n))
        return CopyResult(uv, tuple(pairs))

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> CopyResult:
        return await self.engine.write(self._w_copy, src_mailbox_id, sorted(set(uids)), dst_mailbox_id)

    async def move_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> CopyResult:
        def w(c: sqlite3.Connection) -> CopyResult:
            res = self._w_copy(c, src_mailbox_id, sorted(set(uids)), dst_mailbox_id)
            self._w_expunge(c, src_mailbox_id, [s for s, _ in res.pairs])
            return res
        return await self.engine.write(w)

    async def message_index(self, mailbox_id: int) -> MessageIndex:
        idx = await self._index(mailbox_id, None, "")
        assert idx is not None
        return idx

    async def mailbox_index(self, account_id: int, name: str) -> MessageIndex | None:
        return await self._index(None, account_id, _norm_mailbox(name))

    async def select_view(self, account_id: int, name: str) -> MessageIndex | MailboxView | None:
        row = await self.engine.read_small(self._r_mailbox_row, None, account_id, _norm_mailbox(name))
        if row is None:
            return None
        mailbox_id = row[0]
        cached = self._indexes.get(mailbox_id)
        if mailbox_id not in self._building and cached is not None and cached.mailbox.uidvalidity == row[3]:
            return await self._index(mailbox_id, None, "")  # in memory: brought up to date, O(changes)
        last = self._views.get(mailbox_id)
        if last is not None and last.mailbox.uidvalidity == row[3] and last.mailbox.highestmodseq == row[5]:
            # Another SELECT while the index is being built, nothing changed (a \Recent claim
            # changes no MODSEQ): the same UIDs and counts, with the mailbox row as it is now.
            return last.with_row(_mailbox(row[:-1]), row[-1])
        view: MailboxView | None = await self.engine.read(self._r_view, mailbox_id)
        if view is None:
            return None
        self._views[mailbox_id] = view
        if mailbox_id not in self._building:
            # Built for the commands that follow; this SELECT's answer is written before the
            # task runs (it starts at the event loop's next turn).
            self._building[mailbox_id] = asyncio.get_running_loop().create_task(self._build(mailbox_id))
        return view

    def _r_view(self, c: sqlite3.Connection, mailbox_id: int) -> MailboxView | None:
        """The mailbox row, its UIDs and counts in one snapshot, without reading its messages'
        rows: an aggregate over the mailbox's part of the primary key, and the UIDs only when
        they have gaps (see MailboxView). \\Seen is found with instr(): no keyword holds a
        backslash (RFC 3501 §9 ``atom``), so the substring names that flag and nothing else."""
        row = c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            return None  # deleted since the lookup
        n, lo, hi, size, unseen, first_unseen = c.execute(
            "SELECT count(*), min(uid), max(uid), total(size), total(instr(flags, '\\Seen') = 0), "
            "min(CASE WHEN instr(flags, '\\Seen') = 0 THEN uid END) FROM messages WHERE mailbox_id = ?",
            (mailbox_id,)).fetchone()
        uids: Sequence[int]
        if not n:
            uids = []
        elif hi - lo + 1 == n:
            uids = range(lo, hi + 1)
        else:
            uids = [u for (u,) in c.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid",
                                            (mailbox_id,))]
        return MailboxView(_mailbox(row[:-1]), row[-1], uids, int(size), int(unseen), first_unseen)

    async def _build(self, mailbox_id: int) -> None:
        """The background build started by ``select_view``."""
        try:
            await self._refresh(mailbox_id, None, "")
        except Exception as exc:  # deleted meanwhile, or the store closing: the next command builds it
            _log.debug("index of mailbox %d not built: %s", mailbox_id, exc)
        finally:
            self._building.pop(mailbox_id, None)
            self._views.pop(mailbox_id, None)

    @staticmethod
    def _r_mailbox_row(c: sqlite3.Connection, mailbox_id: int | None, account_id: int | None,
                       name: str) -> tuple[Any, ...] | None:
        """The mailbox row and its recent_uid: one lookup by key (``Engine.read_small``)."""
        if mailbox_id is not None:
            return c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = ?",  # type: ignore[no-any-return]
                             (mailbox_id,)).fetchone()
        return c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE account_id = ? AND name = ?",  # type: ignore[no-any-return]
                         (account_id, name)).fetchone()

    def _r_index(self, c: sqlite3.Connection, mailbox_id: int | None, account_id: int | None,
                 name: str) -> MessageIndex | None:
        if mailbox_id is not None:
            row = c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = ?",
                            (mailbox_id,)).fetchone()
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
        else:
            row = c.execute(f"SELECT {_MAILBOX_COLS}, recent_uid FROM mailboxes WHERE account_id = ? AND name = ?",
                            (account_id, name)).fetchone()
            if row is None:
                return None
            mailbox_id = row[0]
        mb, recent_uid = _mailbox(row[:-1]), row[-1]
        # Read here, on the reader thread: the cache dict is only replaced, never mutated
        # in place by this lookup, and a stale pick only costs a bigger refresh.
        cached = self._indexes.get(mailbox_id)
        # UIDVALIDITY is unique across the store: a re-created mailbox that got the
        # same id never passes for the cached one.
        if cached is not None and cached.mailbox.uidvalidity == mb.uidvalidity:
            since = cached.mailbox.highestmodseq
            if mb.highestmodseq == since:
                return cached.updated(mb, recent_uid, [], [])
            # The expunge log pruned past the cached index: it cannot say what went; rebuild.
            if _log_floor(c, mailbox_id) <= since:
                changed = c.execute(f"SELECT {ROW_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ? AND modseq > ?",
                                    (mailbox_id, since)).fetchall()
                expunged = [u for (u,) in c.execute(
                    "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? AND uid > 0", (mailbox_id, since))]
                return cached.updated(mb, recent_uid, changed, expunged)
        rows = c.execute(f"SELECT {ROW_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ?", (mailbox_id,))
        return MessageIndex.build(mb, recent_uid, rows, self._rows)

    async def _index(self, mailbox_id: int | None, account_id: int | None, name: str) -> MessageIndex | None:
        """The index of a mailbox given by id (MailboxNotFound if gone) or by name (None if
        there is none), brought up to date; after a background build started by
        ``select_view`` when there is one (one build, not one per command waiting for it)."""
        building = self._building.get(mailbox_id) if mailbox_id is not None else None
        if building is not None:
            await asyncio.wait([building])  # its failure is not ours: the refresh below decides
        return await self._refresh(mailbox_id, account_id, name)

    async def _refresh(self, mailbox_id: int | None, account_id: int | None, name: str) -> MessageIndex | None:
        """``_index`` itself. When the mailbox row says nothing changed since the cached index
        (the usual case: FETCH and STORE ask once per command), the check runs on the event
        loop (``Engine.read_small``, one lookup by key): a hop to a reader thread costs several
        times that in CPU. Otherwise one hop reads the changes (or every row).

        Before that, the commit number every writer of the store bumps (changes.py ``COMMITS``):
        while it is where it was when the cached index was read, nothing was committed since, and
        the index is returned without asking SQLite (which, after any other connection's commit,
        re-reads its pages: 10-25 µs for that one row on a busy server)."""
        changes = self._changes
        commits = changes.read(COMMITS) if changes is not None else None
        if mailbox_id is not None and commits is not None:
            mark = self._index_marks.get(mailbox_id)
            if mark is not None and mark[0] == commits and time.monotonic() - mark[1] < MAX_AGE:
                kept = self._indexes.get(mailbox_id)
                if kept is not None:
                    self._indexes.move_to_end(mailbox_id)
                    return kept
        try:
            row = await self.engine.read_small(self._r_mailbox_row, mailbox_id, account_id, name)
            cached = self._indexes.get(row[0]) if row is not None else None
            if cached is not None and cached.mailbox.uidvalidity == row[3] and \
                    cached.mailbox.highestmodseq == row[5]:
                idx: MessageIndex | None = cached.updated(_mailbox(row[:-1]), row[-1], [], [])
            elif row is None and mailbox_id is None:
                return None
            else:
                idx = await self.engine.read(self._r_index, mailbox_id, account_id, name)
        except MailboxNotFound:
            if mailbox_id is not None:
                self._indexes.pop(mailbox_id, None)
                self._index_marks.pop(mailbox_id, None)
            raise
        if idx is None:
            return None
        mailbox_id = idx.mailbox.id
        current = self._indexes.get(mailbox_id)
        # Refreshes of several sessions may finish out of order: keep the newest.
        if current is None or current.mailbox.uidvalidity != idx.mailbox.uidvalidity or \
                idx.mailbox.highestmodseq >= current.mailbox.highestmodseq:
            self._indexes[mailbox_id] = idx
            if commits is not None:
                self._index_marks[mailbox_id] = (commits, time.monotonic())
        self._indexes.move_to_end(mailbox_id)
        while len(self._indexes) > _INDEXED_MAILBOXES:
            gone, _ = self._indexes.popitem(last=False)
            self._index_marks.pop(gone, None)
        return idx

    async def claim_recent(self, mailbox_id: int) -> int:
        def w(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            c.execute("UPDATE mailboxes SET recent_uid = uidnext WHERE id = ?", (mailbox_id,))
            return row[0]
        return await self.engine.write(w)

    # -- changes -------------------------------------------------------------------
    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        # Nothing changed (a session polling after its own STORE, or woken for another mailbox
        # change already seen): the mailbox row says so, read on the event loop (read_small).
        row = await self.engine.read_small(self._r_mailbox_row, mailbox_id, None, "")
        if row is not None and row[5] == modseq:
            return MailboxChanges(_mailbox(row[:-1]), (), (), 0)  # no expunge after modseq: complete
        make = self._rows.message

        def r(c: sqlite3.Connection) -> MailboxChanges:
            row = c.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            changed = tuple(make(r) for r in c.execute(
                f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq)))
            expunged = tuple(r[0] for r in c.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? AND uid > 0 ORDER BY uid",
                (mailbox_id, modseq)))
            return MailboxChanges(_mailbox(row), changed, expunged, _log_floor(c, mailbox_id))
        return await self.engine.read(r)

    async def prune_expunge_log(self, mailbox_id: int, upto_modseq: int) -> int:
        def w(c: sqlite3.Connection) -> int:
            n = c.execute("DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ? AND uid > 0",
                          (mailbox_id, upto_modseq)).rowcount
            if upto_modseq > _log_floor(c, mailbox_id):
                # The floor is kept as a row of UID 0 (never a real UID, RFC 3501 §2.3.1.1):
                # no schema change, and it goes with the mailbox's other log rows.
                c.execute("INSERT OR REPLACE INTO expunged VALUES (?, 0, ?)", (mailbox_id, upto_modseq))
            return int(n)
        return await self.engine.write(w)

    def watch(self, mailbox_id: int) -> Watch:
        return self.hub.watch(mailbox_id)

    def watch_account(self, account_id: int) -> Watch:
        return self.hub.watch_account(account_id)

    def _committed(self, batch: list[WriteRequest]) -> Callable[[], None] | None:
        # On the writer thread after a batch (the only thread that fills _touched):
        # the watchers of the mailboxes whose MODSEQ moved are woken on the event loop.
        touched, self._touched = self._touched, set()
        accounts, self._touched_accounts = self._touched_accounts, set()
        if accounts:  # a mailbox list changed (or subscriptions, metadata: a harmless extra bump)
            self._changed.add(MAILBOXES)
        # After the COMMIT, before the writers hear of it (changes.py). Bumped even when the
        # batch failed: a needless bump costs one read per account, a missed one more.
        kinds, self._changed = self._changed, set()
        if self._changes is not None:
            self._changes.bump(COMMITS, *sorted(kinds))
        if not touched and not accounts:
            return None

        def wake() -> None:
            self.hub.changed(touched)
            self.hub.account_changed(accounts)
        return wake

    async def _data_version(self) -> int:
        def r() -> int:
            if self._poll_conn is None:
                self._poll_conn = sqlite3.connect(self.dir / "store.db", check_same_thread=False,
                                                  isolation_level=None)
            return self._poll_conn.execute("PRAGMA data_version").fetchone()[0]
        return await self.engine.run_io(r)

    async def _account_marks(self, ids: list[int]) -> dict[int, tuple[int, tuple[int, ...]]]:
        """The account watch's fingerprints (storage/watch.py): built by SQLite in one pass over
        the accounts' mailbox and subscription rows, so a poll costs no Python object per row;
        plus the accounts' metadata change numbers (one indexed row each)."""
        def r(c: sqlite3.Connection, chunk: list[int]) -> dict[int, tuple[int, tuple[int, ...]]]:
            marks = ",".join("?" * len(chunk))
            boxes = c.execute(
                "SELECT account_id, group_concat(id || ' ' || uidvalidity || ' ' || highestmodseq || ' ' || name,"
                f" char(0)), group_concat(id) FROM mailboxes WHERE account_id IN ({marks}) GROUP BY account_id",
                chunk).fetchall()
            subs = dict(c.execute(f"SELECT account_id, group_concat(name, char(0)) FROM subscriptions "
                                  f"WHERE account_id IN ({marks}) GROUP BY account_id", chunk).fetchall())
            # Metadata writes (NOTIFY's metadata events): their count, moved by every one.
            meta = dict(c.execute(f"SELECT id, metadata_change FROM accounts WHERE id IN ({marks})",
                                  chunk).fetchall())
            return {aid: (hash((text, subs.get(aid), meta.get(aid))), tuple(int(i) for i in id_list.split(",")))
                    for aid, text, id_list in boxes}
        out: dict[int, tuple[int, tuple[int, ...]]] = {}
        for i in range(0, len(ids), 500):  # within SQLite's limit on bound parameters
            out.update(await self.engine.read(r, ids[i:i + 500]))
        return out

    async def _modseqs(self, ids: list[int]) -> dict[int, int]:
        return await self.engine.read(lambda c: dict(c.execute(
            f"SELECT id, highestmodseq FROM mailboxes WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()))

    async def free_space(self) -> int | None:
        # statvfs can wait on a busy or remote disk: on the reader pool, not the loop. Asked
        # before every SMTP MAIL and IMAP APPEND, so an answer is reused for a second: a
        # disk does not fill faster than that matters here (the write itself still reports
        # a full disk, StorageFull).
        now = time.monotonic()
        if now - self._free_at >= FREE_SPACE_TTL or self._free is None:
            self._free = int((await self.engine.run_io(shutil.disk_usage, self._segments_dir)).free)
            self._free_at = now
        return self._free

    async def backup(self, dest: Path) -> BackupResult:
        """A consistent copy of the store in ``dest`` while it serves (see backup.py)."""
        dest = Path(dest).resolve()
        if dest == self.dir.resolve() or self.dir.resolve() in dest.parents:
            raise ValueError("the backup must go outside the data directory")
        return await asyncio.to_thread(backup, self.dir, dest)

    # -- space reclamation -------------------------------------------------------------
    async def purge(self, min_age: float = SEALED_AFTER, sparse: float = 0.5) -> tuple[int, int]:
        """Give back the space of expunged messages; return (segments removed, bytes freed).

        Only sealed segments are touched (untouched for ``min_age`` seconds: no writer
        appends to them any more). A segment with no live message is deleted; one whose
        live messages fill less than ``sparse`` of it has them copied to a new segment
        (durably, through the normal write path) and is then deleted. Readers that still
        hold the old location retry with the new one (see read_message).
        """
        lock = os.open(self.dir / "locks" / "purge.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0, 0  # another process is purging
            return await self._purge(min_age, sparse)
        finally:
            os.close(lock)

    async def _purge(self, min_age: float, sparse: float) -> tuple[int, int]:
        now = time.time()
        current = self.engine.current_segment()
        removed = freed = 0
        for path in sorted((self.dir / "segments").glob("*.seg")):
            name = path.stem
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if name == current or now - st.st_mtime < min_age:
                continue
            live: list[tuple[int, int, int]] = await self.engine.read(lambda c, n: c.execute(
                "SELECT id, offset, length FROM blobs WHERE segment = ? ORDER BY offset", (n,)).fetchall(), name)
            live_bytes = sum(r[2] for r in live)
            if live and live_bytes >= sparse * st.st_size:
                continue
            unreadable = False
            for i in range(0, len(live), 256):  # move live messages in bounded chunks
                chunk = live[i:i + 256]
                try:
                    datas = tuple([await self.engine.run_io(self.segments.read, name, off, ln)
                                   for _, off, ln in chunk])
                except OSError as exc:
                    # A damaged segment keeps its space (and its readable messages) rather
                    # than stopping every later purge at the same place.
                    _log.error("purge: segment %s keeps its space: a message in it cannot be read (%s); "
                               "run postroom verify", name, exc.strerror or exc)
                    unreadable = True
                    break

                def relocate(c: sqlite3.Connection, refs: list[tuple[str, int, int]],
                             chunk: list[tuple[int, int, int]] = chunk, old: str = name) -> None:
                    for (bid, off, _ln), (seg, noff, _l) in zip(chunk, refs):
                        c.execute("UPDATE blobs SET segment = ?, offset = ? WHERE id = ? AND segment = ? AND offset = ?",
                                  (seg, noff, bid, old, off))

                await self.engine.write(relocate, blobs=datas)
            if unreadable:
                continue
            still = await self.engine.read(lambda c, n: c.execute(
                "SELECT count(*) FROM blobs WHERE segment = ?", (n,)).fetchone()[0], name)
            if still:
                continue  # something new refers to it (cannot happen for a sealed segment; be safe)
            self.segments.forget(name)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            freed += st.st_size - live_bytes
        return removed, freed

    # -- locks ---------------------------------------------------------------------
    @asynccontextmanager
    async def lock_maildrop(self, account_id: int) -> AsyncIterator[None]:
        path = self.dir / "locks" / f"maildrop-{account_id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MaildropLocked(str(account_id)) from None
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # --- sieve scripts (RFC 5804 storage; the protocol rules are in postroom.managesieve) --
    async def list_sieve_scripts(self, account_id: int) -> list[SieveScriptInfo]:
        rows = await self.engine.read(lambda c: c.execute(
            "SELECT name, active, length(CAST(content AS BLOB)) FROM sieve_scripts "
            "WHERE account_id = ? ORDER BY name", (account_id,)).fetchall())
        return [SieveScriptInfo(n, bool(a), size) for n, a, size in rows]

    async def get_sieve_script(self, account_id: int, name: str) -> str | None:
        row = await self.engine.read(lambda c: c.execute(
            "SELECT content FROM sieve_scripts WHERE account_id = ? AND name = ?", (account_id, name)).fetchone())
        return row[0] if row else None

    async def put_sieve_script(self, account_id: int, name: str, content: str, *,
                               max_scripts: int | None = None, activate: bool = False) -> None:
        problem = sieve_script_name_problem(name)
        if problem:
            raise InvalidSieveScriptName(problem)

        def w(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                raise AccountNotFound(str(account_id))
            if c.execute("UPDATE sieve_scripts SET content = ?, updated = ? WHERE account_id = ? AND name = ?",
                         (content, time.time(), account_id, name)).rowcount == 0:
                # Counted inside the write transaction: two sessions cannot both take the last slot.
                if max_scripts is not None and c.execute(
                        "SELECT count(*) FROM sieve_scripts WHERE account_id = ?",
                        (account_id,)).fetchone()[0] >= max_scripts:
                    raise SieveScriptQuota(f"at most {max_scripts} scripts")
                c.execute("INSERT INTO sieve_scripts(account_id, name, content, updated) VALUES (?,?,?,?)",
                          (account_id, name, content, time.time()))
            if activate:
                self._w_activate_sieve(c, account_id, name)
            self._changed.add(SIEVE)
        await self.engine.write(w)

    async def delete_sieve_script(self, account_id: int, name: str) -> None:
        def w(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT active FROM sieve_scripts WHERE account_id = ? AND name = ?",
                            (account_id, name)).fetchone()
            if row is None:
                raise SieveScriptNotFound(name)
            if row[0]:
                raise SieveScriptActive(name)  # RFC 5804 §2.10
            c.execute("DELETE FROM sieve_scripts WHERE account_id = ? AND name = ?", (account_id, name))
            self._changed.add(SIEVE)
        await self.engine.write(w)

    async def rename_sieve_script(self, account_id: int, old: str, new: str) -> None:
        problem = sieve_script_name_problem(new)
        if problem:
            raise InvalidSieveScriptName(problem)

        def w(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?",
                         (account_id, old)).fetchone() is None:
                raise SieveScriptNotFound(old)
            if c.execute("SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?",
                         (account_id, new)).fetchone() is not None:
                raise SieveScriptExists(new)  # RFC 5804 §2.11.1
            c.execute("UPDATE sieve_scripts SET name = ?, updated = ? WHERE account_id = ? AND name = ?",
                      (new, time.time(), account_id, old))
            self._changed.add(SIEVE)
        await self.engine.write(w)

    def _w_activate_sieve(self, c: sqlite3.Connection, account_id: int, name: str | None) -> None:
        # Clear first: the partial unique index allows one active row per account at any moment.
        c.execute("UPDATE sieve_scripts SET active = 0 WHERE account_id = ? AND active = 1", (account_id,))
        if name is not None and c.execute(
                "UPDATE sieve_scripts SET active = 1 WHERE account_id = ? AND name = ?",
                (account_id, name)).rowcount == 0:
            raise SieveScriptNotFound(name)
        self._changed.add(SIEVE)

    async def set_active_sieve_script(self, account_id: int, name: str | None) -> None:
        await self.engine.write(self._w_activate_sieve, account_id, name)

    async def get_active_sieve_script(self, account_id: int) -> tuple[str, str] | None:
        # No cache: the partial index makes this one probe, and any process may change it.
        row = await self.engine.read_small(lambda c: c.execute(
            "SELECT name, content FROM sieve_scripts WHERE account_id = ? AND active = 1",
            (account_id,)).fetchone())
        return (row[0], row[1]) if row else None

    async def get_sieve_delivery(self, account_id: int) -> SieveDelivery | None:
        # Asked for every local delivery, and it almost never changes: kept per account under
        # the Sieve change number (changes.py), so a delivery reads nothing from SQLite while
        # no script of any account changed. Otherwise one statement on the loop (read_small):
        # the account row and the partial index's probe.
        change = self._changes.read(SIEVE) if self._changes is not None else None
        now = time.monotonic()
        kept = self._kept_delivery.get(account_id)
        if kept is not None and kept[0] == change and now - kept[1] < MAX_AGE:
            return kept[2]
        row = await self.engine.read_small(lambda c: c.execute(
            "SELECT a.address, s.name, s.content FROM accounts a "
            "LEFT JOIN sieve_scripts s ON s.account_id = a.id AND s.active = 1 WHERE a.id = ?",
            (account_id,)).fetchone())
        if row is None:
            self._kept_delivery.pop(account_id, None)
            return None
        out = SieveDelivery(row[0], (row[1], row[2]) if row[1] is not None else None)
        if change is not None:
            _keep(self._kept_delivery, account_id, (change, now, out), _KEPT_ACCOUNTS)
        return out

    async def mailbox_names(self, account_id: int) -> frozenset[str]:
        """The names of the account's mailboxes (what ``fileinto`` needs to know), kept under
        the mailbox change number (changes.py): a delivery filing into an existing mailbox
        reads nothing from SQLite while no account's mailboxes were created, deleted or renamed."""
        change = self._changes.read(MAILBOXES) if self._changes is not None else None
        now = time.monotonic()
        kept = self._kept_names.get(account_id)
        if kept is not None and kept[0] == change and now - kept[1] < MAX_AGE:
            return kept[2]
        names = frozenset(await self.engine.read(lambda c: [r[0] for r in c.execute(
            "SELECT name FROM mailboxes WHERE account_id = ?", (account_id,))]))
        if change is not None:
            _keep(self._kept_names, account_id, (change, now, names), _KEPT_ACCOUNTS)
        return names

    # --- sieve tracking (RFC 5230 §4.2 vacation replies, RFC 7352 duplicate) -----------
    async def sieve_tracked(self, account_id: int, kind: str, key: str, now: float) -> float | None:
        # A vacation entry, once there, stays until it expires (a later claim only records a
        # later time, which the caller's claim then finds) unless the account is deleted: so
        # the entries found are kept until then, under the Sieve change number (changes.py).
        # Not "duplicate" entries: tracking one again may shorten its expiry.
        vacation = kind == "vacation"
        change = self._changes.read(SIEVE) if vacation and self._changes is not None else None
        at = time.monotonic()
        if change is not None:
            kept = self._kept_tracked.get((account_id, key))
            if kept is not None and kept[0] == change and at - kept[1] < MAX_AGE and kept[3] > now:
                return kept[2]
        row = await self.engine.read_small(lambda c: c.execute(
            "SELECT recorded, expires FROM sieve_tracking WHERE account_id = ? AND kind = ? AND key = ? "
            "AND expires > ?", (account_id, kind, key, now)).fetchone())
        if row is None:
            return None
        if change is not None:
            _keep(self._kept_tracked, (account_id, key), (change, at, float(row[0]), float(row[1])), _KEPT_TRACKED)
        return float(row[0])

    async def sieve_track(self, account_id: int, kind: str, key: str, now: float, expires: float,
                          unless_since: float | None = None) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            # The account's entries are few; pruning them here keeps the table bounded
            # without a separate sweep (prune_sieve_tracking is for maintenance runs).
            c.execute("DELETE FROM sieve_tracking WHERE account_id = ? AND expires <= ?", (account_id, now))
            if unless_since is not None:
                row = c.execute("SELECT recorded FROM sieve_tracking WHERE account_id = ? AND kind = ? AND key = ?",
                                (account_id, kind, key)).fetchone()
                if row is not None and row[0] > unless_since:
                    return False
            c.execute("INSERT OR REPLACE INTO sieve_tracking(account_id, kind, key, recorded, expires) "
                      "VALUES (?,?,?,?,?)", (account_id, kind, key, now, expires))
            return True
        return bool(await self.engine.write(w))

    async def prune_sieve_tracking(self, now: float) -> int:
        return int(await self.engine.write(lambda c: c.execute(
            "DELETE FROM sieve_tracking WHERE expires <= ?", (now,)).rowcount))
    # --- end sieve tracking


    # --- metadata (RFC 5464) ---------------------------------------------------------------
    # Server entries have mailbox_id NULL; the unique index (and these queries) key them as
    # mailbox 0, which no mailbox row has. Names are lower-case: entry names are
    # case-insensitive (RFC 5464 §3.2) and a range scan on the index finds an entry's
    # descendants ("name/" up to "name0", "0" being the character after "/").
    _MD_WHERE = "account_id = ? AND ifnull(mailbox_id, 0) = ?"

    async def get_metadata(self, account_id: int, mailbox_id: int | None, names: Sequence[str],
                           depth: int | None = 0) -> list[tuple[str, bytes]]:
        key = mailbox_id or 0
        wanted = sorted({n.lower() for n in names})

        def r(c: sqlite3.Connection) -> list[tuple[str, bytes]]:
            found: dict[str, bytes] = {}
            for name in wanted:
                row = c.execute(f"SELECT value FROM metadata WHERE {self._MD_WHERE} AND name = ?",
                                (account_id, key, name)).fetchone()
                if row is not None:
                    found[name] = bytes(row[0])
                if depth == 0:
                    continue
                below = c.execute(f"SELECT name, value FROM metadata WHERE {self._MD_WHERE} "
                                  "AND name >= ? AND name < ?", (account_id, key, name + "/", name + "0"))
                for child, value in below:
                    if depth is None or "/" not in child[len(name) + 1:]:
                        found[child] = bytes(value)
            return sorted(found.items())
        return await self.engine.read(r)

    async def set_metadata(self, account_id: int, mailbox_id: int | None, entries: dict[str, bytes | None],
                           limits: MetadataLimits | None = None) -> int:
        lim = limits or MetadataLimits()
        key = mailbox_id or 0
        changes = [(n.lower(), None if v is None else bytes(v)) for n, v in entries.items()]
        for _, value in changes:
            if value is not None and len(value) > lim.value_size:
                raise MetadataTooLarge(lim.value_size)

        def w(c: sqlite3.Connection) -> int:
            if mailbox_id is None:
                if c.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                    raise AccountNotFound(str(account_id))
            elif c.execute("SELECT 1 FROM mailboxes WHERE id = ? AND account_id = ?",
                           (mailbox_id, account_id)).fetchone() is None:
                raise MailboxNotFound(str(mailbox_id))
            added = False
            changed: list[str] = []
            for name, value in changes:
                row = c.execute(f"SELECT value FROM metadata WHERE {self._MD_WHERE} AND name = ?",
                                (account_id, key, name)).fetchone()
                if (None if row is None else bytes(row[0])) == value:
                    continue  # as it was: not a change for NOTIFY (RFC 5465 §5.6)
                changed.append(name)
                c.execute(f"DELETE FROM metadata WHERE {self._MD_WHERE} AND name = ?", (account_id, key, name))
                if value is not None:
                    c.execute("INSERT INTO metadata(account_id, mailbox_id, name, value) VALUES (?,?,?,?)",
                              (account_id, mailbox_id, name, value))
                    added = True
            if not changed:
                return 0
            number = self._w_log_metadata(c, account_id, mailbox_id, changed)
            if not added:
                return number  # removals only: never refused, even for an account over a lowered limit
            # Counted after the change, inside the transaction: raising undoes the whole
            # request (its SAVEPOINT, engine.py), so concurrent sessions cannot both slip in.
            (n,) = c.execute(f"SELECT count(*) FROM metadata WHERE {self._MD_WHERE}", (account_id, key)).fetchone()
            total, size = c.execute("SELECT count(*), coalesce(sum(length(name) + length(value)), 0) "
                                    "FROM metadata WHERE account_id = ?", (account_id,)).fetchone()
            if n > lim.entries or total > lim.account_entries or size > lim.account_size:
                raise MetadataTooMany(f"account {account_id}: {n} entries here, {total} in all, {size} octets")
            return number
        return int(await self.engine.write(w))

    def _w_log_metadata(self, c: sqlite3.Connection, account_id: int, mailbox_id: int | None,
                        names: list[str]) -> int:
        """Number this write (the account's metadata_change, in the account watch's fingerprint),
        log the names it changed for NOTIFY, forget writes older than METADATA_LOG_KEEP."""
        c.execute("UPDATE accounts SET metadata_change = metadata_change + 1 WHERE id = ?", (account_id,))
        (number,) = c.execute("SELECT metadata_change FROM accounts WHERE id = ?", (account_id,)).fetchone()
        c.executemany("INSERT INTO metadata_log(account_id, change, mailbox_id, name) VALUES (?,?,?,?)",
                      [(account_id, number, mailbox_id, name) for name in names])
        c.execute("DELETE FROM metadata_log WHERE account_id = ? AND change <= ?",
                  (account_id, number - METADATA_LOG_KEEP))
        self._touched_accounts.add(account_id)  # wakes this process's account watches at commit
        return int(number)

    async def metadata_changes(self, account_id: int, since: int | None) -> MetadataChanges:
        def r(c: sqlite3.Connection) -> MetadataChanges:
            row = c.execute("SELECT metadata_change FROM accounts WHERE id = ?", (account_id,)).fetchone()
            last = int(row[0]) if row is not None else 0
            if since is None or since >= last:
                return MetadataChanges(last)
            if since < last - METADATA_LOG_KEEP:
                return MetadataChanges(last, complete=False)  # numbers are consecutive; older ones pruned
            rows = c.execute("SELECT change, mailbox_id, name FROM metadata_log WHERE account_id = ? AND change > ? "
                             "ORDER BY change, rowid", (account_id, since)).fetchall()
            return MetadataChanges(last, True, tuple(rows))
        return await self.engine.read(r)
    # --- end metadata
