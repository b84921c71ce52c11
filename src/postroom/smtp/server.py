"""Asyncio glue: read what the session expects, write what it replies.

Replies are collected and written in one go just before a read would block, which
is what RFC 2920 (PIPELINING) asks of a server and saves a system call per command
for pipelining clients. DATA is read in socket-sized chunks and scanned for
CRLF.CRLF by :class:`postroom.wire.dotstuff.DataReader`, not line by line.
"""

from __future__ import annotations

import asyncio
import time

from .. import log, metrics
from ..abuse.guard import ConnInfo, Guard
from ..auth import kerberos
from ..budget import budget_for, read_counted
from ..config import Config, Listener
from ..context import ServerContext
from ..net.connection import Connection, ConnectionClosed, IdleTimeout, LineTooLong, within
from ..wire.dotstuff import DataReader
from . import policy, replies, settings as smtp_settings
from .delivery import StoreBackend
from .proto import Expect, Options, Session
from .replies import Reply, r
from .settings import SmtpSettings

logger = log.get("smtp")


def check_settings(cfg: Config, problems: list[str]) -> None:
    smtp_settings.check_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> SmtpSettings:
    s = ctx.state.get("smtp")
    if not isinstance(s, SmtpSettings):
        s = smtp_settings.parse(ctx.config, [])
        ctx.state["smtp"] = s
    return s


def _options(ctx: ServerContext, s: SmtpSettings, listener: Listener, tls_active: bool, trusted: bool) -> Options:
    """The session's options: the same for every connection to a listener with the same TLS
    state and trust, so made once (``ctx.state`` is cleared when the config is reloaded)."""
    made: dict[tuple[str, bool, bool], Options] | None = ctx.state.get("smtp.options")
    if made is None:
        made = ctx.state["smtp.options"] = {}
    key = (listener.name, tls_active, trusted)
    opts = made.get(key)
    if opts is None:
        cfg = ctx.config
        opts = made[key] = Options(
            hostname=cfg.hostname,
            submission=listener.protocol == "submission",
            starttls=listener.tls == "starttls" and ctx.tls is not None,
            tls_active=tls_active,
            auth_available=True,
            allow_plaintext_auth=s.allow_plaintext_auth,
            trusted=trusted,
            max_size=cfg.limits.message_size,
            max_recipients=s.max_recipients,
            max_errors=s.max_errors,
            vrfy=s.vrfy,
            expn=s.expn,
            require_sender_match=s.require_sender_match,
            primary_domain=cfg.domains[0] if cfg.domains else cfg.hostname,
            banner=s.banner,
            listener=listener.name,
            gssapi=tuple(kerberos.mechanisms(ctx, "smtp")),
        )
    return opts


def make_session(ctx: ServerContext, conn: Connection, listener: Listener, sid: str,
                 tag: str = "") -> Session:
    s = settings_for(ctx)
    opts = _options(ctx, s, listener, conn.tls_active, policy.is_trusted(conn.peer_ip, s.trusted_networks))
    guard = Guard.for_connection(ctx, ConnInfo(conn.peer_ip, listener.name, listener.protocol, sid,
                                               opts.trusted, tag or conn.peer_ip))
    session = Session(opts, StoreBackend(ctx, s, conn.peer_ip, tag, guard), conn.peer_ip, sid)
    if conn.tls_active:
        session.tls_info = conn.tls_description()
    return session


def _idle_set(ctx: ServerContext) -> set[Connection]:
    """Connections waiting for a command; on shutdown each gets 421 at once (RFC 5321
    §3.8) instead of holding the server for its grace period."""
    idle = ctx.state.get("smtp.idle")
    if idle is None:
        idle = ctx.state["smtp.idle"] = set()
        task = asyncio.get_running_loop().create_task(_on_stop(ctx, idle))
        ctx.state["smtp.watcher"] = task
    return idle  # type: ignore[no-any-return]


async def _on_stop(ctx: ServerContext, idle: set[Connection]) -> None:
    await ctx.stopping.wait()
    for conn in list(idle):
        try:
            conn.write(_421(ctx, replies.SHUTDOWN).encode())
            conn.writer.close()  # the pending read ends with ConnectionClosed
        except Exception:  # already closing: nothing to do
            pass


async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    sid = log.new_id()
    tag = f"{listener.name}[{sid}] {conn.peer_ip}"
    session = make_session(ctx, conn, listener, sid, tag)
    logger.info("%s connect%s", tag, " tls" if conn.tls_active else "")
    pending: list[bytes] = []
    result = "quit"
    guard = session.backend.guard  # type: ignore[attr-defined]
    try:
        refusal = await guard.connect(conn) if guard else None
        if refusal is not None:  # refused before the greeting (rate limit, DNSBL, early talker)
            result = "refused"
            await _last_words(conn, pending, refusal)
            return
        await _serve(ctx, conn, session, pending, tag)
    except IdleTimeout:
        result = "timeout"
        await _last_words(conn, pending, _421(ctx, replies.TIMEOUT))
    except ConnectionClosed:
        result = "lost"
    except asyncio.CancelledError:
        await _last_words(conn, pending, _421(ctx, replies.SHUTDOWN), wait=False)
        raise
    except Exception:  # logged with traceback; the client only learns that we failed
        result = "error"
        logger.exception("%s internal error", tag)
        await _last_words(conn, pending, r(421, "4.3.0", f"{ctx.config.hostname} Local error, "
                                              "closing connection", close=True))
    finally:
        if guard:
            await guard.close()
        logger.info("%s disconnect %s in=%d out=%d errors=%d", tag, result, conn.bytes_in,
                    conn.bytes_out, session.errors)


def _421(ctx: ServerContext, reply: Reply) -> Reply:
    # RFC 5321 §4.2.2: 421 <domain> Service not available, closing transmission channel
    return Reply(reply.code, reply.status, (f"{ctx.config.hostname} {reply.lines[0]}",), True)


async def _last_words(conn: Connection, pending: list[bytes], reply: Reply, wait: bool = True) -> None:
    try:
        conn.write(b"".join(pending) + reply.encode())
        pending.clear()
        if wait:
            await conn.drain(5.0)
    except Exception:  # the peer may already be gone; nothing more to tell it
        pass


async def _serve(ctx: ServerContext, conn: Connection, session: Session, pending: list[bytes],
                 tag: str) -> None:
    limits = ctx.config.limits
    s = settings_for(ctx)
    pending.append(session.greeting().encode())
    idle = _idle_set(ctx)

    async def flush() -> None:
        if pending:
            conn.write(b"".join(pending))
            pending.clear()
            # What the client sends next (a message after 354, its final dot) is ACKed at
            # once: else a client with Nagle on waits 40 ms for it (Connection.ack_quickly).
            conn.ack_quickly()
        await conn.drain(limits.idle_timeout)

    budget = budget_for(ctx)
    chunks_held = 0  # bytes of this transaction's BDAT chunks counted in the budget
    try:
        while True:
            expect = session.expect
            reply: Reply | None
            if expect is Expect.LINE or expect is Expect.SASL:
                if ctx.stopping.is_set():
                    pending.append(_421(ctx, replies.SHUTDOWN).encode())
                    await flush()
                    return
                if not conn.has_buffered_input():
                    await flush()
                idle.add(conn)
                try:
                    line: bytes | None = await conn.readline(limits.line_length, limits.idle_timeout)
                except LineTooLong:
                    line = None
                finally:
                    idle.discard(conn)
                if line is None:
                    reply = session.line_too_long()
                else:
                    if expect is Expect.LINE:
                        reply = await session.command(line)
                    else:
                        reply = await session.sasl_line(line)
            elif expect is Expect.DATA:
                await flush()
                reader = DataReader(limits.message_size)
                deadline = _Deadline(s)
                held, no_room = 0, False
                try:
                    while True:
                        chunk = await conn.read_some(deadline.left())
                        deadline.received(len(chunk))
                        if not no_room and not reader.too_big:
                            if budget.take(len(chunk)):
                                held += len(chunk)
                            else:
                                no_room = True
                                reader.drop_rest()
                        if reader.feed(chunk):
                            break
                    if reader.leftover:
                        conn.unread(reader.leftover)
                    reply = await session.data_end(reader.body, reader.too_big, no_room)
                    if reader.too_big or no_room:  # refused unread (delivery.deliver counts the rest)
                        _refused(session, no_room)
                finally:
                    budget.give_back(held)
            elif expect is Expect.CHUNK:
                size = session.chunk_size
                deadline = _Deadline(s)
                if size > limits.message_size:
                    await read_counted(conn, size, None, deadline.left, deadline.received)
                    reply = await session.bdat_chunk(b"", dropped=size)
                else:
                    data, taken = await read_counted(conn, size, budget, deadline.left, deadline.received)
                    if data is None:
                        reply = await session.bdat_chunk(b"", no_room=True)
                        _refused(session, True)
                    else:
                        chunks_held += taken
                        reply = await session.bdat_chunk(data)
                if reply is replies.TOO_BIG:  # once per transaction: it ends there
                    _refused(session, False)
            else:  # pragma: no cover - TLS and CLOSE are handled right after the reply
                raise RuntimeError(f"unexpected state {expect}")
            if reply is not None:
                pending.append(reply.encode())
            if chunks_held and session.txn is None:  # the BDAT transaction is over
                budget.give_back(chunks_held)
                chunks_held = 0
            if session.expect is Expect.TLS:
                await flush()
                await conn.start_tls()  # drops anything pipelined in plaintext (RFC 3207 §4.2)
                session.tls_started(conn.tls_description())
                logger.info("%s starttls %s", tag, session.tls_info or "")
            elif session.expect is Expect.CLOSE:
                await flush()
                return
    finally:
        budget.give_back(chunks_held)


def _refused(session: Session, no_room: bool) -> None:
    metrics.message("submission" if session.opts.submission else "smtp", "deferred" if no_room else "rejected",
                    "memory" if no_room else "size")


class _Deadline:
    """How long the rest of a message may take to arrive.

    A timeout per read lets a client trickle a byte every few minutes and hold the
    connection for days. As Postfix 3.7 (smtpd_per_request_deadline with
    smtpd_min_data_rate): DATA, or one BDAT chunk, gets ``data_timeout`` in all, plus
    one second per ``min_data_rate`` bytes received, so a client sending at least that
    fast never runs out of time, however big the message.
    """

    __slots__ = ("end", "rate", "timeout")

    def __init__(self, s: SmtpSettings) -> None:
        self.timeout = s.data_timeout
        self.rate = s.min_data_rate
        self.end = time.monotonic() + s.data_timeout

    def left(self) -> float:
        return within(self.end, self.timeout) if self.rate else self.timeout

    def received(self, n: int) -> None:
        self.end += n / self.rate if self.rate else 0.0
