"""IDLE (RFC 2177): push mailbox changes until the client sends DONE.

An idling client is what a server holds most of (every phone, all day), so an idle session
costs one task waiting on its socket and nothing more: the session's own watch on the selected
mailbox (the one NOOP uses) calls back on a change, and a short-lived task polls the mailbox
and sends the updates, then ends. No reader task, no waiter task, no timer besides the
connection's idle timer (docs/imap.md, "10,000 idle clients").
"""

from __future__ import annotations

import asyncio

from ...net.connection import ConnectionClosed, IdleTimeout
from ..errors import Bad, Bye
from ..responses import Reply
from ..selected import SelectedMailbox
from ..session import Session


async def idle(s: Session, _: None) -> Reply:
    await s.io.send(b"+ idling\r\n")
    if s.notify is not None:
        # RFC 5465 §4: after NOTIFY, IDLE sends exactly the events NOTIFY asked for.
        line = await s.notify.serve(s.io.read_line(s.settings.autologout), s.io.send,
                                    getattr(s.io, "backlog", lambda: 0), idle=True)
        return _done(line)
    box = s.selected
    if box is None:  # authenticated state: nothing to push (RFC 2177 allows IDLE there)
        return _done(await s.io.read_line(s.settings.autologout))
    s.changed()  # makes (or keeps) the session's watch on the selected mailbox
    watch = s.watch
    # Anything that happened before IDLE began is sent at once.
    watch.pending()
    updates = await box.poll(s.store, allow_expunge=True)
    if updates:
        await s.io.send(b"".join(updates))
    pusher = _Pusher(s, box, asyncio.current_task())
    watch.on_change = pusher.wake
    if watch.pending():  # changed while we polled
        pusher.wake()
    try:
        line = await s.io.read_line(s.settings.autologout)
    except asyncio.CancelledError:
        if pusher.error is None or (t := asyncio.current_task()) is None or t.uncancel():
            raise  # not the pusher's doing (a shutdown, the idle timeout)
        raise pusher.error from None
    finally:
        watch.on_change = None
        await pusher.finish()
    return _done(line)


def _done(line: bytes) -> Reply:
    if line.strip().upper() != b"DONE":
        raise Bad("Expected DONE")
    return Reply("Idle completed")


class _Pusher:
    """Sends the selected mailbox's updates while the session waits for DONE: one task per
    burst of changes, none in between. A failure (the mailbox deleted, the store down) is
    handed to the idling command by cancelling its read, as the old reader/waiter pair did."""

    __slots__ = ("again", "box", "error", "owner", "s", "task")

    def __init__(self, s: Session, box: SelectedMailbox, owner: asyncio.Task[object] | None) -> None:
        self.s = s
        self.box = box
        self.owner = owner
        self.task: asyncio.Task[None] | None = None
        self.again = False
        self.error: BaseException | None = None

    def wake(self) -> None:
        if self.error is not None:
            return
        if self.task is not None and not self.task.done():
            self.again = True  # the running poll may have missed it: one more round
            return
        self.task = asyncio.get_running_loop().create_task(self._push())

    async def _push(self) -> None:
        s, box = self.s, self.box
        try:
            while True:
                self.again = False
                s.watch.pending()  # this poll reports what the flag says (NOOP need not)
                if s.selected is not box:
                    return
                updates = await box.poll(s.store, allow_expunge=True)
                if updates:
                    await s.io.send(b"".join(updates))
                if not self.again:
                    return
        except (ConnectionClosed, IdleTimeout):
            return  # the client went away or stopped reading: the read ends the command
        except Exception as exc:  # noqa: BLE001  (handed to the command, which maps it to a reply)
            self.error = exc
            if self.owner is not None and not self.owner.done():
                self.owner.cancel()

    async def finish(self) -> None:
        """Let a poll in flight send its updates before the tagged reply (or stop it if the
        command is being cancelled)."""
        t = self.task
        if t is None or t.done():
            return
        cur = asyncio.current_task()
        if cur is not None and cur.cancelling():
            t.cancel()
        try:
            await asyncio.shield(t)
        except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110
            pass  # its failure is the poller's to report (self.error), not the reply's


__all__ = ["Bye", "idle"]
