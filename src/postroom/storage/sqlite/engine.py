"""Threads and group commit under the SQLite store.

All writes of a process go through one writer thread with one connection. Write
requests queue up (a thread-safe queue, no event-loop task in between) while a
batch is being committed; the moment it is durable the writer thread takes all of
them as the next batch: message bytes are appended to the segment file and
fsynced once, then every request runs inside one transaction (each in its own SAVEPOINT, so one refused
request does not undo the others) and one COMMIT makes the batch durable (WAL with
``synchronous=FULL`` syncs the log on commit). Concurrent deliveries thus share two
fsyncs instead of paying two each. A run of same-kind requests (deliveries) may
go through one bulk function instead, a few statements for the whole run: the
Python and GIL cost per statement, not the disk, is what limits a batch. Reads use
a small pool of threads, each with its own connection, so neither slow disks nor
SQLite ever block the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ... import metrics
from ...errors import StorageFull, StoreUnavailable, is_storage_full
from .segments import SegmentWriter

WriteFn = Callable[..., Any]
BulkFn = Callable[[sqlite3.Connection, "list[WriteRequest]"], None]


def connect(path: Path, check_same_thread: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with durable commits.

    Switching a new database to WAL needs an exclusive lock and SQLite reports
    "database is locked" at once, without its busy handler, when another process
    (a second worker starting at the same moment) holds the file: so that step is
    retried for a while instead of failing the process.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    deadline = time.monotonic() + 30.0
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    conn.execute("PRAGMA synchronous=FULL")  # durable commits: the WAL is fsynced at COMMIT
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class StoreClosed(RuntimeError):
    """A write after ``stop()`` began: it would never be committed, so it fails at once."""


@dataclass(slots=True)
class WriteRequest:
    fn: WriteFn
    args: tuple[Any, ...]
    blobs: tuple[bytes, ...] = ()
    future: asyncio.Future[Any] | None = None
    #: Optional ``bulk(conn, requests)`` doing a run of same-kind requests at once.
    bulk: BulkFn | None = None
    # filled by the writer thread
    blob_refs: list[tuple[str, int, int]] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


class _ReaderThreads:
    """A fixed pool of reader threads handing results straight to asyncio futures.

    ``loop.run_in_executor`` goes through a ``concurrent.futures.Future`` (with its
    Condition), a wrapping asyncio future and two chained callbacks per call; here a
    call is one queue put and one ``call_soon_threadsafe``, which matters at one or two
    reads per IMAP command.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any],
                                             Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("reader threads shut down")
        if not self._threads:
            for i in range(self._size):
                t = threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
                t.start()
                self._threads.append(t)
        fut = loop.create_future()
        self._queue.put((loop, fut, fn, args))
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, fut, fn, args = item
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task, as an executor would
                try:
                    loop.call_soon_threadsafe(_set_error, fut, exc)
                except RuntimeError:
                    pass  # loop closed
                continue
            try:
                loop.call_soon_threadsafe(_set_result, fut, result)
            except RuntimeError:
                pass

    def shutdown(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self._threads.clear()


def _finish(batch: list[WriteRequest], then: list[Callable[[], None]]) -> None:
    """On the event loop: a batch is done; run its follow-ups, then wake its writers."""
    for action in then:
        try:
            action()
        except Exception:  # a notification failure must not fail the writes
            pass
    for req in batch:
        fut = req.future
        if fut is None or fut.done():  # the awaiting task may have been cancelled meanwhile
            continue
        if req.error is not None:
            fut.set_exception(req.error)
        else:
            fut.set_result(req.result)


def _set_result(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():  # the awaiting task may have been cancelled meanwhile
        fut.set_result(result)


def _set_error(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Engine:
    def __init__(self, db_path: Path, segment_dir: Path, readers: int = 4) -> None:
        self.db_path = db_path
        self.segment_dir = segment_dir
        self._writer: threading.Thread | None = None
        self._requests: queue.SimpleQueue[list[WriteRequest] | None] = queue.SimpleQueue()
        #: Requests submitted during this turn of the event loop, handed to the writer as one
        #: list at the end of it (``_flush``): see ``submit``.
        self._pending: list[WriteRequest] = []
        self._closing = False
        self._reader_pool = _ReaderThreads(readers, "postroom-reader")
        self._local = threading.local()
        self._wconn: sqlite3.Connection | None = None
        self._segments = SegmentWriter(segment_dir)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self._loop_thread = 0  # the event loop's thread: read_small runs there
        self._small_conn: sqlite3.Connection | None = None
        self._lock_fd = -1
        #: Called on the writer thread after each batch (committed or failed); may return
        #: a function to run on the event loop just before the batch's writers resume.
        self.on_commit: list[Callable[[list[WriteRequest]], Callable[[], None] | None]] = []
        self.batches = 0  # for benchmarks and tests: how many commits served the writes

    async def start(self, setup: Callable[[sqlite3.Connection], object]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(target=self._writer_main, args=(setup, ready),
                                        name="postroom-writer", daemon=True)
        self._writer.start()
        await asyncio.wrap_future(ready)

    async def stop(self) -> None:
        self._closing = True
        if self._writer is not None:
            # Queued writes finish first (they were promised): the sentinel comes after them.
            self._flush()
            self._requests.put(None)
            while self._writer.is_alive():
                await asyncio.sleep(0.005)
            self._writer = None
            await asyncio.sleep(0)  # the last batch's results, handed over with call_soon_threadsafe
        self._reader_pool.shutdown()
        if self._small_conn is not None:
            self._small_conn.close()
            self._small_conn = None
        with self._conn_lock:
            for c in self._reader_conns:
                c.close()
            self._reader_conns.clear()

    def current_segment(self) -> str | None:
        """The segment this process appends to (never compacted while open)."""
        return self._segments.name

    # -- reads -------------------------------------------------------------------
    def _reader_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db_path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._conn_lock:
                self._reader_conns.append(conn)
        return conn

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on a reader thread (one consistent snapshot per call)."""
        loop = asyncio.get_running_loop()

        def call() -> Any:
            conn = self._reader_conn()
            conn.execute("BEGIN")
            try:
                return fn(conn, *args)
            finally:
                conn.execute("COMMIT")

        return await self._reader_pool.submit(loop, call)

    async def read_small(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``read`` for a lookup of a few rows through an index (one account's active
        script, one mailbox by name): run at once on the event loop's thread.

        A hop to a reader thread costs 20 µs of CPU on an idle process and 50-100 µs on a
        busy one (queue, wake-up, GIL hand-over, the loop's self-pipe), while such a
        lookup costs 3 µs. It is safe on the loop because in WAL mode a reader never
        waits for the writer, and this connection has no busy timeout: the rare moment
        SQLite would wait (another connection recovering the WAL index) raises at once
        and the read goes to a reader thread instead. Only for queries that touch a
        handful of B-tree pages (of a hot database): never scans, never message bytes.
        ``fn`` runs in autocommit mode, so each statement is its own snapshot: use one
        statement (a BEGIN/COMMIT pair would double the cost of such a read), and return
        rows, never a cursor (an unfinished cursor keeps its snapshot, and so the WAL, open).
        """
        if self._closing or threading.get_ident() != self._loop_thread:
            return await self.read(fn, *args)
        conn = self._small_conn
        if conn is None:
            # Not ``connect()``: the writer made the file WAL already, and no step may wait.
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=0)
            conn.execute("PRAGMA query_only=ON")
            self._small_conn = conn
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return await self.read(fn, *args)

    async def run_io(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Plain blocking work (segment reads) on the reader pool."""
        return await self._reader_pool.submit(asyncio.get_running_loop(), fn, *args)

    # -- writes ------------------------------------------------------------------
    async def write(self, fn: WriteFn, *args: Any, blobs: tuple[bytes, ...] = (),
                    bulk: BulkFn | None = None) -> Any:
        """Run ``fn(conn, *args[, blob_refs])`` in the next group-commit batch.

        With ``blobs``, ``fn`` receives as last argument the list of
        ``(segment, offset, length)`` where each was appended and fsynced.
        Returns after the batch is committed.

        ``bulk``, if given, must do for a list of such requests exactly what ``fn``
        does for each, setting each request's ``result``: consecutive requests with
        the same ``bulk`` then run as one (a few statements for the whole run instead
        of several per request). If it raises, its changes are rolled back and each
        request runs alone through ``fn``, so one bad request still fails alone.
        """
        return await self.submit(fn, *args, blobs=blobs, bulk=bulk)

    def submit(self, fn: WriteFn, *args: Any, blobs: tuple[bytes, ...] = (),
               bulk: BulkFn | None = None) -> asyncio.Future[Any]:
        """``write`` without its coroutine: queue the request now and return the future
        its batch completes. On the event loop's thread only. For the delivery path, where
        each coroutine frame between the caller and this future costs on every message.

        The request reaches the writer thread at the end of the event loop's current turn,
        together with every other request of that turn (one queue put, one wake-up of the
        writer), not one by one: woken by the first of them, the writer would take the GIL
        from the loop in the middle of the turn (at once if the loop waits on something,
        after the 5 ms switch interval if it is busy) and commit a part of them, leaving the
        rest to a second commit with its own two fsyncs.
        """
        if self._closing or self._writer is None:
            raise StoreClosed("the store is closed" if self._closing else "the store is not open")
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Any] = loop.create_future()
        pending = self._pending
        if not pending:
            loop.call_soon(self._flush)
        pending.append(WriteRequest(fn, args, blobs, fut, bulk))
        return fut

    def _flush(self) -> None:
        """On the event loop, after the turn that submitted them: hand the requests over."""
        if self._pending:
            self._requests.put(self._pending)
            self._pending = []

    def _writer_main(self, setup: Callable[[sqlite3.Connection], object],
                     ready: concurrent.futures.Future[None]) -> None:
        """The writer thread: take every queued request, commit them as one batch, repeat."""
        try:
            self._lock_fd = os.open(self.db_path.with_name(self.db_path.name + ".writer"),
                                    os.O_RDWR | os.O_CREAT, 0o600)
            self._wconn = connect(self.db_path)
            setup(self._wconn)
        except BaseException as exc:
            self._close_writer()
            if isinstance(exc, sqlite3.DatabaseError):  # "file is not a database", "database disk image is malformed"
                unusable = StoreUnavailable(f"{self.db_path}: {exc}")
                unusable.__cause__ = exc
                exc = unusable
            ready.set_exception(exc)
            return
        ready.set_result(None)
        requests = self._requests
        try:
            stopping = False
            while not stopping:
                first = requests.get()
                if first is None:
                    break
                batch = first
                while True:  # everything that queued while the last batch was being committed
                    try:
                        more = requests.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    batch += more
                started = time.perf_counter()
                try:
                    self._commit_batch(batch)
                except BaseException as exc:  # the whole batch failed (disk full, I/O error)
                    for req in batch:
                        if req.error is None:
                            req.error = exc
                metrics.store_commit(time.perf_counter() - started, len(batch))
                for req in batch:
                    if req.error is not None and not isinstance(req.error, StorageFull) and \
                            is_storage_full(req.error):
                        full = StorageFull("not enough disk space")
                        full.__cause__ = req.error
                        req.error = full
                then = []
                for hook in self.on_commit:
                    try:
                        action = hook(batch)
                    except Exception:  # a notification failure must not fail the writes
                        continue
                    if action is not None:
                        then.append(action)
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(_finish, batch, then)
                except RuntimeError:  # the loop is gone: nobody waits for these any more
                    pass
        finally:
            self._close_writer()

    def _close_writer(self) -> None:
        self._segments.close()
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _commit_batch(self, batch: list[WriteRequest]) -> None:
        conn = self._wconn
        assert conn is not None
        datas = [data for req in batch for data in req.blobs]
        if datas:
            where = iter(self._segments.append_many(datas))
            for req in batch:
                for data in req.blobs:
                    seg, off = next(where)
                    req.blob_refs.append((seg, off, len(data)))
            # The bytes go to the disk from now on (SegmentWriter.start_writeback), while
            # this thread runs the statements; the fsync that waits for them (one for every
            # message of the batch) comes before the COMMIT.
            self._segments.start_writeback()
        # Writers of other processes (workers, the CLI) queue on this lock in the
        # kernel and wake the moment it is free; SQLite's own busy handler would
        # poll with sleeps of a millisecond and more.
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another process commits: fsync while waiting for it, not while holding the
            # lock that process's next batch will wait for.
            self._segments.sync()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                i = 0
                while i < len(batch):
                    j = i + 1
                    bulk = batch[i].bulk
                    if bulk is not None:
                        while j < len(batch) and batch[j].bulk == bulk:
                            j += 1
                    if bulk is None or j - i == 1 or not self._run_bulk(conn, bulk, batch[i:j]):
                        for req in batch[i:j]:
                            self._run_one(conn, req)
                    i = j
                self._segments.sync()  # the bytes are on disk before any row that refers to them
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self.batches += 1

    @staticmethod
    def _run_one(conn: sqlite3.Connection, req: WriteRequest) -> None:
        conn.execute("SAVEPOINT req")
        try:
            args = req.args + ((req.blob_refs,) if req.blobs else ())
            req.result = req.fn(conn, *args)
            conn.execute("RELEASE req")
        except Exception as exc:
            conn.execute("ROLLBACK TO req")
            conn.execute("RELEASE req")
            req.error = exc

    @staticmethod
    def _run_bulk(conn: sqlite3.Connection, bulk: BulkFn, reqs: list[WriteRequest]) -> bool:
        conn.execute("SAVEPOINT bulk")
        try:
            bulk(conn, reqs)
            conn.execute("RELEASE bulk")
            return True
        except Exception:  # one of them is bad: let each run (and fail) alone
            conn.execute("ROLLBACK TO bulk")
            conn.execute("RELEASE bulk")
            for req in reqs:
                req.result = None
            return False
