"""IDLE (RFC 2177): push mailbox changes until the client sends DONE."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import Bad, Bye
from ..responses import Reply
from ..session import Session


async def idle(s: Session, _: None) -> Reply:
    await s.io.send(b"+ idling\r\n")
    if s.notify is not None:
        # RFC 5465 §4: after NOTIFY, IDLE sends exactly the events NOTIFY asked for.
        line = await s.notify.serve(s.io.read_line(s.settings.autologout), s.io.send,
                                    getattr(s.io, "backlog", lambda: 0), idle=True)
        if line.strip().upper() != b"DONE":
            raise Bad("Expected DONE")
        return Reply("Idle completed")
    box = s.selected
    watch = s.store.watch(box.id) if box is not None else None
    reader = asyncio.ensure_future(s.io.read_line(s.settings.autologout))
    try:
        if box is not None:
            # Anything that happened before IDLE began is sent at once.
            updates = await box.poll(s.store, allow_expunge=True)
            if updates:
                await s.io.send(b"".join(updates))
        while True:
            waiters: set[asyncio.Future[Any]] = {reader}
            waiter: asyncio.Future[bool] | None = None
            if watch is not None:
                waiter = asyncio.ensure_future(watch.wait())
                waiters.add(waiter)
            finished, _pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if reader in finished:
                if waiter is not None:
                    waiter.cancel()
                line = reader.result()  # raises IdleTimeout / ConnectionClosed to the glue
                if line.strip().upper() != b"DONE":
                    raise Bad("Expected DONE")
                return Reply("Idle completed")
            if box is not None and s.selected is box:
                updates = await box.poll(s.store, allow_expunge=True)
                if updates:
                    await s.io.send(b"".join(updates))
    finally:
        if not reader.done():
            reader.cancel()
        if watch is not None:
            watch.close()


__all__ = ["idle", "Bye"]
