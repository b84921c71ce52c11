"""The verification pass of ``postroom migrate-store``: both sides compared after the copy.

Read back from PostgreSQL, independently of what the copy believes it wrote: every
table's rows (as the copy converts them), each mailbox's UIDVALIDITY, UIDNEXT and
HIGHESTMODSEQ with its full UID list (UID, MODSEQ, flags, dates, size), the bytes of
every stored blob hashed again from its chunks, every message's bytes by sha256, and
the outbound queue with each body's hash, and the news state: the news tables' rows
(their shared columns, converted as the copy converts them), each group's mailbox (the
same account and name on both sides: its articles are compared above as the messages
of that mailbox) and no domain row for the news layer's reserved domain. Any difference
is a problem; the command exits 1 if there is one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from .migrate_store import (
    MESSAGE_COLUMNS,
    QUEUE_MESSAGE_COLUMNS,
    QUEUE_RECIPIENT_COLUMNS,
    TABLES,
    CopyResult,
    news_rows,
    news_tables,
    served_domains,
    table_rows,
)
from .news.account import NEWS_DOMAIN

MAX_LISTED = 20  # problems listed per kind; the rest are counted


@dataclass(slots=True)
class Verification:
    counts: list[tuple[str, int, int]] = field(default_factory=list)  # table, SQLite, PostgreSQL
    mailboxes: int = 0
    messages: int = 0
    blobs: int = 0
    queued: int = 0
    problems: list[str] = field(default_factory=list)
    _per_kind: dict[str, int] = field(default_factory=dict)

    def problem(self, kind: str, text: str) -> None:
        n = self._per_kind[kind] = self._per_kind.get(kind, 0) + 1
        if n <= MAX_LISTED:
            self.problems.append(f"{kind}: {text}")
        elif n == MAX_LISTED + 1:
            self.problems.append(f"{kind}: more differences not listed")

    @property
    def ok(self) -> bool:
        return not self._per_kind

    def summary(self) -> str:
        width = max(len(t) for t, _, _ in self.counts)
        lines = [f"{'table':<{width}}  {'sqlite':>10}  {'postgresql':>10}"]
        for table, a, b in self.counts:
            lines.append(f"{table:<{width}}  {a:>10}  {b:>10}  {'ok' if a == b else 'DIFFERENT'}")
        lines.append(f"mailboxes checked: {self.mailboxes} (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, every UID "
                     f"with its MODSEQ, flags, dates and size)")
        lines.append(f"messages checked by sha256: {self.messages} ({self.blobs} stored blobs re-read)")
        lines.append(f"queued messages checked by sha256: {self.queued}")
        lines.extend(self.problems)
        lines.append("verification: " + ("no differences" if self.ok else
                                         f"{sum(self._per_kind.values())} difference(s)"))
        return "\n".join(lines)


def _key(row: tuple[Any, ...]) -> str:
    return repr(row)


async def verify(src: sqlite3.Connection, dst: asyncpg.Connection, copied: CopyResult,
                 queue_root: Path) -> Verification:
    v = Verification()
    await _tables(src, dst, v)
    await _blobs(dst, copied, v)
    await _mailboxes(src, dst, copied, v)
    await _news(src, dst, v)
    await _queue(queue_root, dst, v)
    return v


async def _tables(src: sqlite3.Connection, dst: asyncpg.Connection, v: Verification) -> None:
    domains = set(served_domains(src))
    there = {r[0] for r in await dst.fetch("SELECT name FROM domains")}
    v.counts.append(("domains", len(domains), len(domains & there)))
    for d in sorted(domains - there):
        v.problem("domains", f"{d} missing")
    if NEWS_DOMAIN in there:  # SMTP would take mail for the newsgroups' reserved account
        v.problem("domains", f"{NEWS_DOMAIN} (the news layer's reserved domain) must have no row")
    for t in TABLES:
        a = sorted((r for batch in table_rows(src, t) for r in batch), key=_key)
        b = sorted((tuple(r) for r in await dst.fetch(f"SELECT {', '.join(t.columns)} FROM {t.name}")), key=_key)
        _compare_rows(v, t.name, a, b)
    n = src.execute("SELECT count(*) FROM messages").fetchone()[0]
    v.counts.append(("messages", n, int(await dst.fetchval("SELECT count(*) FROM messages"))))


def _compare_rows(v: Verification, table: str, a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    """Count both sides (sorted by :func:`_key`) and list the rows only one has."""
    v.counts.append((table, len(a), len(b)))
    if a != b:
        mine, theirs = {_key(r) for r in a}, {_key(r) for r in b}
        for r in sorted(mine - theirs):
            v.problem(table, f"not in PostgreSQL: {r[:200]}")
        for r in sorted(theirs - mine):
            v.problem(table, f"only in PostgreSQL: {r[:200]}")
        if mine == theirs:
            v.problem(table, "rows differ in number")


async def _blobs(dst: asyncpg.Connection, copied: CopyResult, v: Verification) -> None:
    """Hash every stored blob again from its chunks and compare with its recorded digest."""
    stored = {r[0]: (bytes(r[1]), r[2]) for r in await dst.fetch("SELECT id, sha256, length FROM blobs")}
    v.counts.append(("blobs (distinct contents)", len(set(copied.digests.values())), len(stored)))
    seen: set[int] = set()

    def check(blob_id: int, h: Any, length: int) -> None:
        seen.add(blob_id)
        digest, want = stored.get(blob_id, (b"", -1))
        if h.digest() != digest or length != want:
            v.problem("blobs", f"blob {blob_id}: its chunks do not hash to its sha256 (or length)")

    async with dst.transaction():  # a cursor needs one
        current, h, length = -1, hashlib.sha256(), 0
        async for r in dst.cursor("SELECT blob_id, data FROM blob_chunks ORDER BY blob_id, seq", prefetch=64):
            if r[0] != current:
                if current >= 0:
                    check(current, h, length)
                current, h, length = r[0], hashlib.sha256(), 0
            h.update(r[1])
            length += len(r[1])
        if current >= 0:
            check(current, h, length)
    for blob_id in sorted(set(stored) - seen):
        if stored[blob_id][1]:
            v.problem("blobs", f"blob {blob_id} has no bytes")
    v.blobs = len(seen)


async def _mailboxes(src: sqlite3.Connection, dst: asyncpg.Connection, copied: CopyResult,
                     v: Verification) -> None:
    cols = "id, account_id, name, uidvalidity, uidnext, highestmodseq"
    mine = [tuple(r) for r in src.execute(f"SELECT {cols} FROM mailboxes ORDER BY id")]
    theirs = {r[0]: tuple(r) for r in await dst.fetch(f"SELECT {cols} FROM mailboxes")}
    fields = ", ".join(f"m.{c}" for c in MESSAGE_COLUMNS[1:7]) + ", m.savedate"
    for box in mine:
        v.mailboxes += 1
        other = theirs.get(box[0])
        if other != box:
            v.problem("mailboxes", f"{box[2]!r} (id {box[0]}): SQLite has (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) "
                                   f"{box[3:]}, PostgreSQL {other[3:] if other else 'no such mailbox'}")
            continue
        a = [(*r[:-1], copied.digests.get(r[-1])) for r in src.execute(
            f"SELECT {fields}, m.blob_id FROM messages m WHERE m.mailbox_id = ? ORDER BY m.uid", (box[0],))]
        b = [(*r[:-1], bytes(r[-1])) for r in await dst.fetch(
            f"SELECT {fields}, b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob_id "
            f"WHERE m.mailbox_id = $1 ORDER BY m.uid", box[0])]
        v.messages += len(b)
        if [r[0] for r in a] != [r[0] for r in b]:
            v.problem("mailboxes", f"{box[2]!r} (id {box[0]}): the UID lists differ "
                                   f"({len(a)} UIDs in SQLite, {len(b)} in PostgreSQL)")
            continue
        for x, y in zip(a, b):
            if x[:-1] != y[:-1]:
                v.problem("messages", f"mailbox {box[0]} UID {x[0]}: {x[:-1]} became {y[:-1]}")
            elif x[-1] != y[-1]:
                v.problem("messages", f"mailbox {box[0]} UID {x[0]}: the bytes differ (sha256)")


async def _news(src: sqlite3.Connection, dst: asyncpg.Connection, v: Verification) -> None:
    """The news tables row for row, and each group's mailbox by owner and name."""
    for t in await news_tables(src, dst):
        if t.missing:
            v.problem(t.name, f"column(s) {', '.join(t.missing)} have no PostgreSQL counterpart")
            continue
        a = sorted((r for batch in news_rows(src, t) for r in batch), key=_key)
        b = sorted((tuple(r) for r in await dst.fetch(f"SELECT {', '.join(t.columns)} FROM {t.name}")), key=_key)
        _compare_rows(v, t.name, a, b)
        if t.name == "news_groups" and "mailbox_id" in t.columns:
            sql = ("SELECT g.name, a.address, m.name FROM news_groups g LEFT JOIN mailboxes m ON m.id = g.mailbox_id "
                   "LEFT JOIN accounts a ON a.id = m.account_id")
            here = {r[0]: tuple(r[1:]) for r in src.execute(sql)}
            there = {r[0]: tuple(r[1:]) for r in await dst.fetch(sql)}
            for group, box in sorted(here.items()):
                if there.get(group) != box:
                    v.problem("news_groups", f"group {group}: its mailbox is {box} in SQLite, "
                                             f"{there.get(group)} in PostgreSQL")


async def _queue(queue_root: Path, dst: asyncpg.Connection, v: Verification) -> None:
    db = queue_root / "queue.db"
    pg_msgs = {r[0]: tuple(r) for r in await dst.fetch(
        f"SELECT {', '.join(QUEUE_MESSAGE_COLUMNS)}, sha256(b.body) FROM queue_messages m "
        f"JOIN queue_bodies b ON b.msg_id = m.id")}
    pg_rcpts = sorted((tuple(r) for r in await dst.fetch(
        f"SELECT {', '.join(QUEUE_RECIPIENT_COLUMNS)} FROM queue_recipients")), key=_key)
    if not db.exists():
        v.counts.append(("queue_messages", 0, len(pg_msgs)))
        return
    src = sqlite3.connect(db)
    try:
        msgs = src.execute(f"SELECT {', '.join(QUEUE_MESSAGE_COLUMNS)} FROM messages").fetchall()
        rcpts = sorted(((*r[:7], float(r[7]), *r[8:11], bool(r[11])) for r in src.execute(
            f"SELECT {', '.join(QUEUE_RECIPIENT_COLUMNS)} FROM recipients "
            f"WHERE msg_id IN (SELECT id FROM messages)")), key=_key)
    finally:
        src.close()
    v.counts.append(("queue_messages", len(msgs), len(pg_msgs)))
    v.counts.append(("queue_recipients", len(rcpts), len(pg_rcpts)))
    for r in msgs:
        other = pg_msgs.get(r[0])
        digest = hashlib.sha256((queue_root / "msgs" / r[0]).read_bytes()).digest()
        if other is None:
            v.problem("queue", f"message {r[0]} missing")
        elif (r[1], json.loads(r[2]), int(r[3]), float(r[4]), bool(r[5])) != \
                (other[1], json.loads(other[2]), other[3], other[4], other[5]):
            v.problem("queue", f"message {r[0]}: envelope fields differ")
        elif bytes(other[6]) != digest:
            v.problem("queue", f"message {r[0]}: the bytes differ (sha256)")
        else:
            v.queued += 1
    if rcpts != pg_rcpts:
        v.problem("queue", "the recipients (address, state, attempts, next attempt …) differ")
