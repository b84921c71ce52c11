"""Change numbers that every process of one store reads without asking SQLite.

Local delivery asks the store, for every message, things that almost never change: the
account's address and active Sieve script, whether the mailbox a ``fileinto`` names
exists, whether a vacation sender was already answered. Each such read costs 10-60 µs
of CPU on a busy server, however small: after every commit of another connection (the
writer commits a batch every millisecond or two) SQLite drops the reading connection's
page cache and reads the pages again. So the store keeps those answers in memory and
checks them against a change number instead: one per kind of data, in a small file
shared (mmap) by every process on the data directory, bumped after each commit that
changed that kind. Reading one is a memory load.

Order: a writer bumps only after its COMMIT, and a reader takes the number before it
reads SQLite; an answer is kept under the number read before it. A change committed
meanwhile moves the number later, so the answer is read again; the answer cached under
the old number was at worst taken just before that commit, as if the delivery had come
a moment earlier. The store replies to the client that made the change (ManageSieve
``OK``, IMAP ``CREATE``) only after the bump, so anything started after that reply sees
it. Bumps of several processes are serialised with an ``flock`` on the file (a lost
increment could make the number go back to one a reader has cached).

A process killed between its COMMIT and its bump leaves the number unmoved: the stores
therefore also re-read every kept answer after :data:`MAX_AGE` seconds. If the file cannot
be made or mapped, :meth:`Changes.read` answers None and nothing is kept.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

SIEVE = 0  #: Sieve scripts (any account's) and account deletions
MAILBOXES = 1  #: mailbox names of any account (create, delete, rename), account deletions
#: Every batch the writer of any process committed (or tried to): while it has not moved, no
#: mailbox's row or messages changed, so a mailbox index brought up to date under it still is.
COMMITS = 2
_SIZE = 4096  # room for more kinds
_U64 = struct.Struct("<Q")

#: Seconds after which an answer kept under an unchanged number is read again anyway.
MAX_AGE = 10.0


class Changes:
    """The change numbers of one store (``store.changes`` beside ``store.db``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._map: mmap.mmap | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)  # zeros: every number starts at 0
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            os.close(fd)
            return
        self._fd = fd

    def read(self, slot: int) -> int | None:
        """The current number of ``slot``; None when there is no shared file (keep nothing)."""
        m = self._map
        if m is None:
            return None
        return int(_U64.unpack_from(m, slot * 8)[0])

    def bump(self, *slots: int) -> None:
        """After a COMMIT that changed these kinds of data (on the writer thread)."""
        m = self._map
        if m is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for slot in slots:
                _U64.pack_into(m, slot * 8, (_U64.unpack_from(m, slot * 8)[0] + 1) & 0xFFFF_FFFF_FFFF_FFFF)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

