"""The news layer's own tables (groups, history, outgoing feed) on either backend.

One SQL text serves both backends: statements are written with ``?`` placeholders, the
short table names ``groups``, ``history``, ``feed``, ``overview`` and portable syntax (``ON CONFLICT``,
``RETURNING``); :func:`_sql` renames the tables to ``news_groups``, ``news_history``,
``news_feed``, ``news_overview`` and, for PostgreSQL, numbers the placeholders.

Where on SQLite: in ``store.db`` itself, with a version of their own (table
``news_schema``), not in the store's numbered migrations (those stay the store's, and
other components' tables never enter them) and not in a file beside it. In the store's
file, ``postroom backup`` copies them in the same snapshot as the articles (a history
row in a backup never points at an article the backup lacks: the article was committed
before its row), and a restore brings groups, history and articles back together. Their
writes are not in the store's transactions (see service.py: a post reserves its history
row, delivers, then completes the row); they take the store's writer lock file
(``store.db.writer``, engine.py) around each transaction, as every store writer of every
process does, so they queue in the kernel with the store's batches rather than in
SQLite's busy loop. On PostgreSQL the tables are the "news" component of the schema
(postroom.storage.postgresql.schema), migrated like "queue" at start and by
``postroom migrate``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Stmt = tuple[str, tuple[Any, ...]]

#: SQLite DDL of the news tables in store.db; ``news_schema.version`` counts those applied.
SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE news_groups(
        name TEXT PRIMARY KEY,
        mailbox_id INTEGER NOT NULL,
        posting TEXT NOT NULL DEFAULT 'y',
        description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        retention INTEGER,
        list_address TEXT,
        read_perm TEXT NOT NULL DEFAULT 'accounts',
        post_perm TEXT NOT NULL DEFAULT 'accounts'
    );
    CREATE TABLE news_history(
        message_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        locations TEXT NOT NULL DEFAULT '',
        marks TEXT NOT NULL DEFAULT '',
        poster TEXT,
        arrived REAL NOT NULL,
        expires REAL
    );
    CREATE INDEX news_history_arrived ON news_history(arrived);
    CREATE INDEX news_history_expires ON news_history(expires);
    CREATE INDEX news_history_state ON news_history(state);
    CREATE TABLE news_feed(
        peer TEXT NOT NULL,
        message_id TEXT NOT NULL,
        next_try REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(peer, message_id)
    );
    CREATE INDEX news_feed_next ON news_feed(next_try);
    """,
    # 2: the overview (RFC 3977 §8.3) of each stored article, written with its history row
    # when it is accepted (as INN writes its overview at arrival), so OVER/HDR of a range is
    # one range read of this table and no message bytes. Articles stored before this
    # migration get their rows the first time a range including them is read (service.py).
    """
    CREATE TABLE news_overview(
        mailbox_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        subject TEXT NOT NULL,
        from_ TEXT NOT NULL,
        date TEXT NOT NULL,
        message_id TEXT NOT NULL,
        refs TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        xref TEXT NOT NULL,
        PRIMARY KEY(mailbox_id, number)
    ) WITHOUT ROWID;
    """,
)

#: Component "news" of the PostgreSQL schema. Appended to, never edited.
PG_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE news_groups (
        name text PRIMARY KEY,
        mailbox_id bigint NOT NULL,
        posting text NOT NULL DEFAULT 'y',
        description text NOT NULL DEFAULT '',
        created double precision NOT NULL,
        retention int,
        list_address text,
        read_perm text NOT NULL DEFAULT 'accounts',
        post_perm text NOT NULL DEFAULT 'accounts'
    );
    CREATE TABLE news_history (
        message_id text PRIMARY KEY,
        state text NOT NULL,
        locations text NOT NULL DEFAULT '',
        marks text NOT NULL DEFAULT '',
        poster text,
        arrived double precision NOT NULL,
        expires double precision
    );
    CREATE INDEX news_history_arrived ON news_history (arrived);
    CREATE INDEX news_history_expires ON news_history (expires);
    CREATE INDEX news_history_state ON news_history (state);
    CREATE TABLE news_feed (
        peer text NOT NULL,
        message_id text NOT NULL,
        next_try double precision NOT NULL,
        attempts int NOT NULL DEFAULT 0,
        PRIMARY KEY (peer, message_id)
    );
    CREATE INDEX news_feed_next ON news_feed (next_try);
    """,
    # 2: the stored overview (see SQLITE_MIGRATIONS).
    """
    CREATE TABLE news_overview (
        mailbox_id bigint NOT NULL,
        number bigint NOT NULL,
        subject text NOT NULL,
        from_ text NOT NULL,
        date text NOT NULL,
        message_id text NOT NULL,
        refs text NOT NULL,
        bytes bigint NOT NULL,
        lines bigint NOT NULL,
        xref text NOT NULL,
        PRIMARY KEY (mailbox_id, number)
    );
    """,
)

_TABLES = re.compile(r"\b(?<!news_)(groups|history|feed|overview)\b")


class NewsState:
    """Runs the news statements; ``query`` reads, ``execute`` writes in one transaction."""

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def execute(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run the statements in one transaction, durably committed before returning;
        return each one's row count."""
        raise NotImplementedError

    def articles_changed(self) -> int | None:
        """The number of the news layer's article changes (stored, expunged, group removed)
        made by any process on this store, read without a query; None when there is no such
        number (then every read asks the store). See News._index."""
        return None

    def bump_articles(self) -> None:
        """After a commit that stored or removed articles, before it is acknowledged."""


class SqliteNewsState(NewsState):
    """The news tables in the SQLite store's ``store.db`` (WAL, synchronous=FULL: commits are
    fsynced). One connection, used by one thread at a time.

    ``execute`` commits in groups, as the store's engine does: the calls made while a commit is
    on its way (and those of one turn of the event loop) are run together in the next
    transaction, each inside a SAVEPOINT of its own, under one COMMIT. A post writes here twice
    (its history row reserved, then completed with the overview and the feed queue), so
    concurrent posters (several peers, the list gateway, a bench loading a group) paid two
    fsynced commits an article one after the other. Each call still gets its own row counts,
    its own error (the others are kept), and returns only once its COMMIT is durable."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "store.db"
        self._lock_path = Path(data_dir) / "store.db.writer"
        self._conn: sqlite3.Connection | None = None
        self._lock_fd = -1
        self._lock = threading.Lock()
        self._changes: Any = None
        # execute()'s group commit, on the event loop of its callers.
        self._waiting: list[tuple[list[Stmt], asyncio.Future[list[int]]]] = []
        self._kicked = False  # a _kick is scheduled
        self._running = False  # a batch is in the executor
        self._idle: asyncio.Event | None = None  # set when nothing is waiting or running
        self._loop: asyncio.AbstractEventLoop | None = None  # where the batches are answered

    async def open(self) -> None:
        await asyncio.to_thread(self._open)
        from ..storage.sqlite.changes import Changes

        # A change number shared (mmap) by every process on this data directory (changes.py).
        self._changes = Changes(self.path.parent / "news.changes")

    def articles_changed(self) -> int | None:
        return self._changes.read(0) if self._changes is not None else None

    def bump_articles(self) -> None:
        if self._changes is not None:
            self._changes.bump(0)

    def _open(self) -> None:
        from ..storage.sqlite.engine import connect
        from ..storage.sqlite.schema import _statements

        self._conn = conn = connect(self.path)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with self._writing():
                conn.execute("CREATE TABLE IF NOT EXISTS news_schema(version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM news_schema").fetchone()
                version = int(row[0]) if row else 0
                if version > len(SQLITE_MIGRATIONS):
                    raise RuntimeError(f"news schema version {version} is newer than this Postroom "
                                       f"({len(SQLITE_MIGRATIONS)}); upgrade Postroom")
                for script in SQLITE_MIGRATIONS[version:]:
                    for stmt in _statements(script):
                        conn.execute(stmt)
                conn.execute("DELETE FROM news_schema")
                conn.execute("INSERT INTO news_schema VALUES (?)", (len(SQLITE_MIGRATIONS),))
        except BaseException:
            self._close(conn)
            raise

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the store's writer lock (see the module docstring)."""
        conn = self._conn
        assert conn is not None, "news state is closed"
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def close(self) -> None:
        # Calls made before close() are committed (or fail) first, never left waiting.
        while self._waiting or self._running or self._kicked:
            self._idle = asyncio.Event()  # (made here: an Event belongs to the loop it waits on)
            await self._idle.wait()
        if self._changes is not None:
            self._changes.close()
            self._changes = None
        if self._conn is not None:
            conn = self._conn
            await asyncio.to_thread(self._close, conn)

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()
            self._conn = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            assert self._conn is not None, "news state is closed"
            if sql.lstrip()[:6].upper() == "SELECT":
                return self._conn.execute(_sql(sql), args).fetchall()
            with self._writing() as conn:  # one writing statement (UPDATE ... RETURNING)
                return conn.execute(_sql(sql), args).fetchall()

    def _execute(self, calls: list[list[Stmt]]) -> list[list[int] | Exception]:
        """One transaction for the statements of several ``execute`` calls: each call's row
        counts, or the error that undid that call's statements (and only them)."""
        out: list[list[int] | Exception] = []
        with self._lock, self._writing() as conn:
            if len(calls) == 1:  # alone: its error undoes the transaction, as it always did
                return [[conn.execute(_sql(sql), args).rowcount for sql, args in calls[0]]]
            for stmts in calls:
                conn.execute("SAVEPOINT news_call")
                try:
                    out.append([conn.execute(_sql(sql), args).rowcount for sql, args in stmts])
                except Exception as exc:  # noqa: BLE001 - handed to that call's caller
                    conn.execute("ROLLBACK TO news_call")
                    out.append(exc)
                conn.execute("RELEASE news_call")
        return out

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, sql, args)

    async def execute(self, stmts: Sequence[Stmt]) -> list[int]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._waiting or self._running or self._kicked:
                # Another event loop's batch is on its way (a state shared across threads):
                # this call commits on its own rather than be answered from that loop.
                got = (await asyncio.to_thread(self._execute, [list(stmts)]))[0]
                assert not isinstance(got, Exception)  # (alone, an error is raised, not returned)
                return got
            self._loop = loop
        fut: asyncio.Future[list[int]] = loop.create_future()
        self._waiting.append((list(stmts), fut))
        if not self._kicked and not self._running:
            # At the end of this turn of the loop, so that the calls made in it go together.
            self._kicked = True
            loop.call_soon(self._kick, loop)
        return await fut

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._kicked = False
        if self._running:
            return
        if not self._waiting:
            if self._idle is not None:
                self._idle.set()
            return
        batch, self._waiting = self._waiting, []
        self._running = True
        job = loop.run_in_executor(None, self._execute, [stmts for stmts, _ in batch])
        job.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(self, loop: asyncio.AbstractEventLoop,
                batch: list[tuple[list[Stmt], asyncio.Future[list[int]]]],
                done: asyncio.Future[list[list[int] | Exception]]) -> None:
        self._running = False
        exc = None if done.cancelled() else done.exception()
        for i, (_stmts, fut) in enumerate(batch):
            if fut.done():  # its caller was cancelled: the statements ran all the same
                continue
            if done.cancelled():
                fut.cancel()
            elif exc is not None:
                fut.set_exception(exc)
            else:
                got = done.result()[i]
                if isinstance(got, Exception):
                    fut.set_exception(got)
                else:
                    fut.set_result(got)
        # What arrived meanwhile is the next batch.
        self._kick(loop)


_cache: dict[tuple[str, bool], str] = {}


def _sql(sql: str, numbered: bool = False) -> str:
    """The tables under their news_ names; with ``numbered``, ``?`` placeholders as ``$n``."""
    out = _cache.get((sql, numbered))
    if out is not None:
        return out
    out = _TABLES.sub(lambda m: "news_" + m.group(1), sql)
    if numbered:
        n = 0

        def num(_m: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        out = re.sub(r"\?", num, out)
    if len(_cache) < 10_000:  # statements are few; IN lists of varying length are not cached for ever
        _cache[(sql, numbered)] = out
    return out


class PgNewsState(NewsState):
    """The "news" component of a PostgreSQL store's database."""

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self._pool: Any = None

    async def open(self) -> None:
        from ..storage.postgresql import schema
        from ..storage.postgresql.connect import create_pool

        self._pool = await create_pool(self.pg, min_size=1, max_size=4)
        try:
            async with self._pool.acquire() as conn:
                await schema.apply(conn, "news", PG_MIGRATIONS)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @staticmethod
    def _t(sql: str) -> str:
        return _sql(sql, numbered=True)

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        from ..storage.postgresql.connect import acquire

        assert self._pool is not None, "news state is closed"
        async with acquire(self._pool) as conn:
            rows = await conn.fetch(self._t(sql), *args)
        return [tuple(r) for r in rows]

    async def execute(self, stmts: Sequence[Stmt]) -> list[int]:
        from ..storage.postgresql.connect import acquire

        assert self._pool is not None, "news state is closed"
        counts = []
        async with acquire(self._pool) as conn, conn.transaction():
            for sql, args in stmts:
                status = await conn.execute(self._t(sql), *args)
                tail = status.rsplit(" ", 1)[-1]
                counts.append(int(tail) if tail.isdigit() else 0)
        return counts


def state_for(store: Any) -> NewsState:
    """The news state of ``store``: its PostgreSQL database, or its SQLite store.db."""
    pg = getattr(store, "pg", None)
    if pg is not None and type(store).__name__ == "PostgresStore":
        return PgNewsState(pg)
    return SqliteNewsState(Path(store.dir))
