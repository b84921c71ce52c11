"""Message reads for RETR with one message of read-ahead.

POP3 clients download a maildrop in order, one RETR after the other, waiting for
each reply. Reading message n+1 while message n is on the wire and the client is
busy with it takes the store's read (a hop to its I/O thread) off the round trip,
which is most of what a RETR costs the server.
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

    async def read(self, msg: MessageInfo, next_msg: MessageInfo | None = None) -> bytes:
        """The stored bytes of ``msg``; then start reading ``next_msg`` in the background."""
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
            raw = await self.store.read_message(msg)
        if next_msg is not None and next_msg.size <= READ_AHEAD_MAX:
            self._ahead = (next_msg, asyncio.create_task(self.store.read_message(next_msg)))
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

