"""Make the store's next segment write or fsync fail the way a full or failing disk does,
or every fsync slow.

The servers under test run in the test process (a thread), so patching the ``os``
functions the segment writer calls reaches them; the fault fires once.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Any

import pytest


def fail_next_segment_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``writev`` writes 100 bytes, then the disk is full (ENOSPC)."""
    from postroom.storage.sqlite import segments

    real = os.writev
    armed = [True]

    def writev(fd: int, buffers: Any) -> int:
        if armed[0]:
            armed[0] = False
            real(fd, [bytes(buffers[0])[:100]])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buffers)

    monkeypatch.setattr(segments.os, "writev", writev)


def fail_next_segment_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``fdatasync`` reports an I/O error (EIO)."""
    from postroom.storage.sqlite import segments

    real = os.fdatasync
    armed = [True]

    def fdatasync(fd: int) -> None:
        if armed[0]:
            armed[0] = False
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(segments.os, "fdatasync", fdatasync)


def slow_segment_syncs(monkeypatch: pytest.MonkeyPatch, seconds: float) -> threading.Event:
    """Every ``fdatasync`` of a segment takes ``seconds`` longer, as on a slow or busy disk.

    The returned event is set while one of them is in progress.
    """
    from postroom.storage.sqlite import segments

    real = os.fdatasync
    syncing = threading.Event()

    def fdatasync(fd: int) -> None:
        syncing.set()
        try:
            time.sleep(seconds)
            real(fd)
        finally:
            syncing.clear()

    monkeypatch.setattr(segments.os, "fdatasync", fdatasync)
    return syncing
