"""A consistent copy of a running store, for ``postroom backup``.

Copying the data directory with ``cp`` while the server runs can give a torn database
(``store.db`` and its WAL copied at different moments) and rows pointing at segment
bytes the copy missed. Here:

1. purge is held off (its lock file), so no segment is rewritten or deleted meanwhile;
2. SQLite's online backup copies the database as of one moment (a read transaction:
   deliveries go on meanwhile) to a temporary file in DEST, fsynced;
3. the segments are copied after that moment. A committed row only ever points at bytes
   that were fsynced before the commit, and segments only grow, so every byte the
   copied database refers to is in the copied segments. A segment already in DEST is
   a prefix of the live one: only its new tail is copied (daily backups copy each
   message once);
4. the new database replaces ``DEST/store.db``, and only then are the segments purged
   since the last backup removed from DEST: a backup cut short leaves the last one whole.

DEST is then a data directory in its own right: restore by stopping the server and
putting DEST's ``store.db`` and ``segments/`` in place of the data directory's.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BackupResult:
    messages: int  # in the copied database (one per mailbox a message is in)
    segments: int  # segment files in DEST
    copied: int  # segment bytes copied this time (the rest was there from an earlier backup)
    removed: int  # segment files removed from DEST (purged since the last backup)


def backup(data_dir: Path, dest: Path) -> BackupResult:
    """Blocking: run it on a thread. ``data_dir`` holds store.db, segments/ and locks/."""
    (dest / "segments").mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(data_dir / "locks" / "purge.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for a purge in progress to finish
        snapshot = dest / "store.db.tmp"
        messages = _copy_database(data_dir / "store.db", snapshot)
        copied = segments = removed = 0
        live = {p.name for p in (data_dir / "segments").glob("*.seg")}
        for name in sorted(live):
            copied += _copy_segment(data_dir / "segments" / name, dest / "segments" / name)
            segments += 1
        _fsync(dest / "segments")  # the names of the new files
        # Only now the new database replaces the old one, and only after that go the segments
        # it no longer needs: a backup cut short (a crash, ^C) leaves the previous one whole.
        os.replace(snapshot, dest / "store.db")
        _fsync(dest)
        for old in (dest / "segments").glob("*.seg"):
            if old.name not in live:
                old.unlink()
                removed += 1
        _fsync(dest / "segments")
    finally:
        os.close(lock)  # releases the flock
    return BackupResult(messages, segments, copied, removed)


def _copy_database(src: Path, tmp: Path) -> int:
    """The database as of one moment, to ``tmp`` (fsynced); returns its message count."""
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(src, timeout=30.0)
    try:
        source.execute("PRAGMA query_only=ON")
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)  # all pages in one step: one consistent snapshot
            messages = int(target.execute("SELECT count(*) FROM messages").fetchone()[0])
            # A standalone file: no WAL beside it to lose in a copy of the backup.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()
    _fsync(tmp)
    return messages


def _copy_segment(src: Path, dest: Path) -> int:
    """Copy what ``dest`` lacks of ``src``; return the bytes copied."""
    try:
        have = dest.stat().st_size
    except FileNotFoundError:
        have = 0
    with open(src, "rb") as fin:
        size = os.fstat(fin.fileno()).st_size
        if have > size:  # not a prefix (the live file was cut short): copy it whole again
            have = 0
        if have == size and dest.exists():
            return 0
        with open(dest, "r+b" if have else "wb") as fout:
            fout.seek(have)
            fin.seek(have)
            left = size - have
            while left > 0:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            fout.truncate()
            fout.flush()
            os.fsync(fout.fileno())
        return size - have - left


def _fsync(path: Path) -> None:
    """fsync a file, or a directory (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
