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

import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

SEGMENT_LIMIT = 64 * 1024 * 1024
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

    def _open_new(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.name = f"{os.getpid()}-{secrets.token_hex(6)}"
        path = self.dir / f"{self.name}.seg"
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.size = 0
        self.opened_at = time.monotonic()
        # The new directory entry must be durable too, before anything refers to it.
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def append(self, data: bytes) -> tuple[str, int]:
        if self.fd < 0 or (self.size + len(data) > self.limit and self.size > 0) or \
                time.monotonic() - self.opened_at > SEGMENT_MAX_AGE:
            if self.dirty:
                self.sync()
            self._open_new()
        offset = self.size
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)
        self.dirty = True
        assert self.name is not None
        return self.name, offset

    def sync(self) -> None:
        if self.dirty and self.fd >= 0:
            os.fdatasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        if self.fd >= 0:
            self.sync()
            os.close(self.fd)
            self.fd = -1


class SegmentReader:
    """``pread`` from segment files with a small cache of open descriptors (thread-safe)."""

    def __init__(self, directory: Path, max_open: int = 64) -> None:
        self.dir = directory
        self.max_open = max_open
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def _fd(self, name: str) -> int:
        with self._lock:
            fd = self._fds.get(name)
            if fd is not None:
                self._fds.move_to_end(name)
                return fd
            fd = os.open(self.dir / f"{name}.seg", os.O_RDONLY)
            self._fds[name] = fd
            while len(self._fds) > self.max_open:
                _, old = self._fds.popitem(last=False)
                os.close(old)
            return fd

    def read(self, name: str, offset: int, length: int) -> bytes:
        fd = self._fd(name)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise OSError(f"segment {name} is truncated at offset {offset}")
        return data

    def forget(self, name: str) -> None:
        with self._lock:
            fd = self._fds.pop(name, None)
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
