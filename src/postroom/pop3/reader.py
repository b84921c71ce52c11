"""Message reads for RETR, with one message of read-ahead while the store is slow.

POP3 clients download a maildrop in order, one RETR after the other, waiting for
each reply. When the store has to hop to its I/O thread (a cold read from disk),
reading message n+1 while message n is on the wire takes that hop off the round
trip. When the bytes are in the page cache the store returns them at once, without
suspending; then a background task per message would only add work (a task, a
scheduling step), so the reader reads inline and starts reading ahead again as soon
as a read has to wait.
"""

from __future__ import annotations

import asyncio

from ..storage.api import Store
from ..storage.models import MessageInfo

# Larger messages are not read ahead: memory held for a guess should stay small.
READ_AHEAD_MAX = 1024 * 1024


class MessageReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ahead: tuple[MessageInfo, asyncio.Task[bytes]] | None = None
        # Whether the last read had to wait (suspend): then the next one is read ahead.
        self._waits = False

    async def read(self, msg: MessageInfo, next_msg: MessageInfo | None = None) -> bytes:
        """The stored bytes of ``msg``; then, if reads wait, start reading ``next_msg``."""
        raw: bytes | None = None
        if self._ahead is not None:
            ahead_msg, task = self._ahead
            self._ahead = None
            if ahead_msg == msg:
                try:
                    raw = await task
                except Exception:  # the guess failed: read again below and let that raise
                    raw = None
            else:
                self._discard(task)
        if raw is None:
            raw = await self._read(msg)
        if self._waits and next_msg is not None and next_msg.size <= READ_AHEAD_MAX:
            self._ahead = (next_msg, asyncio.create_task(self._read(next_msg)))
        return raw

    def read_now(self, msg: MessageInfo) -> bytes | None:
        """``msg``'s bytes when the store has them at hand without waiting (the page cache;
        ``SqliteStore.read_message_now``) and no read-ahead is under way, else None (then
        :meth:`read` decides). Such a read did not wait: no read-ahead follows, as in read()."""
        now = getattr(self.store, "read_message_now", None)
        if now is None or self._ahead is not None:
            return None
        raw: bytes | None = now(msg)
        if raw is not None:
            self._waits = False
        return raw

    async def _read(self, msg: MessageInfo) -> bytes:
        # A callback queued now runs before this coroutine resumes only if the read
        # suspends: an exact "did it wait" for the price of one loop callback.
        waited = [False]
        asyncio.get_running_loop().call_soon(waited.__setitem__, 0, True)
        raw = await self.store.read_message(msg)
        self._waits = waited[0]
        return raw

    @staticmethod
    def _discard(task: asyncio.Task[bytes]) -> None:
        task.cancel()
        # Fetch the outcome so a failed guess is not logged as "never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def close(self) -> None:
        if self._ahead is not None:
            self._discard(self._ahead[1])
            self._ahead = None
