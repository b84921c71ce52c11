"""Run one framed command: parse, check the state once, call the handler, map errors,
and add the selected mailbox's pending updates at the moment they are allowed."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from ..errors import MailboxExists, MailboxNotFound, MessageDamaged, StorageFull, StoreError, StoreUnavailable
from ..net.connection import ConnectionClosed, IdleTimeout
from .commands import TABLE
from .errors import Bad, Bye, ImapError, ParseError
from . import names
from .parser import split_command
from .parser.base import Reader
from .responses import After, Reply, no_room
from .session import Session, State

log = logging.getLogger("postroom.imap")

Write = Callable[[bytes], Awaitable[None]]

# Commands after which we always look for changes, even without a wake-up from the
# store's watch (another process's change may not have woken us yet): §6.1.2, §6.4.1.
_ALWAYS_POLL = {"NOOP", "CHECK", "EXPUNGE", "UID EXPUNGE"}


def _state_error(s: Session) -> Bad:
    if s.state is State.NOT_AUTHENTICATED:
        return Bad("Log in first")
    if s.state is State.SELECTED or s.state is State.AUTHENTICATED:
        return Bad("Command not valid in this state" if s.selected else "No mailbox selected")
    return Bad("Command not valid in this state")


def store_unavailable() -> Reply:
    """The database went away (a PostgreSQL restart or failover): a temporary failure that
    the client retries (RFC 5530 §3 UNAVAILABLE), not a server bug."""
    return Reply("Mail store temporarily unavailable, try again later", b"NO", b"UNAVAILABLE")


def _store_error(exc: StoreError) -> Reply:
    if isinstance(exc, MailboxNotFound):
        return Reply("Mailbox does not exist", b"NO", b"NONEXISTENT")
    if isinstance(exc, MailboxExists):
        return Reply("Mailbox already exists", b"NO", b"ALREADYEXISTS")
    if isinstance(exc, StorageFull):
        return no_room()
    if isinstance(exc, MessageDamaged):
        log.error("imap: %s", exc)
        return Reply("Message is damaged and cannot be read", b"NO", b"CORRUPTION")  # RFC 5530
    return Reply("Operation failed", b"NO", b"CANNOT")


async def run(s: Session, raw: bytes, write: Write) -> After:
    """Execute ``raw`` and write every response line; return what the glue must do next."""
    try:
        tag, verb, r = split_command(raw)
    except ParseError:
        try:
            tag = Reader(raw).tag()
        except ParseError:
            await write(b"* BAD Invalid tag\r\n")  # §7.1.3: untagged when there is no tag
            return After.NOTHING
        await write(tag + b" BAD Invalid command\r\n")
        return After.NOTHING
    spec = TABLE.get(verb)
    if spec is None:
        await write(tag + b" BAD Unknown command\r\n")
        return After.NOTHING
    if s.state not in spec.states:
        await write(tag + b" BAD " + _state_error(s).text.encode() + b"\r\n")
        return After.NOTHING
    s.command_tag = tag
    names.set_mode(s.enabled)  # how this command's mailbox names are spelled (UTF8=ACCEPT, IMAP4rev2)
    try:
        args = spec.parse(r)
        reply = await spec.handle(s, args)
        if reply.untagged:
            await write(b"".join(reply.untagged))
        if reply.stream is not None:
            async for chunk in reply.stream:
                await write(chunk)
    except ImapError as exc:
        reply = Reply(exc.text, exc.status, exc.code)
    except (Bye, ConnectionClosed, IdleTimeout):
        raise
    except StoreError as exc:
        reply = _store_error(exc)
    except StoreUnavailable as exc:
        log.warning("imap %s: %s: %s", s.peer_ip, verb, exc)
        reply = store_unavailable()
    except Exception:
        log.exception("imap %s: %s failed", s.peer_ip, verb)
        reply = Reply("Internal error", b"NO", b"SERVERBUG")  # never the exception text
    box = s.selected
    if box is not None and s.state is State.SELECTED and verb not in ("SELECT", "EXAMINE"):
        try:
            if verb in _ALWAYS_POLL or s.changed() or (spec.expunge_ok and box.held_expunges):
                updates = await box.poll(s.store, allow_expunge=spec.expunge_ok)
                if updates:
                    await write(b"".join(updates))
        except MailboxNotFound:
            raise Bye("Selected mailbox was deleted, have to disconnect") from None
    await write(reply.tagged(tag))
    return reply.after
