"""NNTP and NNTPS listeners: asyncio glue between a Connection and the session.

Reads one command line at a time (RFC 3977 §3.1: at most 512 octets), hands it to
:func:`.commands.dispatch`, writes the reply. When a handler asks for an article
(POST, and IHAVE/TAKETHIS from :mod:`.peering`) the dot-terminated block is read here
with ``wire.dotstuff.DataReader``, bounded by ``[nntp] max_article_size`` and the
process's message memory budget: a larger article is read to its end and dropped, so
the session stays in sync and nothing is stored half. Replies are gathered and written
only when the client has nothing more pipelined (RFC 3977 §3.5), so a batch of commands
gets its replies in one write. ARTICLE/HEAD/BODY/STAT by number, when everything they need
is at hand, skip the gate (``handlers.article_now``); one that arrives alone while this
waits for a line is answered in the transport's callback, without waking the task
(``Connection.answer_inline``; docs/nntp.md, "ARTICLE answered where it is read").
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from .. import log
from ..auth import session_settings
from ..budget import budget_for
from ..config import Config, Listener
from ..context import ServerContext
from ..net.connection import (
    Connection,
    ConnectionClosed,
    IdleTimeout,
    LineTooLong,
)
from ..wire.dotstuff import DataReader
from . import commands
from .handlers import article_now, greeting
from .proto import (
    MAX_SASL_LINE,
    Action,
    ArticleHandler,
    ReadArticle,
    Reply,
    Response,
    State,
    reply,
)
from .session import Session
from .settings import NntpSettings, read_settings

if TYPE_CHECKING:
    from ..news.service import News

logger = log.get("nntp")
# Flush once this much is queued even if the client keeps pipelining, so a client
# that never reads cannot make us buffer a whole group.
FLUSH_AT = 256 * 1024
# An article arriving slower than this (after a grace period) is cut off: a trickle
# cannot hold a connection and its buffer for ever.
_ARTICLE_GRACE = 60.0
_ARTICLE_MIN_RATE = 1024  # octets per second


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> NntpSettings:
    return session_settings.cached(ctx, "nntp", NntpSettings, read_settings)


# -- the News service of this process ---------------------------------------------------
# One News per worker process (docs/nntp.md). ServerContext has slots and its ``state`` is
# cleared on SIGHUP, so the instance is kept here, by context.
_news: dict[int, News] = {}


async def news_for(ctx: ServerContext) -> News:
    from ..news.service import News

    news = _news.get(id(ctx))
    if not isinstance(news, News):
        settings_for(ctx)
        news = await News.open(ctx)
        _news[id(ctx)] = news
    return news


async def start_services(ctx: ServerContext) -> None:
    settings_for(ctx)  # News.open reads the [nntp] settings from ctx.state["nntp"]
    await news_for(ctx)
    # the outgoing feed to the configured peers (docs/nntp.md, "Peering")
    from . import feed

    await feed.start(ctx)


async def stop_services(ctx: ServerContext) -> None:
    from . import feed

    await feed.stop(ctx)
    news = _news.pop(id(ctx), None)
    if news is not None:
        await news.close()


# -- one connection -------------------------------------------------------------------------
async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    settings = settings_for(ctx)
    session = Session(ctx, settings, await news_for(ctx), conn.peer_ip, tls_active=conn.tls_active,
                      tls_available=ctx.tls is not None and conn.server_tls is not None)
    with log.SessionEvents(logger, listener.name, conn, lambda: session.user) as ev:
        session.tag = ev.tag
        await _serve(session, conn, ev)


async def _serve(session: Session, conn: Connection, ev: log.SessionEvents) -> None:
    ctx = session.ctx
    settings = session.settings
    stopping = ctx.stopping.is_set
    # Before login the short [limits] idle timeout applies, as for POP3 and IMAP. There is no
    # login deadline: anonymous readers of open groups never log in.
    short_idle = min(settings.idle_timeout, ctx.config.limits.idle_timeout)
    # The replies not written yet: those of pipelined commands go out together, in one write,
    # once the client has nothing more buffered (RFC 3977 §3.5) or FLUSH_AT octets are queued.
    out: list[bytes] = []
    pending = 0
    dispatch = commands.dispatch
    # Looked up once: an Enum member lookup is a Python-level attribute access on 3.11.
    authenticated = State.AUTHENTICATED
    no_action = Action.NONE
    answer_inline = conn.answer_inline
    # ARTICLE/HEAD/BODY/STAT n answered in the transport's callback, without waking this task,
    # once every earlier reply is written and while the server is not stopping.
    # (a partial, not a lambda: no Python frame of its own per command)
    answer_now = conn.line_hook(partial(article_now, session), lambda: bool(out) or stopping(), ev.tag)

    async def flush() -> None:
        nonlocal pending
        if out:
            conn.writelines(out)
            out.clear()
            pending = 0
        if conn.writer.transport.get_write_buffer_size():
            await conn.drain()

    try:
        # RFC 3977 §5.1: 200 or 201 (posting allowed or not); 502 would be a refusal.
        out += (await greeting(session)).chunks()
        while True:
            if stopping():
                ev.result = "shutdown"
                out.append(reply(400, "Server shutting down").encode())
                await flush()
                return
            if pending >= FLUSH_AT or not conn.has_buffered_input():
                # flush() inline: no coroutine per command when the kernel takes it all.
                if out:
                    conn.writelines(out)
                    out.clear()
                    pending = 0
                if conn.writer.transport.get_write_buffer_size():  # (STARTTLS replaces it)
                    await conn.drain()
            # Up to the AUTHINFO SASL limit; dispatch holds other commands to 512 octets.
            line = b""
            response: Response
            try:
                # Lines that arrive while this waits may be answered in the callback (answer_now);
                # only around this read: never while an article or a TLS handshake is read.
                answer_inline(answer_now)
                try:
                    line = await conn.readline(MAX_SASL_LINE, settings.idle_timeout
                                               if session.state is authenticated else short_idle)
                finally:
                    answer_inline(None)
            except LineTooLong:
                # RFC 3977 §3.1: an overlong line is an error; we answer 500 and carry on
                # (the rest of the line was read and dropped, the session is in sync).
                session.sasl = None
                response = commands.bad_command(session, 500, "Line too long")
            except IdleTimeout:
                ev.result = "timeout"
                out.append(reply(400, "Timeout, closing connection").encode())
                await flush()
                return
            else:
                # ARTICLE/HEAD/BODY n with everything at hand: answered in this step, no
                # dispatch (the same reply; anything unusual gives None and is dispatched).
                now = article_now(session, line)
                if now is not None:
                    out += now
                    for c in now:
                        pending += len(c)
                    continue
                response = await dispatch(session, line)
            if isinstance(response, ReadArticle):
                out += response.chunks()
                await flush()  # the client waits for 340/335 before it sends
                answer = await _read_article(session, conn, response.then, response.busy)
            else:
                answer = response
            chunks = answer.chunks()
            out += chunks
            for c in chunks:
                pending += len(c)
            if answer.action is not no_action:
                await flush()
                if answer.action is Action.START_TLS:
                    await conn.start_tls()
                    session.tls_started()
                    logger.info("%s starttls %s", ev.tag, conn.tls_description() or "")
                elif answer.action is Action.CLOSE:
                    ev.result = "quit" if line[:4].upper() == b"QUIT" else "closed"
                    return
    except (ConnectionClosed, IdleTimeout):
        pass


async def _read_article(s: Session, conn: Connection, then: ArticleHandler, busy: Reply) -> Reply:
    """Read one dot-terminated article and hand it (or None: too large) to ``then``."""
    reader = DataReader(s.settings.max_article_size)
    budget = budget_for(s.ctx)
    held = seen = 0
    no_room = False
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            # The deadline grows with what has arrived: a big article on a slow line is
            # fine, a trickle is not.
            allowed = _ARTICLE_GRACE + seen / _ARTICLE_MIN_RATE
            chunk = await conn.read_some(max(allowed - elapsed, 0.001))
            seen += len(chunk)
            if not reader.too_big:
                if budget.take(len(chunk)):
                    held += len(chunk)
                else:
                    no_room = True
                    reader.drop_rest()
            if reader.feed(chunk):
                break
        if reader.leftover:
            conn.unread(reader.leftover)  # pipelined commands after the article
        if no_room:
            # Other sessions hold the process's message memory: refused for now, not for ever.
            logger.warning("%s article refused: [limits] message_memory is in use", s.tag)
            return busy
        try:
            result = await then(s, None if reader.too_big else reader.body)
        except Exception:
            s.ctx.log.exception("nntp: storing an article failed for %s", s.peer_ip)
            return reply(403, "Internal fault")
        if not isinstance(result, Reply):  # a handler must answer with a status line now
            s.ctx.log.error("nntp: an article handler returned %r", result)
            return reply(403, "Internal fault")
        return result
    finally:
        budget.give_back(held)
