"""ManageSieve listener (RFC 5804, port 4190): asyncio glue between a Connection and the session.

Reads a command's lines and literals as the :class:`.proto.Framer` asks, hands the
finished command to :func:`.commands.dispatch`, writes the reply. Before login the
short timeouts of ``[limits]`` and the small line and literal limits apply, and the
whole login must happen within ``limits.login_timeout``, as for POP3 and IMAP.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import log
from ..auth import session_settings
from ..config import Config, Listener
from ..context import ServerContext
from ..net.connection import (
    Connection,
    ConnectionClosed,
    IdleTimeout,
    LineTooLong,
    within,
)
from ..sieve.settings import SieveSettings
from ..sieve.settings import settings_for as sieve_settings_for
from . import commands
from .handlers import capability_lines
from .proto import (
    MAX_LINE,
    MAX_LINE_PREAUTH,
    MAX_LITERAL_PREAUTH,
    MAX_NAME_LITERAL,
    Action,
    Code,
    Command,
    Framer,
    NeedLiteral,
    Reply,
    Response,
    State,
    TooLarge,
    bye,
    ok,
)
from .session import Session
from .settings import ManageSieveSettings, read_settings

logger = log.get("managesieve")
_DISCARD_CHUNK = 64 * 1024


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> ManageSieveSettings:
    return session_settings.cached(ctx, "managesieve", ManageSieveSettings, read_settings)


def literal_limits(session: Session, sieve: SieveSettings) -> Callable[[bytes], tuple[int, int]]:
    """(largest literal kept, largest read and dropped) for a command's verb: a script
    for PUTSCRIPT/CHECKSCRIPT after login, a name otherwise, a SASL response before login.
    A script a little over the limit is read and refused with QUOTA/MAXSIZE (the client
    sent it already, RFC 5804 §4 literals do not wait); far over it ends the session."""
    def limits(verb: bytes) -> tuple[int, int]:
        if session.state is State.NONAUTH:
            return MAX_LITERAL_PREAUTH, MAX_LITERAL_PREAUTH
        if verb in (b"PUTSCRIPT", b"CHECKSCRIPT"):
            return sieve.max_script_size, max(4 * sieve.max_script_size, 1 << 20)
        return MAX_NAME_LITERAL, MAX_NAME_LITERAL
    return limits


async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    settings = settings_for(ctx)
    session = Session(ctx, settings, sieve_settings_for(ctx), conn.peer_ip, tls_active=conn.tls_active,
                      tls_available=ctx.tls is not None and conn.server_tls is not None)
    with log.SessionEvents(logger, listener.name, conn,
                           lambda: session.account.address if session.account else None) as ev:
        session.tag = ev.tag
        await _serve(session, conn, ev)


async def _serve(session: Session, conn: Connection, ev: log.SessionEvents) -> None:
    ctx = session.ctx
    limits = ctx.config.limits
    login_by = time.monotonic() + limits.login_timeout
    framer = Framer(literal_limits(session, session.sieve))

    def timeout() -> float:
        if session.state is State.NONAUTH:  # before login: the short limits
            return within(login_by, min(session.settings.idle_timeout, limits.idle_timeout))
        return session.settings.idle_timeout

    try:
        # RFC 5804 §1.7: the greeting is the capability list and OK.
        conn.writelines(ok("Postroom ManageSieve ready", data=capability_lines(session)).chunks())
        while True:
            if ctx.stopping.is_set():
                ev.result = "shutdown"
                await conn.send(bye("Server shutting down", Code.TRYLATER).status_line())
                return
            if not conn.has_buffered_input() and conn.writer.transport.get_write_buffer_size():
                await conn.drain()
            reply: Response
            try:
                event = framer.feed_line(await conn.readline(_line_limit(session), timeout()))
                while isinstance(event, NeedLiteral):
                    if event.discard:
                        await _discard(conn, event.size, timeout)
                        framer.feed_literal(b"")
                    else:
                        framer.feed_literal(await conn.readexactly(event.size, timeout()))
                    event = framer.feed_line(await conn.readline(_line_limit(session), timeout()))
            except LineTooLong:
                framer.reset()
                session.sasl = None
                reply = commands.bad_command(session, "Line too long")
            except IdleTimeout:
                ev.result = "timeout"
                await conn.send(bye("Disconnected for inactivity").status_line())
                return
            else:
                if isinstance(event, TooLarge):
                    ev.result = "closed"
                    await conn.send(bye("Literal too large").status_line())
                    return
                assert isinstance(event, Command)
                reply = await commands.dispatch(session, event)
            conn.writelines(reply.chunks())
            if reply.action is Action.START_TLS:
                await conn.drain()
                await conn.start_tls()
                session.tls_started()
                logger.info("%s starttls %s", ev.tag, conn.tls_description() or "")
                # RFC 5804 §2.2: after the handshake the server re-issues its capabilities.
                conn.writelines(ok(data=capability_lines(session)).chunks())
            elif reply.action is Action.CLOSE:
                ev.result = "logout" if isinstance(reply, Reply) and reply.ok else "closed"
                await conn.drain()
                return
    except (ConnectionClosed, IdleTimeout):
        pass


def _line_limit(session: Session) -> int:
    return MAX_LINE if session.state is State.AUTH else MAX_LINE_PREAUTH


async def _discard(conn: Connection, size: int, timeout: Callable[[], float]) -> None:
    """Read and drop an over-limit literal without holding it in memory."""
    while size > 0:
        n = min(size, _DISCARD_CHUNK)
        await conn.readexactly(n, timeout())
        size -= n
