"""HTTP and HTTPS listeners: aiohttp fed from the connections the runtime accepted.

The runtime (``postroom.server``) accepts HTTP connections like every other: same
listening sockets code (SO_REUSEPORT across workers), same TLS context (implicit TLS,
the certificate reloaded on SIGHUP), same connection limits and per-IP counts, same
shutdown. :func:`handle` then moves the accepted transport from the runtime's stream
reader to an aiohttp ``RequestHandler`` (the protocol object aiohttp's own servers use)
with ``transport.set_protocol``, hands it whatever the client already sent, and waits
for the connection to end. aiohttp parses HTTP (its C parser), keeps connections alive
and runs the application of :mod:`.app`.

Why not a separate aiohttp server per listener: its connections would bypass the
runtime's limits, count and shutdown, and it would need its own TLS context reloaded
separately. See docs/http.md.

Timeouts: ``[http] keepalive_timeout`` bounds both the wait between requests and the
wait for a request's head (aiohttp's keep-alive timer runs from the connection's start
or the last response, and closes a connection whose next request has not arrived in
full by then: a slowloris client trickling header bytes is cut off);
``request_timeout`` bounds reading a body. At shutdown every connection is asked to
finish the request in flight and close (aiohttp's ``shutdown``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from .. import log
from ..config import Config, Listener
from ..context import ServerContext
from ..net.connection import Connection
from . import app as _app
from . import metrics as _metrics
from .mobileconfig import Signer
from .settings import read_settings

logger = log.get("http")

# Limits of the request head (aiohttp's defaults, stated here so they are ours): a longer
# request line or header field gets 400 from the parser.
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 64
LINGER = 2.0  # seconds to drain an unread request body before closing
SHUTDOWN_GRACE = 10.0
# While shutting down, the HTTP listeners stay open until the mail sessions have finished (so
# that /readyz can say 503); a connection opened then must send its request within this.
DRAINING_HEAD_TIMEOUT = 2.0


def check_settings(cfg: Config, problems: list[str]) -> None:
    settings = read_settings(cfg, problems)
    _metrics.check_settings(cfg, problems)  # [http.metrics]
    if settings.sign_profiles and cfg.tls_cert.is_file() and cfg.tls_key.is_file():
        try:
            Signer(cfg.tls_cert, cfg.tls_key).sign(b"")
        except Exception as exc:  # any parse or key-type error: report it plainly
            problems.append(f"http.sign_profiles: cannot sign with {cfg.tls_cert}: {exc}")
    for lst in cfg.listeners:
        if lst.protocol == "http" and lst.tls == "starttls":
            problems.append(f"listeners.{lst.name}.tls: HTTP has no STARTTLS; use \"implicit\" (HTTPS) or \"none\"")


class _Handler(RequestHandler):
    """aiohttp's per-connection protocol, plus what the log lines and endpoints need."""

    tag: str
    listener_name: str
    # Why aiohttp's parser refused the request, for the request's log line.
    refused: str | None = None

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            # The client sent something that is not HTTP: the reason goes on the request's
            # one log line (AccessLog).
            self.refused = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
        resp = super().handle_error(request, status, exc, message)
        resp.headers["Server"] = "Postroom"  # made outside the application: no version to scanners
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            return  # the client's fault, not ours: no traceback (see handle_error)
        logger.error("%s " + str(args[0] if args else "error"), self.tag, *args[1:],
                     exc_info=exc if exc is not None else True)


class _Bridge(asyncio.Protocol):
    """Stands between the transport and aiohttp's handler for the connection's life.

    Forwards everything, and when the connection is lost also tells the runtime's
    original stream protocol (so the runtime's close does not wait for an end it would
    otherwise never hear of) and wakes :func:`handle`.
    """

    def __init__(self, handler: _Handler, original: Any, done: asyncio.Future[None]) -> None:
        self.handler = handler
        self.original = original
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        self.handler.eof_received()
        return None  # as aiohttp's own servers: the transport closes once the reply is written

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.handler.connection_lost(exc)
        finally:
            if self.original is not None:
                self.original.connection_lost(exc)
            if not self.done.done():
                self.done.set_result(None)


class HttpRuntime:
    """The aiohttp application of one worker process and the connections it serves."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        # Connections are closed by the runtime's shutdown before cleanup; none should be left to wait for.
        self.runner = web.AppRunner(_app.build(ctx), handle_signals=False, access_log=None,
                                    shutdown_timeout=SHUTDOWN_GRACE)
        self.live: set[_Handler] = set()
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.runner.setup()
        self._watch = asyncio.create_task(self._close_at_shutdown(), name="postroom-http-shutdown")

    async def _close_at_shutdown(self) -> None:
        await self.ctx.stopping.wait()
        await asyncio.gather(*(_finish(h) for h in list(self.live)), return_exceptions=True)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self.runner.cleanup()


async def _finish(handler: _Handler) -> None:
    """Shutdown: finish the request in flight, close an idle keep-alive connection now."""
    handler.close()  # wakes a handler waiting for the next request (aiohttp's pre_shutdown)
    await handler.shutdown(SHUTDOWN_GRACE)


_RUNTIMES: dict[int, HttpRuntime] = {}  # by id(ctx): one per running server (tests run several)


async def start_services(ctx: ServerContext) -> None:
    if any(lst.protocol == "http" for lst in ctx.config.listeners):
        await _runtime(ctx)


async def stop_services(ctx: ServerContext) -> None:
    rt = _RUNTIMES.pop(id(ctx), None)
    if rt is not None:
        await rt.stop()


async def _runtime(ctx: ServerContext) -> HttpRuntime:
    rt = _RUNTIMES.get(id(ctx))
    if rt is None or rt.ctx is not ctx:
        rt = HttpRuntime(ctx)
        _RUNTIMES[id(ctx)] = rt
        await rt.start()
    return rt


async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None:
    rt = _RUNTIMES.get(id(ctx))
    if rt is None or rt.ctx is not ctx:
        rt = await _runtime(ctx)
    settings = _app.state_for(ctx).settings
    loop = asyncio.get_running_loop()
    manager = rt.runner.server
    assert manager is not None  # set up by HttpRuntime.start
    draining = ctx.stopping.is_set()
    head_timeout = min(settings.keepalive_timeout, DRAINING_HEAD_TIMEOUT) if draining else settings.keepalive_timeout
    handler = _Handler(manager, loop=loop, keepalive_timeout=head_timeout,
                       access_log_class=_app.AccessLog, access_log=logger, logger=logger,
                       max_line_size=MAX_LINE, max_field_size=MAX_FIELD, max_headers=MAX_HEADERS,
                       lingering_time=LINGER)
    handler.tag = f"{listener.name}[{log.new_id()}] {conn.peer_ip}"
    handler.listener_name = listener.name
    transport: Any = conn.writer.transport
    done: asyncio.Future[None] = loop.create_future()
    bridge = _Bridge(handler, transport.get_protocol(), done)
    if transport.is_closing():
        return
    transport.set_protocol(bridge)
    rt.live.add(handler)
    try:
        bridge.connection_made(transport)
        # Whatever arrived before the switch sits in the connection's buffer.
        data, eof = conn.reader.hand_over()
        if data:
            bridge.data_received(data)
        if eof:
            bridge.eof_received()
        # Accepted while shutting down: the request is answered with "Connection: close"
        # (app._headers), and /readyz says 503.
        await done
    except asyncio.CancelledError:
        transport.abort()  # the runtime gave up waiting at shutdown
        raise
    finally:
        rt.live.discard(handler)
