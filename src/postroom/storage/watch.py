"""Mailbox change notifications for IDLE and NOOP, across processes.

Writes made by this process wake the watchers of the mailboxes they touched as soon
as they commit. Writes made by other processes (other workers, the CLI, an import)
are noticed by polling: a cheap check (SQLite's ``PRAGMA data_version``) runs a few
times a second only while someone watches, and when it moved, the watched
mailboxes' HIGHESTMODSEQ values are compared with the last ones seen. Every change to
a mailbox (new message, flags, expunge) raises its HIGHESTMODSEQ, so nothing is missed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Awaitable, Callable, Iterable

POLL_INTERVAL = 0.25


class Watch:
    def __init__(self, hub: "WatchHub", mailbox_id: int) -> None:
        self.hub = hub
        self.mailbox_id = mailbox_id
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._event.set()

    def pending(self) -> bool:
        """Like ``wait(0)`` without an await: True (and reset) if a change was signalled."""
        if self.closed:
            raise RuntimeError("watch closed")
        if self._event.is_set():
            self._event.clear()
            return True
        return False

    async def wait(self, timeout: float | None = None) -> bool:
        if self.pending():
            return True
        if timeout is not None and timeout <= 0:
            return False  # no timer, no trip through the event loop
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)


class WatchHub:
    """Keeps the watchers of one process and the poller that sees other processes' writes."""

    def __init__(self, data_version: Callable[[], Awaitable[int]],
                 modseqs: Callable[[list[int]], Awaitable[dict[int, int]]]) -> None:
        self._data_version = data_version
        self._modseqs = modseqs
        self._watches: dict[int, set[Watch]] = defaultdict(set)
        self._known: dict[int, int] = {}
        self._poller: asyncio.Task[None] | None = None

    def watch(self, mailbox_id: int) -> Watch:
        w = Watch(self, mailbox_id)
        self._watches[mailbox_id].add(w)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="postroom-watch-poll")
        return w

    def _remove(self, w: Watch) -> None:
        s = self._watches.get(w.mailbox_id)
        if s is not None:
            s.discard(w)
            if not s:
                del self._watches[w.mailbox_id]
                self._known.pop(w.mailbox_id, None)

    def changed(self, mailbox_ids: Iterable[int]) -> None:
        """Called after this process committed changes to these mailboxes."""
        for mid in mailbox_ids:
            for w in self._watches.get(mid, ()):
                w.notify()

    async def _poll(self) -> None:
        last = -1
        while self._watches:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                current = await self._data_version()
                ids = list(self._watches)
                if current == last and all(mid in self._known for mid in ids):
                    continue
                last = current
                seqs = await self._modseqs(ids)
                for mid in ids:
                    seq = seqs.get(mid)
                    if seq is not None and seq != self._known.get(mid):
                        # A first sighting wakes too: a spurious wake costs one
                        # changes_since() query, a missed one a stale client.
                        self._known[mid] = seq
                        self.changed([mid])
            except RuntimeError:  # store shutting down
                return

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except (asyncio.CancelledError, Exception):
                pass
