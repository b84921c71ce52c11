"""POP3 and POP3S listeners: asyncio glue between a Connection and the session.

Reads one line at a time, hands it to :func:`.commands.dispatch`, writes the
reply. Replies are only flushed when the client has nothing more pipelined
(RFC 2449 §6.6), so a batch of RETRs goes out in few writes.
"""

from __future__ import annotations

import time

from .. import log
from ..auth import session_settings
from ..config import Config, Listener
from ..context import ServerContext
from ..net.connection import Connection, ConnectionClosed, IdleTimeout, LineTooLong, within
from . import commands, handlers
from .proto import MAX_COMMAND_LINE, MAX_SASL_LINE, Action, Code, State, err, ok
from .session import Session
from .settings import Pop3Settings, read_settings

logger = log.get("pop3")
# Flush once this much is queued even if the client keeps pipelining, so a client
# that never reads cannot make us buffer its whole maildrop.
FLUSH_AT = 256 * 1024


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> Pop3Settings:
    return session_settings.cached(ctx, "pop3", Pop3Settings, read_settings)


async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    settings = settings_for(ctx)
    session = Session(ctx, settings, conn.peer_ip, tls_active=conn.tls_active,
                      tls_available=ctx.tls is not None and conn.server_tls is not None)
    with log.SessionEvents(logger, listener.name, conn,
                           lambda: session.account.address if session.account else None) as ev:
        session.tag = ev.tag
        await _serve(session, conn, settings, ev)


async def _serve(session: Session, conn: Connection, settings: Pop3Settings, ev: log.SessionEvents) -> None:
    ctx = session.ctx
    pending = 0
    limits = ctx.config.limits
    login_by = time.monotonic() + limits.login_timeout
    stopping = ctx.stopping.is_set
    retr_now = handlers.retr_now
    # RETR n answered in the transport's callback, without waking this task (not while stopping).
    answer_now = conn.line_hook(lambda line: retr_now(session, line), stopping, ev.tag)

    try:
        # RFC 1939 §4 greeting; the timestamp makes APOP possible (RFC 1939 §7).
        conn.write(ok(f"Postroom POP3 ready {session.timestamp}").encode())
        while True:
            if ctx.stopping.is_set():
                # Shutdown between commands: no UPDATE, the maildrop stays as it was.
                ev.result = "shutdown"
                await conn.send(err("Server shutting down", Code.SYS_TEMP).encode())
                return
            if pending >= FLUSH_AT or not conn.has_buffered_input():
                # Writes go straight to the socket; only a backlog needs waiting for.
                if conn.writer.transport.get_write_buffer_size():
                    await conn.drain()
                pending = 0
            limit = MAX_SASL_LINE if session.sasl is not None else MAX_COMMAND_LINE
            line = b""
            try:
                if session.state is State.AUTHORIZATION:  # before login: the short limits
                    timeout = within(login_by, min(settings.idle_timeout, limits.idle_timeout))
                else:
                    timeout = settings.idle_timeout
                # A RETR that arrives while this waits may be answered in the callback
                # (answer_now); only around this read, never during STLS's handshake.
                conn.answer_inline(answer_now if session.state is State.TRANSACTION else None)
                try:
                    line = await conn.readline(limit, timeout)
                finally:
                    conn.answer_inline(None)
            except LineTooLong:
                reply = commands.bad_command(session, "Line too long")
            except IdleTimeout:
                # RFC 1939 §3: the autologout timer ends the session without UPDATE.
                ev.result = "timeout"
                await conn.send(err("Disconnected for inactivity").encode())
                return
            else:
                now = retr_now(session, line)  # RETR n with its bytes at hand: no gate, no await
                if now is not None:
                    pending += conn.writelines(now)
                    continue
                reply = await commands.dispatch(session, line)
            # One write per reply: one send() for a RETR instead of two, and the
            # status line and body go out as they are (writev), without a joined copy.
            pending += conn.writelines(reply.chunks())
            if reply.action is Action.START_TLS:
                await conn.drain()
                await conn.start_tls()
                session.tls_started()
                logger.info("%s starttls %s", ev.tag, conn.tls_description() or "")
            elif reply.action is Action.CLOSE:
                # QUIT, or the server gave up (too many bad commands or failed logins)
                ev.result = "quit" if line[:4].upper() == b"QUIT" else "closed"
                await conn.drain()
                return
    except (ConnectionClosed, IdleTimeout):
        pass
    finally:
        await session.close()

