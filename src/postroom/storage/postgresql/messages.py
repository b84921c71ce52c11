"""Messages in the PostgreSQL store: delivery, APPEND, reads, flags, expunge, copy, indexes.

UIDs and MODSEQs are taken with ``UPDATE mailboxes SET uidnext = uidnext + n,
highestmodseq = highestmodseq + … RETURNING`` inside the writing transaction: the row
lock holds the next writer to the mailbox (on any node) until this one commits, so
UIDs and MODSEQs become visible in increasing order, never out of it (RFC 3501
§2.3.1.1, RFC 7162 §3.1). Every write to a mailbox takes that row lock first, which
also gives all writers one lock order.

The in-process message index (storage/index.py, shared with the SQLite store) is served
from memory while this process's LISTEN connection is up and no notification named the
mailbox since it was last read; else it is brought up to date with the rows whose MODSEQ
moved (docs/storage.md, "Caches that trust the notifications"). Parsed structures are
cached by blob id: a blob's bytes never change, so that cache needs no invalidation.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ...errors import AccountNotFound, MailboxNotFound
from ...mime import ParsedMessage, parse
from ...mime.model import FORMAT_VERSION
from ..common import BARE_LF as _BARE_LF
from ..common import dump_structure, flags_str, load_structure, norm_mailbox
from ..common import idate as idate_of
from ..index import MessageIndex, RowCache
from ..models import (
    CopyResult,
    Delivered,
    DeliveryTarget,
    FlagOp,
    Mailbox,
    MailboxChanges,
    MessageInfo,
    NewMessage,
    StoreFlagsResult,
)
from . import blobs
from .base import PgBase
from .notify import Changes

MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use"
# The row layout of storage/index.py (ROW_COLS): the blob reference's "segment, offset,
# length" become "pg, 0, size" (the bytes are found by blob id alone; RowCache puts the
# instance's token in place of "pg").
ROW_COLS = "uid, modseq, flags, internaldate, tzoffset, size, blob_id, 'pg', 0, size, savedate"
MSG_COLS = "mailbox_id, " + ROW_COLS
LARGE_MESSAGE = 1024 * 1024  # parsed off the event loop above this
_STRUCTURE_CACHE = 10000
_INDEXED_MAILBOXES = 256
_SNAPSHOT = object()  # _r_index's "ask again inside a snapshot"
# Seconds a cached index confirmed current is trusted without a notification: the bound on
# staleness should a notification be lost (as the watchers' RECHECK in notify.py).
CURRENT_FOR = 2.0
_MOVES_KEPT = 100000  # mailboxes whose invalidations are counted before all are forgotten at once

_INSERT_MESSAGES = """
INSERT INTO messages (mailbox_id, uid, modseq, flags, internaldate, tzoffset, size, blob_id, savedate)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::int[],
                     $7::bigint[], $8::bigint[], $9::bigint[])
"""


# A delivery of one message to up to _ONE_STATEMENT_TARGETS targets (SMTP's common case)
# and APPEND, as one statement: PostgreSQL runs it as its own transaction and answers after
# COMMIT, one round trip in all. In order: resolve each target's mailbox (t; with
# fallback, a missing one is the account's INBOX); reserve each mailbox's UIDs and MODSEQs
# (u: the row lock orders concurrent deliverers on every node; nothing is reserved if a
# target has no mailbox); store the bytes or add to the stored copy's refcount (b, c);
# number the targets within their mailbox (r); insert the message rows (ins). Data-
# modifying CTEs always run; the final SELECT counts ins to check every row went in.
_ONE_STATEMENT_TARGETS = 200  # more targets: the transaction path (bounded arrays, one lock at a time)
_DELIVER_ONE = """
WITH t AS (
    SELECT t.i, t.aid, t.flags, coalesce(m.id, CASE WHEN $4 THEN inbox.id END) AS mid
    FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS t(aid, name, flags, i)
    LEFT JOIN mailboxes m ON m.account_id = t.aid AND m.name = t.name
    LEFT JOIN mailboxes inbox ON inbox.account_id = t.aid AND inbox.name = 'INBOX'
), g AS (
    SELECT mid, count(*) AS n FROM t GROUP BY mid
), u AS (
    UPDATE mailboxes SET uidnext = uidnext + g.n, highestmodseq = highestmodseq + g.n
    FROM g WHERE mailboxes.id = g.mid AND NOT EXISTS (SELECT 1 FROM t WHERE t.mid IS NULL)
    RETURNING mailboxes.id, mailboxes.account_id, mailboxes.uidvalidity,
              mailboxes.uidnext - g.n AS first_uid, mailboxes.highestmodseq - g.n + 1 AS first_modseq
), b AS (
    INSERT INTO blobs (sha256, length, refcount, structure)
    SELECT $5, $6, cardinality($1::bigint[]), $7 WHERE (SELECT count(*) FROM u) = (SELECT count(*) FROM g)
    ON CONFLICT (sha256) DO UPDATE SET refcount = blobs.refcount + EXCLUDED.refcount
    RETURNING id, (xmax = 0) AS inserted
), c AS (
    INSERT INTO blob_chunks (blob_id, seq, data)
    SELECT b.id, s.seq - 1, s.data FROM b, unnest($8::bytea[]) WITH ORDINALITY AS s(data, seq) WHERE b.inserted
), r AS (
    SELECT t.i, t.aid, t.flags, u.id AS mid, u.uidvalidity,
           u.first_uid + row_number() OVER w - 1 AS uid, u.first_modseq + row_number() OVER w - 1 AS modseq
    FROM t JOIN u ON u.id = t.mid WINDOW w AS (PARTITION BY u.id ORDER BY t.i)
), ins AS (
    INSERT INTO messages (mailbox_id, uid, modseq, flags, internaldate, tzoffset, size, blob_id, savedate)
    SELECT r.mid, r.uid, r.modseq, r.flags, $9, $10, $6, b.id, $11 FROM r, b
    RETURNING 1
)
SELECT r.i, r.aid, r.mid, r.uidvalidity, r.uid, r.modseq, (SELECT count(*) FROM ins) AS inserted
FROM r ORDER BY r.i
"""



def mailbox(row: Any) -> Mailbox:
    return Mailbox(*row)




def _blob_id(msg: MessageInfo) -> int:
    return int(msg.blob.split(":", 1)[0])


async def _lock_mailbox(c: asyncpg.Connection, mailbox_id: int) -> asyncpg.Record | None:
    """Take the mailbox's row lock (the one lock order of every writer): (account_id, uidvalidity)."""
    return await c.fetchrow("SELECT account_id, uidvalidity FROM mailboxes WHERE id = $1 FOR UPDATE", mailbox_id)


async def _bump(c: asyncpg.Connection, ch: Changes, mailbox_id: int) -> int:
    """Take the mailbox's next MODSEQ (RFC 7162: strictly increasing per mailbox)."""
    row = await c.fetchrow("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 "
                           "RETURNING highestmodseq, account_id", mailbox_id)
    ch.mailbox(mailbox_id, row[1])
    return int(row[0])


async def _log_floor(c: asyncpg.Connection, mailbox_id: int) -> int:
    v = await c.fetchval("SELECT modseq FROM expunged WHERE mailbox_id = $1 AND uid = 0", mailbox_id)
    return int(v or 0)


class MessagesMixin(PgBase):
    """The message half of :class:`~.store.PostgresStore`."""

    def __init__(self) -> None:
        # "pg" and a token of this instance as the blob reference's segment: blob ids of two
        # databases overlap, and IMAP's header cache (imap/handlers/fetch.py) is process-wide,
        # keyed by the blob reference (it met two test databases in one process).
        self._rows = RowCache(segment="pg" + os.urandom(4).hex())
        self._indexes: OrderedDict[int, MessageIndex] = OrderedDict()
        self._structures: OrderedDict[int, ParsedMessage] = OrderedDict()
        # The cache that trusts LISTEN/NOTIFY (docs/storage.md, "Caches that trust …"): mailbox id →
        # when its cached index was last confirmed current by a read; served without a query
        # while this process listens and nothing was notified for the mailbox since.
        self._current: dict[int, float] = {}
        self._epoch = 0  # moves when every cached fact is in doubt (listener lost, reconnected)
        self._moves: dict[int, int] = {}  # mailbox id → how often it was forgotten
        self._names: dict[tuple[int, str], int] = {}  # (account id, name) → mailbox id, as last read

    # -- the cache that trusts notifications -----------------------------------------
    def _listening(self) -> bool:
        """Whether this process's LISTEN connection is up (store.py): only then do
        notifications tell it of every change made elsewhere."""
        return False

    def _token(self, mailbox_id: int | None) -> tuple[int, int] | None:
        """Taken before a read: it may confirm the cache only if nothing about the mailbox
        was notified (or doubted) between this moment and its end."""
        if mailbox_id is None or not self._listening():
            return None
        return self._epoch, self._moves.get(mailbox_id, 0)

    def _confirm(self, mailbox_id: int, token: tuple[int, int] | None) -> None:
        if token is not None and token == (self._epoch, self._moves.get(mailbox_id, 0)) and self._listening():
            self._current[mailbox_id] = time.monotonic()

    def _cached(self, mailbox_id: int) -> MessageIndex | None:
        """The cached index when it is known current; CURRENT_FOR bounds the trust in case a
        notification was lost (a node died between its commit and the notification)."""
        at = self._current.get(mailbox_id)
        if at is None or time.monotonic() - at > CURRENT_FOR or not self._listening():
            return None
        idx = self._indexes.get(mailbox_id)
        if idx is None:
            del self._current[mailbox_id]
        return idx

    def _forget(self, mailbox_ids: Iterable[int] = (), account_ids: Collection[int] = ()) -> None:
        """A change was committed here or notified from elsewhere: the next read of these
        mailboxes (and of every mailbox of these accounts: renames, deletions) asks the database."""
        mids = set(mailbox_ids)
        if account_ids:
            mids.update(mid for mid, idx in self._indexes.items() if idx.mailbox.account_id in account_ids)
            self._names = {k: v for k, v in self._names.items() if k[0] not in account_ids}
        for mid in mids:
            self._current.pop(mid, None)
            self._moves[mid] = self._moves.get(mid, 0) + 1
        if len(self._moves) > _MOVES_KEPT:
            self._forget_all()

    def _forget_all(self) -> None:
        self._current.clear()
        self._moves.clear()
        self._names.clear()
        self._epoch += 1

    # -- delivery ------------------------------------------------------------------
    async def _structure_json(self, raw: bytes, newlines: int | None = None) -> str:
        parsed = await asyncio.to_thread(parse, raw, newlines) if len(raw) > LARGE_MESSAGE else parse(raw, newlines)
        return dump_structure(parsed.to_json())

    async def deliver(self, raw: bytes, targets: Sequence[DeliveryTarget],
                      internaldate: datetime | None = None, *, crlf: bool = False,
                      newlines: int | None = None) -> list[Delivered]:
        if not targets:
            return []
        if not crlf:
            newlines = raw.count(b"\n")  # also what the parse needs (a bare LF made CRLF is still one LF)
            if newlines != raw.count(b"\r\n"):
                raw = _BARE_LF.sub(b"\r\n", raw)
        structure = await self._structure_json(raw, newlines)
        if len(targets) <= _ONE_STATEMENT_TARGETS:
            return await self._store_one(raw, structure, list(targets), idate_of(internaldate), True)
        return await self.write(self._w_store, [(raw, structure)], list(targets), idate_of(internaldate), True)

    async def _store_one(self, raw: bytes, structure: str, targets: list[DeliveryTarget],
                         idate: tuple[int, int], fallback_inbox: bool) -> list[Delivered]:
        """One message to a few targets in one statement (see _DELIVER_ONE)."""
        async def w(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return await c.fetch(_DELIVER_ONE, [t.account_id for t in targets],
                                 [norm_mailbox(t.mailbox) for t in targets], [flags_str(t.flags) for t in targets],
                                 fallback_inbox, hashlib.sha256(raw).digest(), len(raw), structure,
                                 blobs.chunks(raw), idate[0], idate[1], int(time.time()))
        rows = await self.write_statement(w)
        changes = Changes()
        for r in rows:
            changes.mailbox(r["mid"], r["aid"])
        self._committed(changes)
        if len(rows) != len(targets) or (rows and rows[0]["inserted"] != len(targets)):
            # A target without a mailbox (nothing was written), or a mailbox deleted while
            # this ran (its UIDs were reserved and stay unused, which IMAP allows).
            missing = targets[len(rows)] if len(rows) < len(targets) else targets[0]
            if fallback_inbox:
                raise AccountNotFound(str(missing.account_id))
            raise MailboxNotFound(missing.mailbox)
        return [Delivered(r["aid"], r["mid"], r["uidvalidity"], r["uid"], r["modseq"]) for r in rows]

    async def append(self, account_id: int, mailbox: str, raw: bytes, flags: frozenset[str] = frozenset(),
                     internaldate: datetime | None = None) -> Delivered:
        newlines = raw.count(b"\n")
        if newlines != raw.count(b"\r\n"):
            raw = _BARE_LF.sub(b"\r\n", raw)
        structure = await self._structure_json(raw, newlines)
        out = await self._store_one(raw, structure, [DeliveryTarget(account_id, mailbox, flags)],
                                    idate_of(internaldate), False)
        return out[0]

    async def append_many(self, account_id: int, mailbox: str, messages: Sequence[NewMessage]) -> list[Delivered]:
        """RFC 3502: every message or none (one transaction), consecutive UIDs in order."""
        if not messages:
            return []
        bodies = []
        for m in messages:
            newlines = m.raw.count(b"\n")
            raw = m.raw if newlines == m.raw.count(b"\r\n") else _BARE_LF.sub(b"\r\n", m.raw)
            bodies.append((raw, await self._structure_json(raw, newlines)))
        targets = [DeliveryTarget(account_id, mailbox, m.flags) for m in messages]
        idates = [idate_of(m.internaldate) for m in messages]
        return await self.write(self._w_store, bodies, targets, idates, False)

    async def _w_resolve(self, c: asyncpg.Connection, targets: list[DeliveryTarget],
                         fallback_inbox: bool) -> list[int]:
        """Each target's mailbox id (one query); a missing mailbox falls back to INBOX for
        delivery (mail is never dropped for a filing error), or is MailboxNotFound."""
        aids = [t.account_id for t in targets]
        names = [norm_mailbox(t.mailbox) for t in targets]
        rows = await c.fetch(
            "SELECT t.i, m.id, inbox.id FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS t(aid, name, i) "
            "LEFT JOIN mailboxes m ON m.account_id = t.aid AND m.name = t.name "
            "LEFT JOIN mailboxes inbox ON inbox.account_id = t.aid AND inbox.name = 'INBOX' ORDER BY t.i",
            aids, names)
        out = []
        for t, (_, mid, inbox) in zip(targets, rows):
            if mid is None:
                if not fallback_inbox:
                    raise MailboxNotFound(t.mailbox)
                if inbox is None:
                    raise AccountNotFound(str(t.account_id))
                mid = inbox
            out.append(int(mid))
        return out

    async def _w_store(self, c: asyncpg.Connection, ch: Changes, bodies: list[tuple[bytes, str]],
                       targets: list[DeliveryTarget], idates: tuple[int, int] | list[tuple[int, int]],
                       fallback_inbox: bool) -> list[Delivered]:
        """Store one message for several targets (``bodies`` has one entry) or several
        messages for one mailbox each (APPEND, MULTIAPPEND: one entry per target)."""
        mb_ids = await self._w_resolve(c, targets, fallback_inbox)
        if len(bodies) == 1:
            raw, structure = bodies[0]
            blob_ids = [await blobs.put(c, raw, len(targets), structure)] * len(targets)
            sizes = [len(raw)] * len(targets)
        else:
            blob_ids = [await blobs.put(c, raw, 1, structure) for raw, structure in bodies]
            sizes = [len(raw) for raw, _ in bodies]
        per_target = [idates] * len(targets) if isinstance(idates, tuple) else idates
        # Reserve each mailbox's UIDs and MODSEQs with one UPDATE, in id order (one lock
        # order for every writer), then hand them out in the order of the targets.
        counters: dict[int, list[int]] = {}
        for mid, k in sorted(Counter(mb_ids).items()):
            row = await c.fetchrow(
                "UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + $2 WHERE id = $1 "
                "RETURNING uidnext - $2, uidvalidity, highestmodseq - $2 + 1, account_id", mid, k)
            if row is None:  # deleted between the lookup and now
                raise MailboxNotFound(str(mid))
            counters[mid] = [row[0], row[1], row[2]]
            ch.mailbox(mid, row[3])
        saved = int(time.time())
        out = []
        cols: list[list[Any]] = [[] for _ in range(9)]
        for t, mid, blob_id, size, (idate, tzoff) in zip(targets, mb_ids, blob_ids, sizes, per_target):
            ctr = counters[mid]
            uid, uv, modseq = ctr
            ctr[0] += 1
            ctr[2] += 1
            for col, v in zip(cols, (mid, uid, modseq, flags_str(t.flags), idate, tzoff, size, blob_id, saved)):
                col.append(v)
            out.append(Delivered(t.account_id, mid, uv, uid, modseq))
        await c.execute(_INSERT_MESSAGES, *cols)
        return out

    # -- reads ---------------------------------------------------------------------
    async def list_messages(self, mailbox_id: int) -> list[MessageInfo]:
        async def r(c: asyncpg.Connection) -> list[MessageInfo]:
            make = self._rows.message
            return [make(tuple(row)) for row in await c.fetch(
                f"SELECT {MSG_COLS} FROM messages WHERE mailbox_id = $1 ORDER BY uid", mailbox_id)]
        return await self.read(r)

    async def get_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageInfo]:
        async def r(c: asyncpg.Connection) -> list[MessageInfo]:
            make = self._rows.message
            return [make(tuple(row)) for row in await c.fetch(
                f"SELECT {MSG_COLS} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
                mailbox_id, sorted(set(uids)))]
        return await self.read(r)

    async def read_message(self, msg: MessageInfo) -> bytes:
        """The message's bytes; FileNotFoundError when expunged and purged meanwhile (gone)."""
        [data] = await self.read_messages([msg])
        if data is None:
            raise FileNotFoundError(msg.blob)
        return data

    async def read_messages(self, msgs: Sequence[MessageInfo]) -> list[bytes | None]:
        ids = [_blob_id(m) for m in msgs]
        if not ids:
            return []
        found = await self.read(blobs.read, sorted(set(ids)))
        return [found.get(b) for b in ids]

    async def read_structure(self, msg: MessageInfo) -> ParsedMessage:
        [parsed] = await self.read_structures([msg])
        if parsed is None:
            raise FileNotFoundError(msg.blob)
        return parsed

    async def read_structures(self, msgs: Sequence[MessageInfo]) -> list[ParsedMessage | None]:
        ids = [_blob_id(m) for m in msgs]
        cache = self._structures
        out: list[ParsedMessage | None] = []
        for blob_id in ids:
            got = cache.get(blob_id)
            if got is not None:
                cache.move_to_end(blob_id)
            out.append(got)
        todo = sorted({b for b, got in zip(ids, out) if got is None})
        if not todo:
            return out

        async def r(c: asyncpg.Connection) -> list[tuple[int, str | None]]:
            return [(row[0], row[1]) for row in await c.fetch(
                "SELECT id, structure FROM blobs WHERE id = ANY($1::bigint[])", todo)]

        found: dict[int, ParsedMessage] = {}
        for blob_id, text in await self.read(r):
            if text is not None:
                parsed = ParsedMessage.from_json(load_structure(text))
                if parsed.version == FORMAT_VERSION:  # else stored by an older parser: parse again
                    found[blob_id] = parsed
        for i, (blob_id, m) in enumerate(zip(ids, msgs)):
            if out[i] is not None:
                continue
            parsed_or_none = found.get(blob_id)
            if parsed_or_none is None:
                try:
                    parsed_or_none = found[blob_id] = parse(await self.read_message(m))
                except FileNotFoundError:
                    continue
            out[i] = cache[blob_id] = parsed_or_none
        while len(cache) > _STRUCTURE_CACHE:
            cache.popitem(last=False)
        return out

    # -- flags, expunge, copy ------------------------------------------------------
    async def store_flags(self, mailbox_id: int, uids: Sequence[int], op: FlagOp, flags: frozenset[str],
                          unchangedsince: int | None = None) -> StoreFlagsResult:
        wanted = sorted(set(uids))
        make = self._rows.message

        async def w(c: asyncpg.Connection, ch: Changes) -> StoreFlagsResult:
            if await _lock_mailbox(c, mailbox_id) is None:
                return StoreFlagsResult()
            rows = await c.fetch("SELECT uid, flags, modseq FROM messages WHERE mailbox_id = $1 "
                                 "AND uid = ANY($2::bigint[]) ORDER BY uid", mailbox_id, wanted)
            failed, new_uids, new_flags = [], [], []
            for uid, fstr, mseq in rows:
                if unchangedsince is not None and mseq > unchangedsince:
                    failed.append(uid)
                    continue
                old = frozenset(fstr.split())
                new = flags if op is FlagOp.SET else (old | flags if op is FlagOp.ADD else old - flags)
                if new != old:
                    new_uids.append(uid)
                    new_flags.append(flags_str(new))
            if not new_uids:
                return StoreFlagsResult((), tuple(failed))
            modseq = await _bump(c, ch, mailbox_id)
            await c.execute("UPDATE messages SET flags = t.f, modseq = $3 FROM unnest($1::bigint[], $2::text[]) "
                            "AS t(u, f) WHERE mailbox_id = $4 AND uid = t.u", new_uids, new_flags, modseq, mailbox_id)
            infos = [make(tuple(r)) for r in await c.fetch(
                f"SELECT {MSG_COLS} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
                mailbox_id, new_uids)]
            return StoreFlagsResult(tuple(infos), tuple(failed))
        return await self.write(w)

    async def _w_expunge(self, c: asyncpg.Connection, ch: Changes, mailbox_id: int, uids: list[int]) -> list[int]:
        """Remove ``uids`` (the mailbox's row lock is held); their blobs lose a reference."""
        if not uids:
            return []
        modseq = await _bump(c, ch, mailbox_id)
        await blobs.unref_messages(c, "mailbox_id = $1 AND uid = ANY($2::bigint[])", mailbox_id, uids)
        await c.execute("DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])", mailbox_id, uids)
        await c.execute("INSERT INTO expunged SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u "
                        "ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
                        mailbox_id, uids, modseq)
        return uids

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        wanted = None if uids is None else set(uids)

        async def w(c: asyncpg.Connection, ch: Changes) -> list[int]:
            if await _lock_mailbox(c, mailbox_id) is None:
                return []
            rows = await c.fetch("SELECT uid FROM messages WHERE mailbox_id = $1 AND "
                                 "strpos(' ' || flags || ' ', ' \\Deleted ') > 0 ORDER BY uid", mailbox_id)
            found = [r[0] for r in rows if wanted is None or r[0] in wanted]
            return await self._w_expunge(c, ch, mailbox_id, found)
        return await self.write(w)

    async def _w_copy(self, c: asyncpg.Connection, ch: Changes, src: int, uids: list[int], dst: int) -> CopyResult:
        # Both row locks in id order: a COPY one way and a MOVE the other cannot deadlock.
        locked = {mid: await _lock_mailbox(c, mid) for mid in sorted({src, dst})}
        target = locked[dst]
        if target is None:
            raise MailboxNotFound(str(dst))
        rows = await c.fetch("SELECT uid, flags, internaldate, tzoffset, size, blob_id FROM messages "
                             "WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid", src, uids)
        if not rows:
            return CopyResult(target[1], ())
        n = len(rows)
        first = await c.fetchval("UPDATE mailboxes SET uidnext = uidnext + $2 WHERE id = $1 RETURNING uidnext - $2",
                                 dst, n)
        modseq = await _bump(c, ch, dst)
        saved = int(time.time())  # RFC 8514 §3: a copy is saved now; INTERNALDATE is kept
        new_uids = list(range(first, first + n))
        cols = [[dst] * n, new_uids, [modseq] * n, [r[1] for r in rows], [r[2] for r in rows],
                [r[3] for r in rows], [r[4] for r in rows], [r[5] for r in rows], [saved] * n]
        await c.execute(_INSERT_MESSAGES, *cols)
        await c.execute("UPDATE blobs SET refcount = blobs.refcount + d.n FROM "
                        "(SELECT b, count(*) AS n FROM unnest($1::bigint[]) AS b GROUP BY b) d WHERE blobs.id = d.b",
                        [r[5] for r in rows])
        return CopyResult(target[1], tuple(zip([r[0] for r in rows], new_uids)))

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> CopyResult:
        return await self.write(self._w_copy, src_mailbox_id, sorted(set(uids)), dst_mailbox_id)

    async def move_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> CopyResult:
        async def w(c: asyncpg.Connection, ch: Changes) -> CopyResult:
            res = await self._w_copy(c, ch, src_mailbox_id, sorted(set(uids)), dst_mailbox_id)
            await self._w_expunge(c, ch, src_mailbox_id, [s for s, _ in res.pairs])
            return res
        return await self.write(w)

    async def claim_recent(self, mailbox_id: int) -> int:
        async def w(c: asyncpg.Connection, ch: Changes) -> int:
            row = await c.fetchrow("UPDATE mailboxes m SET recent_uid = m.uidnext FROM "
                                   "(SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) old "
                                   "WHERE m.id = old.id RETURNING old.recent_uid", mailbox_id)
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            return int(row[0])
        try:
            return await self.write(w)
        finally:
            # recent_uid is part of the cached index; other nodes see it move within CURRENT_FOR
            # (only the RECENT count of a SELECT there can lag: claiming itself is in SQL).
            self._forget([mailbox_id])

    # -- indexes and changes -------------------------------------------------------
    async def message_index(self, mailbox_id: int) -> MessageIndex:
        idx = self._cached(mailbox_id)
        if idx is not None:
            return idx
        token = self._token(mailbox_id)
        idx = await self._index(mailbox_id, None, "")
        assert idx is not None
        self._confirm(mailbox_id, token)
        return idx

    async def mailbox_index(self, account_id: int, name: str) -> MessageIndex | None:
        key = (account_id, norm_mailbox(name))
        mid = self._names.get(key)
        if mid is not None:
            idx = self._cached(mid)
            if idx is not None and idx.mailbox.name == key[1]:
                return idx
        token = self._token(mid)
        idx = await self._index(None, account_id, key[1])
        if idx is not None:
            if len(self._names) > _MOVES_KEPT:
                self._names.clear()
            self._names[key] = idx.mailbox.id
            if idx.mailbox.id == mid:
                self._confirm(mid, token)
        return idx

    async def select_view(self, account_id: int, name: str) -> MessageIndex | None:
        # The index itself: the first SELECT after a start reads every row here (the lighter
        # MailboxView path is SQLite's; bench/imap.py measures the 200 ms target on SQLite).
        return await self.mailbox_index(account_id, name)

    async def _r_index(self, c: asyncpg.Connection, mailbox_id: int | None, account_id: int | None,
                       name: str, quick: bool = False) -> MessageIndex | None | object:
        """The index, brought up to date. ``quick``: outside a snapshot, answer only when the
        cached index is current (one statement: what most commands find); else _SNAPSHOT."""
        if mailbox_id is not None:
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = $1", mailbox_id)
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
        else:
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS}, recent_uid FROM mailboxes WHERE account_id = $1 "
                                   "AND name = $2", account_id, name)
            if row is None:
                return None
            mailbox_id = int(row[0])
        mb, recent_uid = mailbox(tuple(row)[:-1]), int(row[-1])
        cached = self._indexes.get(mailbox_id)
        # UIDVALIDITY is unique across the store: a re-created mailbox never passes for the cached one.
        if cached is not None and cached.mailbox.uidvalidity == mb.uidvalidity:
            since = cached.mailbox.highestmodseq
            if mb.highestmodseq == since:
                return cached.updated(mb, recent_uid, [], [])
            if quick:
                return _SNAPSHOT
            if await _log_floor(c, mailbox_id) <= since:
                changed = [tuple(r) for r in await c.fetch(
                    f"SELECT {ROW_COLS} FROM messages WHERE mailbox_id = $1 AND modseq > $2", mailbox_id, since)]
                expunged = [r[0] for r in await c.fetch(
                    "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 AND uid > 0", mailbox_id, since)]
                return cached.updated(mb, recent_uid, changed, expunged)
        if quick:
            return _SNAPSHOT
        rows = await c.fetch(f"SELECT {ROW_COLS} FROM messages WHERE mailbox_id = $1", mailbox_id)
        return MessageIndex.build(mb, recent_uid, (tuple(r) for r in rows), self._rows)

    async def _index(self, mailbox_id: int | None, account_id: int | None, name: str) -> MessageIndex | None:
        try:
            # Changed rows must be read in the snapshot of the mailbox row (UIDNEXT and the
            # UIDs must agree), but an unchanged mailbox needs only its row: one round trip.
            got = await self.read(self._r_index, mailbox_id, account_id, name, True)
            if got is _SNAPSHOT:
                got = await self.read_tx(self._r_index, mailbox_id, account_id, name)
        except MailboxNotFound:
            if mailbox_id is not None:
                self._indexes.pop(mailbox_id, None)
            raise
        if got is None:
            return None
        assert isinstance(got, MessageIndex)
        idx = got
        mid = idx.mailbox.id
        current = self._indexes.get(mid)
        # Refreshes of several sessions may finish out of order: keep the newest.
        if current is None or current.mailbox.uidvalidity != idx.mailbox.uidvalidity or \
                idx.mailbox.highestmodseq >= current.mailbox.highestmodseq:
            self._indexes[mid] = idx
        self._indexes.move_to_end(mid)
        while len(self._indexes) > _INDEXED_MAILBOXES:
            self._indexes.popitem(last=False)
        return idx

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        idx = self._cached(mailbox_id)
        if idx is not None and idx.mailbox.highestmodseq == modseq:
            # Nothing changed since (NOOP, IDLE, the poll before each FETCH): no expunges
            # after ``modseq`` either, so the list is complete whatever the log's floor.
            return MailboxChanges(idx.mailbox)
        make = self._rows.message

        async def r(c: asyncpg.Connection) -> MailboxChanges:
            # The mailbox row and the expunge log's floor in one round trip.
            row = await c.fetchrow(f"SELECT {MAILBOX_COLS}, (SELECT modseq FROM expunged e WHERE e.mailbox_id = $1 "
                                   "AND e.uid = 0) FROM mailboxes WHERE id = $1", mailbox_id)
            if row is None:
                raise MailboxNotFound(str(mailbox_id))
            changed = tuple(make(tuple(r)) for r in await c.fetch(
                f"SELECT {MSG_COLS} FROM messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
                mailbox_id, modseq))
            expunged = tuple(r[0] for r in await c.fetch(
                "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 AND uid > 0 ORDER BY uid",
                mailbox_id, modseq))
            fields = tuple(row)
            return MailboxChanges(mailbox(fields[:-1]), changed, expunged, int(fields[-1] or 0))
        return await self.read_tx(r)

    async def prune_expunge_log(self, mailbox_id: int, upto_modseq: int) -> int:
        async def w(c: asyncpg.Connection, ch: Changes) -> int:
            status = await c.execute("DELETE FROM expunged WHERE mailbox_id = $1 AND modseq <= $2 AND uid > 0",
                                     mailbox_id, upto_modseq)
            if upto_modseq > await _log_floor(c, mailbox_id):
                # The floor is a row of UID 0 (never a real UID, RFC 3501 §2.3.1.1), as in SQLite.
                try:
                    await c.execute("INSERT INTO expunged VALUES ($1, 0, $2) ON CONFLICT (mailbox_id, uid) "
                                    "DO UPDATE SET modseq = EXCLUDED.modseq", mailbox_id, upto_modseq)
                except asyncpg.ForeignKeyViolationError:
                    raise MailboxNotFound(str(mailbox_id)) from None
            return int(status.split()[-1])
        return await self.write(w)
