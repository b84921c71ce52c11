"""IMAP and IMAPS listeners: asyncio glue between a Connection and the session.

Reads lines, lets the framer ask for literals (sending ``+`` for synchronizing
ones), runs complete commands through :mod:`.dispatch`, and writes. Output is
flushed when the client has nothing more pipelined, or once enough is queued.
"""

from __future__ import annotations

import time

from .. import log
from ..budget import budget_for, read_counted
from ..config import Config, Listener
from ..context import ServerContext
from ..errors import StoreUnavailable
from ..net.connection import (CompressionError, Connection, ConnectionClosed, IdleTimeout, LineTooLong,
                              within)
from . import dispatch
from .errors import Bad, Bye
from .handlers.anystate import capabilities
from .handlers.append import command_limit as append_limit
from .handlers.quota import over_quota
from .responses import After, Reply, no_room
from .session import ImapSettings, Session, State
from .settings import read_settings
from ..storage.api import has_room
from .tokenizer import Command, CommandFramer, Event, LiteralTooLarge, NeedLiteral, first_words

logger = log.get("imap")
FLUSH_AT = 256 * 1024
MAX_BAD = 20  # consecutive malformed commands before we hang up


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> ImapSettings:
    s = ctx.state.get("imap")
    if not isinstance(s, ImapSettings):
        s = read_settings(ctx.config, [])
        ctx.state["imap"] = s
    return s


class _ConnIO:
    """The Interaction handlers use for AUTHENTICATE challenges and IDLE.

    Responses are collected and handed to the transport in one piece at ``flush``
    (when the client has nothing more pipelined) or once ``FLUSH_AT`` bytes are
    queued: one send() per command instead of one per response part. The transport
    is drained (an await with a timer) only when its own buffer is above FLUSH_AT,
    i.e. when the client reads slower than we write.
    """

    def __init__(self, conn: Connection, line_limit: int) -> None:
        self.conn = conn
        self.line_limit = line_limit
        self.pending = 0
        self._out: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self._out.append(data)
        self.pending += len(data)
        if self.pending >= FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        if self._out:
            out = self._out
            self._out = []
            self.pending = 0
            if len(out) == 1:
                self.conn.write(out[0])
            else:
                self.conn.writelines(out)  # one writev, without joining the FETCH responses first
        # Looked up each time: STARTTLS replaces the transport.
        transport = getattr(self.conn.writer, "transport", None)
        try:
            backlog = transport.get_write_buffer_size()  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            backlog = FLUSH_AT + 1
        if backlog > FLUSH_AT:
            await self.conn.drain()

    async def send(self, data: bytes) -> None:
        self._out.append(data)
        await self.flush()

    def backlog(self) -> int:
        """Bytes written but not yet taken by the client (NOTIFY's overflow check)."""
        transport = getattr(self.conn.writer, "transport", None)
        try:
            return int(transport.get_write_buffer_size()) + self.pending  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            return self.pending

    async def read_line(self, timeout: float | None) -> bytes:
        try:
            return await self.conn.readline(self.line_limit, timeout)
        except LineTooLong:
            raise Bad("Line too long") from None


async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    settings = settings_for(ctx)
    io = _ConnIO(conn, max(ctx.config.limits.line_length, 8192))
    s = Session(ctx, settings, io, peer_ip=conn.peer_ip, tls_active=conn.tls_active,
                starttls_available=listener.tls == "starttls" and conn.server_tls is not None)
    with log.SessionEvents(logger, listener.name, conn, lambda: s.account.address if s.account else None) as events:
        s.tag = events.tag
        await _serve(s, conn, io, settings, events)


async def _serve(s: Session, conn: Connection, io: _ConnIO, settings: ImapSettings,
                 events: log.SessionEvents) -> None:
    limits = s.ctx.config.limits
    line_limit = io.line_limit

    def literal_limits(verb: bytes) -> tuple[int, int]:
        if s.state is State.NOT_AUTHENTICATED:
            return settings.preauth_literal, settings.preauth_literal * 2
        if verb == b"APPEND":
            # RFC 3502 MULTIAPPEND: several messages, each at most message_size.
            return limits.message_size, append_limit(limits) + settings.max_command
        return settings.max_command, settings.max_command

    framer = CommandFramer(literal_limits)
    bad_in_a_row = 0
    login_by = time.monotonic() + limits.login_timeout
    budget = budget_for(s.ctx)
    held = 0  # bytes of the APPEND being read counted in the budget, until it has run
    try:
        # RFC 3501 §7.1.1 greeting with the capabilities (§7.2.1 allows them in the code).
        await io.send(b"* OK [CAPABILITY " + capabilities(s) + b"] Postroom IMAP4rev1 ready\r\n")
        while True:
            if held:  # the last command (an APPEND, run or refused) no longer holds its message
                budget.give_back(held)
                held = 0
            if not conn.has_buffered_input():
                await io.flush()
                conn.ack_quickly()  # the next command may be an upload: see Connection.ack_quickly
            if s.state is State.NOT_AUTHENTICATED:
                timeout = within(login_by, settings.preauth_timeout)
            else:
                timeout = settings.autologout
            try:
                # bytes: the tagged refusal of a literal not sent yet
                ev: Event | bytes = framer.feed_line(await _next_line(s, conn, io, line_limit, timeout))
                busy = False  # an APPEND message did not fit in the memory budget
                before = 0  # literal bytes of this command already read (MULTIAPPEND)
                while isinstance(ev, NeedLiteral):
                    if ev.sync:
                        try:
                            refusal = await _no_room_for(s, framer, ev.size, before)
                        except StoreUnavailable:
                            refusal = dispatch.store_unavailable().tagged(framer.tag())
                        if refusal is not None:
                            framer.reset()
                            ev = refusal
                            break
                        await io.send(b"+ Ready for literal data\r\n")  # §7.5
                        conn.ack_quickly()
                    if s.state is not State.NOT_AUTHENTICATED and framer.verb() == b"APPEND":
                        # Counted as it arrives (budget.py); past the budget read to its end
                        # and dropped, and the command is refused for now.
                        data, taken = await read_counted(conn, ev.size, None if busy else budget,
                                                         lambda: timeout)
                        held += taken
                        before += ev.size
                        busy = data is None
                        framer.feed_literal(data or b"")
                    else:
                        framer.feed_literal(await conn.readexactly(ev.size, timeout))
                    ev = framer.feed_line(await conn.readline(line_limit, timeout))
                if busy and isinstance(ev, Command):
                    ev = first_words(ev.raw)[0] + b" NO [UNAVAILABLE] Server busy, try again later\r\n"
            except LineTooLong:
                framer.reset()
                await io.write(b"* BAD Line too long\r\n")
                bad_in_a_row += 1
                if bad_in_a_row >= MAX_BAD:
                    raise Bye("Too many invalid commands") from None
                continue
            if isinstance(ev, LiteralTooLarge):
                if not ev.sync:
                    # RFC 7888 §4: the data is already coming; we will not read it.
                    raise Bye("Literal too large")
                # §7.1: refusing before the "+" means the client sends nothing more.
                await io.write((ev.tag or b"*") + b" NO [TOOBIG] Literal too large\r\n")
                continue
            if isinstance(ev, bytes):
                await io.write(ev)
                continue
            assert isinstance(ev, Command)
            if not ev.raw.strip():
                continue  # stray empty lines: ignore, as most servers do
            after = await dispatch.run(s, ev.raw, io.write)
            if after is After.STARTTLS:
                await io.flush()
                await conn.start_tls()
                s.tls_active = True
                framer.reset()
                logger.info("%s starttls %s", events.tag, conn.tls_description() or "")
            elif after is After.COMPRESS:
                await io.flush()  # the OK goes out uncompressed (RFC 4978 §3)
                conn.start_compression()
                logger.info("%s compress deflate", events.tag)
            elif after is After.LOGOUT:
                events.result = "logout"
                await io.flush()
                return
            elif after is After.UNAUTHENTICATE:
                s.stop_notify()
                login_by = time.monotonic() + limits.login_timeout
    except IdleTimeout:
        # RFC 3501 §5.4 autologout.
        events.result = "timeout"
        await _bye(io, "Autologout; idle for too long")
    except Bye as exc:
        events.result = "bye"
        await _bye(io, exc.text)
    except CompressionError as exc:
        # Garbage or a bomb in the deflate stream: no way to answer in sync, so hang up.
        events.result = "closed"
        logger.info("%s %s", events.tag, exc)
    except ConnectionClosed:
        pass
    finally:
        budget.give_back(held)  # a client gone in the middle of an APPEND
        s.stop_notify()
        s.close_watch()


async def _next_line(s: Session, conn: Connection, io: _ConnIO, limit: int, timeout: float | None) -> bytes:
    """The first line of the next command. After NOTIFY SET, events are sent while the client
    is between commands (RFC 5465 §3: at any time), unless it has already sent more."""
    if s.notify is None or conn.has_buffered_input():
        return await conn.readline(limit, timeout)
    return await s.notify.serve(conn.readline(limit, timeout), io.send, io.backlog)  # type: ignore[no-any-return]


async def _no_room_for(s: Session, framer: CommandFramer, size: int, before: int = 0) -> bytes | None:
    """The tagged NO for an APPEND whose message the store's disk, or the account's quota,
    has no room for, or None.

    Asked before the "+" of a synchronizing literal, so a full disk costs the client one
    line instead of the upload (RFC 3501 §7.5: the server may refuse instead of "+").
    The reply is the one a failed write gets, as Dovecot answers.
    """
    if s.state is State.NOT_AUTHENTICATED or framer.verb() != b"APPEND":
        return None
    size += before  # RFC 3502: the messages of a MULTIAPPEND are stored together or not at all
    if not has_room(await s.ctx.store.free_space(), size):
        return no_room().tagged(framer.tag())
    # RFC 9208 §4.3 and RFC 7888 §4: a message the account's quota cannot take is refused
    # now, not after its upload (the handler checks again once it is read: LITERAL+).
    q = await s.store.get_quota(s.account_id)
    if q is not None and q.limited and not q.allows(size):
        refusal = over_quota()
        return Reply(refusal.text, refusal.status, refusal.code).tagged(framer.tag())
    return None


async def _bye(io: _ConnIO, text: str) -> None:
    try:
        await io.send(b"* BYE " + text.encode() + b"\r\n")
    except (ConnectionClosed, IdleTimeout):
        pass
