"""Message bytes in append-only segment files, several messages per file.

Why not one file per message: durable delivery needs an fsync per file, and the
fsyncs are what limit delivery rate. With segments, every message of a group-commit
batch is appended to the same open file and one ``fsync`` covers them all (the
design of Dovecot's mdbox). Each process appends only to segments it created, so
writers never contend; readers use ``pread`` on any segment. Bytes appended but not
committed (a crash between fsync and commit) are never referenced and are dropped
when the segment is compacted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import cast


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` (not in the os module), or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_START_WRITEBACK = _sync_file_range() if sys.platform.startswith("linux") else None
_SYNC_FILE_RANGE_WRITE = 2

SEGMENT_LIMIT = 64 * 1024 * 1024
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)  # Linux 4.14+
_IOV_MAX = 1024  # buffers per writev (Linux UIO_MAXIOV)
# A writer starts a new segment after this long, so that a segment untouched for
# longer than SEALED_AFTER is no longer written by anyone and can be compacted.
SEGMENT_MAX_AGE = 3600.0
SEALED_AFTER = 2 * SEGMENT_MAX_AGE


class SegmentWriter:
    """Appends for one process; used only from the store's single writer thread."""

    def __init__(self, directory: Path, limit: int = SEGMENT_LIMIT) -> None:
        self.dir = directory
        self.limit = limit
        self.name: str | None = None
        self.fd = -1
        self.size = 0
        self.dirty = False
        self.opened_at = 0.0
        self._unstarted = 0  # where the bytes not yet sent to the disk begin

    def _open_new(self) -> None:
        self._abandon()
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        path = self.dir / f"{name}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            # The new directory entry must be durable too, before anything refers to it.
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.name, self.size, self.opened_at = fd, name, 0, time.monotonic()
        self._unstarted = 0

    def _abandon(self) -> None:
        """Stop appending to the current segment; the next append starts a new one.

        After a failed write or fsync the file's state is unknown: a short write
        before ENOSPC leaves bytes past ``size`` (so later offsets would be wrong),
        and after a failed fsync the kernel may have dropped pages that a retried
        fsync would then report as synced. Bytes already committed stay readable.
        """
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1
        self.name = None
        self.dirty = False

    def append(self, data: bytes) -> tuple[str, int]:
        return self.append_many([data])[0]

    def append_many(self, datas: list[bytes]) -> list[tuple[str, int]]:
        """Append each of ``datas``; return where each landed, as (segment, offset).

        A batch goes out in as few ``writev`` calls as fit the current segment: one
        system call, and one release of the GIL, instead of one per message.
        """
        out: list[tuple[str, int]] = []
        i = 0
        while i < len(datas):
            if self.fd < 0 or (self.size + len(datas[i]) > self.limit and self.size > 0) or \
                    time.monotonic() - self.opened_at > SEGMENT_MAX_AGE:
                if self.dirty:
                    self.sync()
                self._open_new()
            assert self.name is not None
            j, size = i, self.size
            while j < len(datas) and j - i < _IOV_MAX and (j == i or size + len(datas[j]) <= self.limit):
                out.append((self.name, size))
                size += len(datas[j])
                j += 1
            try:
                self._writev(datas[i:j], size - self.size)
            except BaseException:
                self._abandon()
                raise
            self.size = size
            self.dirty = True
            i = j
        return out

    def _writev(self, datas: list[bytes], total: int) -> None:
        n = os.writev(self.fd, datas)
        if n == total:  # the usual case: all of it in one call, nothing more to look at
            return
        # A short write (a signal, a disk filling up): go on from where it stopped.
        views = [memoryview(d) for d in datas if d]
        while True:
            while views and n >= len(views[0]):  # drop what was written whole
                n -= len(views[0])
                views.pop(0)
            if not views:
                return
            if n:
                views[0] = views[0][n:]
            n = os.writev(self.fd, views)

    def start_writeback(self) -> None:
        """Start writing the appended bytes to the disk without waiting for them.

        Only a head start for ``sync``, which still waits for them (and for the file's size),
        so that the disk works while the writer runs the batch's statements. Where
        ``sync_file_range`` is missing or refused, ``sync`` does all of it, as before.
        """
        if _START_WRITEBACK is None or not self.dirty or self.fd < 0 or self.size <= self._unstarted:
            return
        _START_WRITEBACK(self.fd, self._unstarted, self.size - self._unstarted, _SYNC_FILE_RANGE_WRITE)
        self._unstarted = self.size

    def sync(self) -> None:
        if self.dirty and self.fd >= 0:
            try:
                os.fdatasync(self.fd)
            except BaseException:
                self._abandon()
                raise
            self.dirty = False

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._abandon()


class _OpenSegment:
    __slots__ = ("fd", "users", "evicted")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.evicted = False


class SegmentReader:
    """``pread`` from segment files with a small cache of open descriptors (thread-safe).

    Descriptors are reference-counted: one evicted from the cache while another thread
    still reads through it is closed only after that read, so a descriptor number is
    never reused under a reader's feet.
    """

    def __init__(self, directory: Path, max_open: int = 64) -> None:
        self.dir = directory
        self.max_open = max_open
        self._open: OrderedDict[str, _OpenSegment] = OrderedDict()
        self._lock = threading.Lock()

    def _evict(self, entry: _OpenSegment) -> None:  # with the lock held
        entry.evicted = True
        if entry.users == 0:
            os.close(entry.fd)

    def _acquire(self, name: str, may_open: bool = True) -> _OpenSegment | None:
        with self._lock:
            entry = self._open.get(name)
            if entry is not None:
                self._open.move_to_end(name)
            elif not may_open:
                return None
            else:
                entry = self._open[name] = _OpenSegment(os.open(self.dir / f"{name}.seg", os.O_RDONLY))
                while len(self._open) > self.max_open:
                    _, old = self._open.popitem(last=False)
                    self._evict(old)
            entry.users += 1
            return entry

    def _release(self, entry: _OpenSegment) -> None:
        with self._lock:
            entry.users -= 1
            if entry.evicted and entry.users == 0:
                os.close(entry.fd)

    def read(self, name: str, offset: int, length: int) -> bytes:
        entry = self._acquire(name)
        assert entry is not None
        try:
            data = os.pread(entry.fd, length, offset)
        finally:
            self._release(entry)
        if len(data) != length:
            raise OSError(errno.EIO, f"only {len(data)} of its {length} bytes are there (the segment file is shorter)")
        return data

    def read_cached(self, name: str, offset: int, length: int) -> bytes | None:
        """The bytes if the kernel has them in its page cache, else None — without blocking.

        ``RWF_NOWAIT`` reads never wait for the disk, so they may run on the event
        loop: the common case (recent mail, read again) skips the thread hop, and a
        cold read still goes to a thread so a slow disk stalls nobody.
        """
        if not _NOWAIT:
            return None
        buf = bytearray(length)
        # One lock held over the read, instead of taking it twice to count a user in and out:
        # an RWF_NOWAIT read never waits for the disk (it copies from the page cache or fails
        # at once), so a thread wanting the lock meanwhile waits no longer than that copy,
        # and no eviction can close the descriptor under it.
        with self._lock:
            entry = self._open.get(name)
            if entry is None:  # not open: opening could wait for the disk
                return None
            self._open.move_to_end(name)
            try:
                n = os.preadv(entry.fd, [buf], offset, _NOWAIT)
            except OSError:  # EAGAIN: not cached; EOPNOTSUPP: file system without it
                return None
        return bytes(buf) if n == length else None

    def forget(self, name: str) -> None:
        with self._lock:
            entry = self._open.pop(name, None)
            if entry is not None:
                self._evict(entry)

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                self._evict(entry)
            self._open.clear()
