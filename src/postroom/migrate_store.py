"""``postroom migrate-store``: copy an embedded (SQLite) installation into PostgreSQL.

Everything a client or an admin could notice is carried over as it is: account,
mailbox and Sieve script ids (so RFC 8474 MAILBOXIDs stay), every mailbox's
UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, every message's UID, MODSEQ, flags, dates and
bytes, the expunge log (QRESYNC clients get VANISHED, not a full resync), metadata and
its change log, Sieve scripts with the active one and the vacation/duplicate tracking,
aliases, the outbound queue with each recipient's state, and the news state (the
newsgroups are mailboxes of a reserved account, so their articles keep their numbers as
UIDs; the news tables' rows are copied column by column, see :func:`copy_news`). Message
bytes are stored once per content in PostgreSQL: a blob keeps its SQLite id (the message's EMAILID)
unless the same bytes were stored twice, in which case the lowest id names both.

The copy reads the SQLite tables and segment files directly and writes the PostgreSQL
tables with COPY, in one transaction: a failed run leaves no data behind (only the
schema), so it can simply be run again with ``--force``. It refuses to start while a
server uses the data directory, and holds the store's writer lock and a write
transaction on the queue until it is done, so nothing is written to the old
installation meanwhile. A verification pass
(:mod:`.migrate_store_verify`) then compares both sides.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from .config import Config, PgSettings
from .errors import PostroomError
from .news.account import NEWS_DOMAIN
from .news.state import PG_MIGRATIONS as NEWS_PG_MIGRATIONS
from .news.state import SQLITE_MIGRATIONS as NEWS_SQLITE_MIGRATIONS
from .storage.postgresql import schema
from .storage.postgresql.blobs import chunks
from .storage.postgresql.connect import connect
from .storage.postgresql.migrations import COMPONENT as STORE_COMPONENT
from .storage.postgresql.migrations import MIGRATIONS as STORE_MIGRATIONS
from .storage.postgresql.scripts import tracking_key
from .storage.sqlite.schema import _statements
from .storage.sqlite.schema import migrate as migrate_sqlite
from .storage.sqlite.segments import SegmentReader

BATCH_ROWS = 5000  # rows per COPY
BATCH_BYTES = 32 * 1024 * 1024  # message bytes read before they are sent


class MigrationRefused(PostroomError):
    """The copy cannot start (a running server, a target with data, a wrong config)."""


@dataclass(frozen=True, slots=True)
class Table:
    """One SQLite table copied as rows: its columns (same names on both sides), the rows
    to take, and the conversion of a row where the two schemas store a value differently."""

    name: str
    columns: tuple[str, ...]
    where: str = ""
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
    order: str = ""


def _alias_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    return (r[0], list(json.loads(r[1])))  # JSON text in SQLite, text[] in PostgreSQL


def _script_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*r[:4], bool(r[4]), float(r[5]))  # active: 0/1 → boolean


def _account_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    # created: REAL → float; admin, disabled: 0/1 → boolean
    return (*r[:4], float(r[4]), *r[5:8], bool(r[8]), bool(r[9]), *r[10:])


def _credential_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*r[:4], bytes(r[4]), float(r[5]), None if r[6] is None else float(r[6]))


def _logout_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    return (bytes(r[0]), r[1], float(r[2]))


def _metadata_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    v = r[3]
    return (*r[:3], bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode())


def _float_at(*idx: int) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """SQLite gives an int for a REAL column holding a whole number; COPY wants a float."""
    def conv(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(float(v) if i in idx and v is not None else v for i, v in enumerate(r))
    return conv


def _tracking_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """The key as the PostgreSQL store keeps it (NUL separators escaped), the times as floats."""
    account_id, kind, key, recorded, expires = r
    return account_id, kind, tracking_key(key), float(recorded), float(expires)


_LIVE_MAILBOX = "mailbox_id IN (SELECT id FROM mailboxes)"

# In dependency order. ``messages`` and ``blobs`` are copied by _copy_messages (the bytes
# come from segment files and are deduplicated); ``meta`` and ``domains`` are merged.
TABLES: tuple[Table, ...] = (
    Table("accounts", ("id", "address", "password_hash", "apop_secret", "created", "quota_storage",
                       "quota_messages", "metadata_change", "admin", "disabled", "session_epoch", "totp_secret",
                       "totp_last_step"),
          convert=_account_row, order="id"),
    Table("credentials", ("id", "account_id", "kind", "name", "digest", "created", "last_used"),
          convert=_credential_row, order="id"),
    Table("aliases", ("source", "targets"), convert=_alias_row, order="source"),
    Table("mailboxes", ("id", "account_id", "name", "uidvalidity", "uidnext", "highestmodseq", "recent_uid",
                        "special_use"), order="id"),
    Table("subscriptions", ("account_id", "name"), where="account_id IN (SELECT id FROM accounts)"),
    # The expunge log has no foreign key in SQLite: rows of deleted mailboxes may remain.
    Table("expunged", ("mailbox_id", "uid", "modseq"), where=_LIVE_MAILBOX),
    Table("sieve_scripts", ("id", "account_id", "name", "content", "active", "updated"),
          convert=_script_row, order="id"),
    Table("sieve_tracking", ("account_id", "kind", "key", "recorded", "expires"), convert=_tracking_row),
    Table("metadata", ("account_id", "mailbox_id", "name", "value"), convert=_metadata_row),
    Table("metadata_log", ("account_id", "change", "mailbox_id", "name"), order="account_id, change"),
    # Web sessions logged out: a copy of such a cookie must stay refused on the new store.
    Table("web_logouts", ("digest", "account_id", "expires"), convert=_logout_row, order="digest"),
)
MESSAGE_COLUMNS = ("mailbox_id", "uid", "modseq", "flags", "internaldate", "tzoffset", "size", "blob_id",
                   "savedate")
# Tables whose ids the copy keeps: their sequences must continue after the highest.
SEQUENCES = ("accounts", "mailboxes", "sieve_scripts", "blobs", "credentials")
# Every table the target must have empty (domains and meta may hold what a node's start wrote).
DATA_TABLES = ("accounts", "aliases", "mailboxes", "subscriptions", "blobs", "messages", "expunged",
               "sieve_scripts", "sieve_tracking", "metadata", "metadata_log", "credentials", "web_logouts", "queue_messages")
# The outbound queue (SQLite database and one file per message under queue/, see
# outbound/queue.py) → outbound/pgqueue.py's tables. Recipients get new ids there (an
# identity column); nothing outside the queue refers to them.
QUEUE_MESSAGE_COLUMNS = ("id", "sender", "envelope", "size", "created", "held")
QUEUE_RECIPIENT_COLUMNS = ("msg_id", "address", "domain", "notify", "orcpt", "state", "attempts", "next_attempt",
                           "last_error", "last_status", "remote_mta", "delay_notified")


@dataclass(slots=True)
class CopyResult:
    """What was copied, for the summary; ``digests`` maps SQLite blob ids to sha256."""

    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0  # PostgreSQL blobs written (after deduplication)
    duplicates: int = 0  # SQLite blobs whose bytes another one already had
    octets: int = 0
    digests: dict[int, bytes] = field(default_factory=dict)
    queue: dict[str, int] = field(default_factory=dict)


# -- the source ------------------------------------------------------------------------
@dataclass(slots=True)
class Source:
    """The SQLite side, read inside transactions that keep writers out."""

    store: sqlite3.Connection
    queue: sqlite3.Connection | None  # None: this installation never queued anything


@contextmanager
def locked_source(data_dir: Path) -> Iterator[Source]:
    """The SQLite store and queue, with every writer kept out until the block ends.

    A running server holds the outbound scheduler's lock for its whole life (the queue
    runner of one of its processes), so that lock being held means "stop the server
    first". The store's writer lock is held by any process in the middle of a commit;
    taking both for the whole copy keeps the CLI and a server started meanwhile from
    writing to a store that is being left behind. The queue's database is held with a
    write transaction, so ``postroom sendmail`` or ``queue`` meanwhile wait and then fail
    with a temporary error instead of queueing mail the copy would miss.
    """
    db = data_dir / "store.db"
    if not db.exists():
        raise MigrationRefused(f"no SQLite store at {db} (is [storage] path right?)")
    fds: list[int] = []
    try:
        for path, holder in ((data_dir / "queue" / "scheduler.lock", "a Postroom server is running"),
                             (db.with_name(db.name + ".writer"), "a Postroom process is writing to the store")):
            if not path.parent.exists():
                continue
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise MigrationRefused(f"{holder} on {data_dir} (it holds {path.name}): stop the server "
                                       f"(and every postroom command) first, then run migrate-store again"
                                       ) from None
        conn = sqlite3.connect(db, isolation_level=None)
        qconn: sqlite3.Connection | None = None
        try:
            try:
                migrate_sqlite(conn)  # a store left by an older release is brought up to date first
            except RuntimeError as exc:  # a store newer than this Postroom
                raise MigrationRefused(str(exc)) from None
            migrate_sqlite_news(conn)
            # One read snapshot for the whole copy (nobody writes, but be exact anyway).
            conn.execute("BEGIN")
            qdb = data_dir / "queue" / "queue.db"
            if qdb.exists():
                qconn = sqlite3.connect(qdb, isolation_level=None, timeout=5.0)
                try:
                    qconn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    raise MigrationRefused(f"{qdb} is being written by another process: stop the server "
                                           f"(and every postroom command) first") from None
            yield Source(conn, qconn)
        finally:
            if qconn is not None:
                qconn.close()  # rolls the (read-only) transaction back
            conn.close()
    finally:
        for fd in fds:
            os.close(fd)  # releases the flock


def migrate_sqlite_news(conn: sqlite3.Connection) -> None:
    """The news tables of ``store.db`` brought up to date, when the store has them.

    What :class:`postroom.news.state.SqliteNewsState` does when it opens, done here on the
    copy's own connection: the copy holds the store's writer lock, which the news state
    would wait for. Up to date, the SQLite rows carry every column the PostgreSQL tables
    (created at the latest version) have. A store that never had a group has no news
    tables and gets none.
    """
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'news_schema'").fetchone() is None:
        return
    row = conn.execute("SELECT version FROM news_schema").fetchone()
    version = int(row[0]) if row else 0
    if version > len(NEWS_SQLITE_MIGRATIONS):
        raise MigrationRefused(f"the store's news tables are at version {version}, newer than this Postroom "
                               f"({len(NEWS_SQLITE_MIGRATIONS)}): upgrade Postroom first")
    if version == len(NEWS_SQLITE_MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for script in NEWS_SQLITE_MIGRATIONS[version:]:
            for stmt in _statements(script):
                conn.execute(stmt)
        conn.execute("DELETE FROM news_schema")
        conn.execute("INSERT INTO news_schema VALUES (?)", (len(NEWS_SQLITE_MIGRATIONS),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# -- the target ------------------------------------------------------------------------
async def prepare_target(pg: PgSettings, *, force: bool) -> asyncpg.Connection:
    """Connect, refuse a database that has data (or, without ``force``, a Postroom schema
    at all), and create every component's tables."""
    try:
        conn = await connect(pg)
    except OSError as exc:  # refused, unreachable, no such host, timed out
        raise MigrationRefused(f"cannot reach PostgreSQL at {pg.url}: {exc}") from None
    try:
        found = await schema.version(conn, STORE_COMPONENT)
        if found and not force:
            raise MigrationRefused(
                f"the target database already has a Postroom schema (store version {found}); "
                f"migrate-store copies into a new, empty database — if it holds no data (only what "
                f"'postroom migrate' or a node's start created), run again with --force")
        await apply_schemas(conn)
        tables = (*DATA_TABLES, *await pg_news_tables(conn))
        busy = [t for t in tables if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]
        if busy:
            raise MigrationRefused(f"the target database already holds data (in {', '.join(busy)}); "
                                   f"migrate-store only copies into an empty database")
    except BaseException:
        await conn.close()
        raise
    return conn


async def apply_schemas(conn: asyncpg.Connection) -> None:
    """The store's, the shared state's, the outbound queue's and the news tables, at their latest."""
    from .auth.pgthrottle import migrate as migrate_state
    from .outbound.pgqueue import MIGRATIONS as QUEUE_MIGRATIONS

    await schema.apply(conn, STORE_COMPONENT, STORE_MIGRATIONS)
    await migrate_state(conn)
    await schema.apply(conn, "queue", QUEUE_MIGRATIONS)
    await schema.apply(conn, "news", NEWS_PG_MIGRATIONS)


# -- the copy ---------------------------------------------------------------------------
def table_rows(src: sqlite3.Connection, t: Table) -> Iterator[list[tuple[Any, ...]]]:
    sql = f"SELECT {', '.join(t.columns)} FROM {t.name}"
    if t.where:
        sql += f" WHERE {t.where}"
    if t.order:
        sql += f" ORDER BY {t.order}"
    cur = src.execute(sql)
    while batch := cur.fetchmany(BATCH_ROWS):
        yield [t.convert(r) for r in batch] if t.convert else [tuple(r) for r in batch]


async def copy_store(src: sqlite3.Connection, dst: asyncpg.Connection, data_dir: Path,
                     progress: Callable[[int], None] = lambda n: None) -> CopyResult:
    """Copy every table (inside the caller's transaction); ``progress`` gets message bytes."""
    result = CopyResult()
    domains = served_domains(src)
    await dst.executemany("INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING", [(d,) for d in domains])
    result.rows["domains"] = len(domains)
    await dst.executemany("INSERT INTO meta (key, value) VALUES ($1, $2) "
                          "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                          src.execute("SELECT key, value FROM meta").fetchall())
    for t in TABLES[:4]:  # accounts … subscriptions: what messages refer to
        result.rows[t.name] = await _copy_table(src, dst, t)
    await _copy_messages(src, dst, data_dir, result, progress)
    for t in TABLES[4:]:
        result.rows[t.name] = await _copy_table(src, dst, t)
    result.rows.update(await copy_news(src, dst))
    for table in SEQUENCES:
        high = src.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
        if high:
            await dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1)", int(high))
    return result


def served_domains(src: sqlite3.Connection) -> list[str]:
    """The domain rows to carry over. The news layer's reserved domain never has one (it is
    added and removed around the creation of its account, news/account.py); a row left by
    a crash in between would make SMTP take mail for it, so it does not travel."""
    return [r[0] for r in src.execute("SELECT name FROM domains ORDER BY name") if r[0] != NEWS_DOMAIN]


async def _copy_table(src: sqlite3.Connection, dst: asyncpg.Connection, t: Table) -> int:
    n = 0
    for batch in table_rows(src, t):
        await dst.copy_records_to_table(t.name, records=batch, columns=list(t.columns))
        n += len(batch)
    return n


async def _copy_messages(src: sqlite3.Connection, dst: asyncpg.Connection, data_dir: Path,
                         result: CopyResult, progress: Callable[[int], None]) -> None:
    """The bytes of every blob a message refers to (one PostgreSQL blob per content), then
    the message rows pointing at them. Blobs no message refers to (expunged, not yet
    purged) are left behind."""
    reader = SegmentReader(data_dir / "segments")
    by_digest: dict[bytes, int] = {}  # sha256 → PostgreSQL blob id
    target: dict[int, int] = {}  # SQLite blob id → PostgreSQL blob id
    blob_rows: list[tuple[Any, ...]] = []
    chunk_rows: list[tuple[Any, ...]] = []
    pending = 0

    async def flush() -> None:
        nonlocal pending
        if blob_rows:
            await dst.copy_records_to_table("blobs", records=blob_rows,
                                            columns=["id", "sha256", "length", "refcount", "structure"])
            await dst.copy_records_to_table("blob_chunks", records=chunk_rows, columns=["blob_id", "seq", "data"])
        blob_rows.clear()
        chunk_rows.clear()
        pending = 0

    try:
        cur = src.execute("SELECT id, segment, offset, length, structure FROM blobs "
                          "WHERE id IN (SELECT blob_id FROM messages) ORDER BY id")
        while batch := cur.fetchmany(256):
            for blob_id, segment, offset, length, structure in batch:
                try:
                    raw = reader.read(segment, offset, length)
                except OSError as exc:
                    raise MigrationRefused(
                        f"message bytes {blob_id} (segment {segment}) cannot be read: {exc.strerror or exc}; "
                        f"nothing was copied — 'postroom verify' lists the damaged messages") from None
                digest = hashlib.sha256(raw).digest()
                result.digests[blob_id] = digest
                kept = by_digest.get(digest)
                if kept is not None:
                    target[blob_id] = kept
                    result.duplicates += 1
                    continue
                by_digest[digest] = target[blob_id] = blob_id
                # refcount is set from the message rows once they are in (duplicates add up).
                blob_rows.append((blob_id, digest, length, 0, structure))
                chunk_rows.extend((blob_id, i, part) for i, part in enumerate(chunks(raw)))
                pending += length
                result.octets += length
                progress(length)
                if pending >= BATCH_BYTES:
                    await flush()
        await flush()
    finally:
        reader.close()
    result.blobs = len(by_digest)
    n = 0
    cur = src.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages ORDER BY mailbox_id, uid")
    while batch := cur.fetchmany(BATCH_ROWS):
        await dst.copy_records_to_table(
            "messages", columns=list(MESSAGE_COLUMNS),
            records=[(*r[:7], target[r[7]], r[8]) for r in batch])
        n += len(batch)
    result.rows["messages"] = n
    await dst.execute("UPDATE blobs SET refcount = c.n FROM "
                      "(SELECT blob_id, count(*) AS n FROM messages GROUP BY blob_id) c WHERE blobs.id = c.blob_id")
    result.rows["blobs"] = result.blobs


# -- the news state ---------------------------------------------------------------------
# The newsgroups are mailboxes of the reserved account news@news.invalid and their articles
# are messages: they travel with the store's tables above, with their UIDs (the article
# numbers), UIDVALIDITY and UIDNEXT, and the account and mailbox ids (so news_groups'
# mailbox ids stay right without being mapped). The news layer's own tables
# (news/state.py: news_groups, news_history, news_feed and whatever later versions add)
# are copied here by column name: each column both sides have, so a column added by a
# later migration comes along without this list knowing it.
@dataclass(frozen=True, slots=True)
class NewsTable:
    name: str
    columns: tuple[str, ...]  # the columns both sides have, in SQLite's order
    types: tuple[str, ...]  # their PostgreSQL types (format_type)
    missing: tuple[str, ...]  # SQLite columns PostgreSQL lacks (their values cannot travel)


def sqlite_news_tables(src: sqlite3.Connection) -> list[str]:
    """The news layer's tables in store.db (none if it never had a group), not its version table."""
    return [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'news\\_%' ESCAPE '\\' "
        "AND name != 'news_schema' ORDER BY name")]


async def pg_news_tables(dst: asyncpg.Connection) -> list[str]:
    return [r[0] for r in await dst.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'news\\_%' "
        "AND c.relnamespace = current_schema()::regnamespace AND c.relname != 'news_schema' ORDER BY 1")]


async def _pg_columns(dst: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await dst.fetch("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped", table)
    return {r[0]: r[1] for r in rows}


async def news_tables(src: sqlite3.Connection, dst: asyncpg.Connection) -> list[NewsTable]:
    """Each SQLite news table with the columns it shares with its PostgreSQL table (a
    table PostgreSQL lacks has no shared columns and all of them missing)."""
    out = []
    for name in sqlite_news_tables(src):
        theirs = await _pg_columns(dst, name)
        mine = [r[1] for r in src.execute(f"PRAGMA table_info({name})")]
        shared = tuple(c for c in mine if c in theirs)
        out.append(NewsTable(name, shared, tuple(theirs[c] for c in shared),
                             tuple(c for c in mine if c not in theirs)))
    return out


def _pg_value(value: Any, pg_type: str) -> Any:
    """A SQLite value as COPY wants it for ``pg_type`` (SQLite's affinity gives an int for
    a whole REAL, 0/1 for a boolean, text or bytes either way)."""
    if value is None:
        return None
    if pg_type in ("double precision", "real"):
        return float(value)
    if pg_type in ("bigint", "integer", "smallint"):
        return int(value)
    if pg_type == "boolean":
        return bool(value)
    if pg_type == "bytea":
        return value.encode() if isinstance(value, str) else bytes(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value


def news_rows(src: sqlite3.Connection, t: NewsTable) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows (its shared columns), converted for PostgreSQL, in batches."""
    cur = src.execute(f"SELECT {', '.join(t.columns)} FROM {t.name}")
    while batch := cur.fetchmany(BATCH_ROWS):
        yield [tuple(_pg_value(v, ty) for v, ty in zip(r, t.types)) for r in batch]


async def copy_news(src: sqlite3.Connection, dst: asyncpg.Connection) -> dict[str, int]:
    """Copy the news tables' rows (after the mailboxes: news_groups names them). A table
    or column PostgreSQL lacks is refused rather than left behind."""
    counts: dict[str, int] = {}
    for t in await news_tables(src, dst):
        if t.missing:
            raise MigrationRefused(f"the store's news table {t.name} has column(s) {', '.join(t.missing)} that "
                                   f"the PostgreSQL schema of this Postroom lacks: nothing was copied")
        n = 0
        for batch in news_rows(src, t):
            await dst.copy_records_to_table(t.name, records=batch, columns=list(t.columns))
            n += len(batch)
        counts[t.name] = n
    return counts


async def copy_queue(src: sqlite3.Connection | None, queue_root: Path, dst: asyncpg.Connection,
                     progress: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Copy the outbound queue: messages with their bytes, recipients with their state
    (attempts, next attempt, last error), so retries go on where they were."""
    if src is None:
        return {"queue_messages": 0, "queue_recipients": 0}
    rows = src.execute(f"SELECT {', '.join(QUEUE_MESSAGE_COLUMNS)} FROM messages ORDER BY created").fetchall()
    for i in range(0, len(rows), 256):
        batch = rows[i:i + 256]
        bodies = []
        for r in batch:
            raw = (queue_root / "msgs" / r[0]).read_bytes()
            bodies.append((r[0], raw))
            progress(len(raw))
        await dst.copy_records_to_table(
            "queue_messages", columns=list(QUEUE_MESSAGE_COLUMNS),
            records=[(r[0], r[1], r[2], int(r[3]), float(r[4]), bool(r[5])) for r in batch])
        await dst.copy_records_to_table("queue_bodies", columns=["msg_id", "body"], records=bodies)
    n = 0
    cur = src.execute(f"SELECT {', '.join(QUEUE_RECIPIENT_COLUMNS)} FROM recipients "
                      f"WHERE msg_id IN (SELECT id FROM messages) ORDER BY id")
    while batch := cur.fetchmany(BATCH_ROWS):
        await dst.copy_records_to_table(
            "queue_recipients", columns=list(QUEUE_RECIPIENT_COLUMNS),
            records=[(*r[:7], float(r[7]), *r[8:11], bool(r[11])) for r in batch])
        n += len(batch)
    return {"queue_messages": len(rows), "queue_recipients": n}


def storage_section(pg: PgSettings, cfg: Config) -> str:
    """The ``[storage]`` table the admin writes into the config once the copy is verified.
    (JSON string escapes are TOML basic-string escapes, so any path comes out valid.)"""
    def q(v: object) -> str:
        return json.dumps(str(v))

    lines = ["[storage]", 'backend = "postgresql"', f"path = {q(cfg.data_dir)}   # DKIM keys and other local files",
             f"url = {q(pg.url)}"]
    if pg.password_file is not None:
        lines.append(f"password_file = {q(pg.password_file)}")
    if pg.password_env is not None:
        lines.append(f"password_env = {q(pg.password_env)}")
    return "\n".join(lines)


async def migrate_store(cfg: Config, pg: PgSettings, *, force: bool = False, progress: bool = True,
                        out: Callable[[str], None] = print) -> int:
    """Copy, verify, and say what to write into the config; 0 when verified, 1 if not."""
    if cfg.backend != "sqlite":
        raise MigrationRefused(f"{cfg.path} already has [storage] backend = {cfg.backend!r}: "
                               f"migrate-store copies an embedded (SQLite) installation")
    try:
        return await _migrate_store(cfg, pg, force, progress, out)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Refused login, missing database, a constraint the data breaks: one line, no traceback.
        raise MigrationRefused(f"PostgreSQL at {pg.url}: {exc} (nothing was copied; the SQLite store "
                               f"is unchanged)") from None


async def _migrate_store(cfg: Config, pg: PgSettings, force: bool, progress: bool,
                         out: Callable[[str], None]) -> int:
    from tqdm import tqdm

    from .migrate_store_verify import verify

    queue_root = cfg.data_dir / "queue"
    with locked_source(cfg.data_dir) as source:
        src = source.store
        dst = await prepare_target(pg, force=force)
        try:
            total = src.execute("SELECT coalesce(sum(length), 0) FROM blobs "
                                "WHERE id IN (SELECT blob_id FROM messages)").fetchone()[0]
            total += sum(f.stat().st_size for f in (queue_root / "msgs").glob("*")) \
                if (queue_root / "msgs").is_dir() else 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="copying",
                      file=sys.stderr, disable=not progress) as bar:
                # One transaction: a failed copy leaves no data behind, only the schema.
                async with dst.transaction():
                    copied = await copy_store(src, dst, cfg.data_dir, bar.update)
                    copied.queue = await copy_queue(source.queue, queue_root, dst, bar.update)
            result = await verify(src, dst, copied, queue_root)
        finally:
            await dst.close()
    out(result.summary())
    if not result.ok:
        print("postroom: the copy differs from the original (above); keep [storage] as it is and "
              "report this: the SQLite store is unchanged", file=sys.stderr)
        return 1
    dups = f", {copied.duplicates} duplicate copies of bytes stored once" if copied.duplicates else ""
    out(f"copied {copied.rows.get('messages', 0)} messages ({copied.octets} bytes{dups}), "
        f"{copied.queue.get('queue_messages', 0)} queued messages")
    out(f"\nNow change [storage] in {cfg.path} to:\n\n{storage_section(pg, cfg)}\n\n"
        f"then start the server (every node with the same [storage]). The SQLite store under "
        f"{cfg.data_dir} is left as it was: keep it until you are satisfied.")
    return 0
