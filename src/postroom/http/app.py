"""The HTTP application: routes, request handlers, error and request-log policy.

Handlers return documents made by the pure modules beside this one (:mod:`.autoconfig`,
:mod:`.autodiscover`, :mod:`.mobileconfig`) from the :mod:`.clientconfig` offers; this
module only decides what a request asks for and turns failures into clear HTTP errors.
An unexpected exception is logged with its traceback and the client gets a bare
"500 Internal Server Error", never the exception text or a traceback page.

Which domain a request is about: the address it names (``emailaddress=``, ``email=``, the
Autodiscover ``EMailAddress``), else its Host (``autoconfig.example.org``). A domain we
do not serve gets the same 404 as an unknown path, so the server tells nothing about
which domains it has; an address in a served domain is answered without looking up
the account (whether a mailbox exists is not for anonymous callers to learn).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .. import log
from ..config import Config
from ..storage.api import has_room
from . import autoconfig, autodiscover, mobileconfig
from .clientconfig import Offer, domain_from_host, offers, split_address
from .settings import HttpSettings, read_settings

if TYPE_CHECKING:
    from ..context import ServerContext

logger = log.get("http")

CTX = web.AppKey("postroom_ctx", object)  # the ServerContext (typed loosely: aiohttp checks nothing)
XML = "application/xml"
_NOT_FOUND = "404: Not Found"  # the very body aiohttp gives an unknown path
DOCUMENT_CACHE = 4096
READY_CACHE = 1.0  # seconds a /readyz answer is reused: load balancers cannot make it a disk-write load


@dataclass(frozen=True, slots=True)
class HttpState:
    """Per-config state (dropped with ``ctx.state`` on SIGHUP, so a reload is seen at once)."""

    settings: HttpSettings
    config: Config
    bound: int  # listeners bound when the offers were made (port-0 ones are offered once bound)
    offers: list[Offer]
    # Rendered documents by (format, domain, address): the same clients ask again and again,
    # and a reload replaces the whole state, so nothing stale survives a config change.
    documents: dict[tuple[str, str, str | None], bytes] = field(default_factory=dict)
    signer: mobileconfig.Signer | None = None  # [http] sign_profiles

    def document(self, key: tuple[str, str, str | None], make: Callable[[], bytes]) -> bytes:
        doc = self.documents.get(key)
        if doc is None:
            doc = make()
            if len(self.documents) >= DOCUMENT_CACHE:
                self.documents.clear()  # bounded: a caller cycling through addresses gains nothing
            self.documents[key] = doc
        return doc


def state_for(ctx: ServerContext) -> HttpState:
    st = ctx.state.get("http")
    runtime = ctx.state.get("runtime")
    bound = getattr(runtime, "addresses", {}) if runtime is not None else {}
    if isinstance(st, HttpState) and st.config is ctx.config and st.bound == len(bound):
        return st
    settings = read_settings(ctx.config, [])
    signer = None
    if settings.sign_profiles:
        try:
            signer = mobileconfig.Signer(ctx.config.tls_cert, ctx.config.tls_key)
        except Exception as exc:  # checked at startup (check_settings); a bad renewal must not stop serving
            logger.error("cannot sign Apple profiles with %s: %s; serving them unsigned", ctx.config.tls_cert, exc)
    st = HttpState(settings, ctx.config, len(bound), offers(ctx.config, bound), signer=signer)
    ctx.state["http"] = st
    return st


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CTX]  # type: ignore[return-value]


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers or None)


def not_found() -> web.Response:
    return _text(404, _NOT_FOUND)


def _safe(text: str, limit: int = 200) -> str:
    """For log lines: printable ASCII only, so a request cannot forge or split lines."""
    out = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def _token(text: str, limit: int = 200) -> str:
    """:func:`_safe` for a space-separated field of the log line: a space is escaped too, so
    a decoded path (``/a%20200%20host=x``) cannot forge the fields after it."""
    return _safe(text, limit).replace(" ", "\\x20")


async def _served_domain(ctx: ServerContext, request: web.Request,
                         address: str | None) -> tuple[str, str | None] | web.Response:
    """(domain, checked address or None), or the error response to send."""
    if address:
        parts = split_address(address)
        if parts is None:
            return _text(400, "400 Bad Request: not an e-mail address\n")
        domain = parts[1]
        address = f"{parts[0]}@{domain}"
    else:
        found = domain_from_host(request.host)
        if found is None:
            return not_found()
        domain = found
    if not await ctx.is_local_domain(domain):
        return not_found()
    return domain, address


# -- Thunderbird ---------------------------------------------------------------------
async def thunderbird(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    st = state_for(ctx)
    found = await _served_domain(ctx, request, request.query.get("emailaddress"))
    if isinstance(found, web.Response):
        return found
    domain, address = found
    if not st.offers:
        return not_found()
    body = st.document(("autoconfig", domain, address), lambda: autoconfig.render(domain, st.offers, address))
    return web.Response(body=body, content_type=XML, charset="utf-8")


# -- Outlook ---------------------------------------------------------------------------
async def read_body(request: web.Request, limit: int, timeout: float) -> bytes | web.Response:
    """The whole body, or 413 (over ``limit``) / 408 (not all there within ``timeout``)."""
    if request.content_length is not None and request.content_length > limit:
        return _text(413, f"413 Request Entity Too Large: at most {limit} bytes\n", Connection="close")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    return _text(413, f"413 Request Entity Too Large: at most {limit} bytes\n", Connection="close")
                chunks.append(chunk)
    except TimeoutError:
        return _text(408, "408 Request Timeout\n", Connection="close")
    return b"".join(chunks)


def _pox(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8")


async def outlook(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    st = state_for(ctx)
    if request.method == "POST":
        body = await read_body(request, st.settings.max_body, st.settings.request_timeout)
        if isinstance(body, web.Response):
            return body
        try:
            req = autodiscover.parse_request(body)
        except autodiscover.BadRequest as exc:
            return _pox(400, autodiscover.render_error(600, f"Invalid Request: {exc}"))
        if not autodiscover.schema_supported(req.schema):
            return _pox(200, autodiscover.render_error(601, "Provider not found: only the Outlook "
                                                            "responseschema 2006a is served"))
        address: str | None = req.email
    else:  # GET: some clients (and people testing) ask with a query instead of a body
        address = request.query.get("email") or request.query.get("emailaddress")
    found = await _served_domain(ctx, request, address)
    if isinstance(found, web.Response):
        return found
    _domain, address = found
    if not st.offers:
        return not_found()
    return _pox(200, st.document(("autodiscover", "", address), lambda: autodiscover.render(st.offers, address)))


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter by name in any case (Outlook sends ``Email``, people type ``email``)."""
    return next((v for k, v in request.query.items() if k.lower() == name), None)


async def outlook_json(request: web.Request) -> web.StreamResponse:
    """Autodiscover v2: where the POX endpoint is (``Protocol=AutodiscoverV1``); see :mod:`.autodiscover`."""
    ctx = _ctx(request)
    st = state_for(ctx)
    found = await _served_domain(ctx, request, request.match_info.get("address") or _query(request, "email"))
    if isinstance(found, web.Response):
        return found
    runtime = ctx.state.get("runtime")
    url = autodiscover.pox_url(ctx.config, getattr(runtime, "addresses", {}) if runtime is not None else {})
    if url is None or not st.offers:
        return not_found()  # no HTTPS listener, or nothing to configure: as an unknown path
    status, body = autodiscover.render_json(_query(request, "protocol"), url)
    return web.Response(status=status, body=body, content_type="application/json", charset="utf-8")


# -- Apple -----------------------------------------------------------------------------
async def apple(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    st = state_for(ctx)
    email = request.query.get("email", "")
    if not email:
        return _text(400, "400 Bad Request: give the address as ?email=ADDRESS\n")
    found = await _served_domain(ctx, request, email)
    if isinstance(found, web.Response):
        return found
    domain, address = found
    assert address is not None
    body = mobileconfig.render(ctx.config.hostname, address, st.offers)
    if body is None:
        return not_found()
    if st.signer is not None:
        body = st.signer.sign(body)
    return web.Response(body=body, content_type=mobileconfig.CONTENT_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{domain}.mobileconfig"'})


# -- health ----------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is up and its event loop answers (a systemd watchdog or LB liveness probe)."""
    return _text(200, "ok\n")


def _probe_write(directory: str) -> None:
    """Create, fsync and remove a file where the store writes: a full or read-only disk fails here."""
    path = os.path.join(directory, f".readyz-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"ready\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)


async def _readiness(ctx: ServerContext) -> dict[str, str]:
    checks: dict[str, str] = {}
    checks["shutdown"] = "stopping" if ctx.stopping.is_set() else "ok"
    runtime = ctx.state.get("runtime")
    servers = list(getattr(runtime, "servers", []))
    checks["listeners"] = "ok" if servers and all(s.is_serving() for s in servers) else "not listening"
    try:
        await ctx.store.has_domain("readyz.invalid")  # the database answers
        if ctx.config.backend == "sqlite":  # PostgreSQL: the query above went to the server; no local file
            await asyncio.to_thread(_probe_write, str(ctx.config.data_dir))
        free = await ctx.store.free_space()
        checks["store"] = "ok" if has_room(free, ctx.config.limits.message_size) else "disk full"
    except Exception as exc:
        logger.warning("readyz: store not writable: %s", exc)
        checks["store"] = "not writable"
    return checks


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready for traffic: not shutting down, every listener up, the store writable."""
    ctx = _ctx(request)
    cached = ctx.state.get("http.ready")
    now = time.monotonic()
    if cached is not None and now - cached[0] < READY_CACHE and not ctx.stopping.is_set():
        checks = cached[1]
    else:
        checks = await _readiness(ctx)
        ctx.state["http.ready"] = (now, checks)
    ok = all(v == "ok" for v in checks.values())
    lines = "".join(f"{k}: {v}\n" for k, v in sorted(checks.items()))
    return _text(200 if ok else 503, ("ready\n" if ok else "not ready\n") + lines)


# -- the application -------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # aiohttp's own 404/405/413 …: short plain-text bodies
    except asyncio.CancelledError:
        raise
    except Exception:
        tag = getattr(request.protocol, "tag", "http")
        logger.exception("%s %s %s: unexpected error", tag, request.method, _safe(request.path))
        return _text(500, "500 Internal Server Error\n", Connection="close")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    # No software versions to scanners; no content sniffing of the XML.
    response.headers["Server"] = "Postroom"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if _ctx(request).stopping.is_set():
        # Shutting down: the HTTP listeners are open only until the mail sessions finish, so
        # no connection is kept alive (and none holds the shutdown up). aiohttp has written its
        # Connection header before this hook runs: set it as well as closing.
        response.force_close()
        response.headers["Connection"] = "close"


def _optional(name: str) -> Any:
    """A module of this package written by another part of issue #16, when present."""
    import importlib

    try:
        return importlib.import_module(f"postroom.http.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"postroom.http.{name}":
            return None
        raise


def build(ctx: ServerContext) -> web.Application:
    app = web.Application(middlewares=[errors], handler_args=None)
    app[CTX] = ctx
    app.on_response_prepare.append(_headers)
    r = app.router
    for path in ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"):
        r.add_get(path, thunderbird)
    # Outlook sends both spellings; aiohttp's router is case-sensitive.
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        r.add_post(path, outlook)
        r.add_get(path, outlook)
    for path in ("/autodiscover/autodiscover.json", "/Autodiscover/Autodiscover.json"):
        r.add_get(path, outlook_json)
        r.add_get(path + "/v1.0/{address}", outlook_json)
    r.add_get("/apple/profile", apple)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    # MTA-STS policy (RFC 8461 §3.3): postroom.http.mtasts provides
    # ``async def handle(request: web.Request) -> web.Response``.
    mtasts = _optional("mtasts")
    if mtasts is not None and hasattr(mtasts, "handle"):
        r.add_get("/.well-known/mta-sts.txt", mtasts.handle)
    # Prometheus /metrics mounts here: postroom.http.metrics provides
    # ``async def handle(request: web.Request) -> web.StreamResponse`` and answers only on the
    # listeners allowed to expose it (``listener_of(request)`` says which one a request came in on).
    metrics = _optional("metrics")
    if metrics is not None and hasattr(metrics, "handle"):
        r.add_get("/metrics", metrics.handle)
    # The web administration pages and JSON API (issue #21, docs/web-dev.md): its own
    # middleware keeps them to https listeners and loopback clients of http ones.
    from ..web import mount as mount_web

    mount_web(app, ctx)
    return app


def listener_of(request: web.Request) -> str:
    """The name of the listener the request came in on (for listener-restricted endpoints)."""
    return str(getattr(request.protocol, "listener_name", ""))


class AccessLog(AbstractAccessLogger):
    """One line per request, tagged like the mail sessions' lines::

        postroom.http: https[3F2A9C01B7] 203.0.113.5 GET /mail/config-v1.1.xml 200 512 0.4ms host=autoconfig.example.org
    """

    def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
        tag = getattr(request.protocol, "tag", "http")
        try:
            host, path, method = request.host, request.path, request.method
        except Exception:  # the request line did not parse (a 400 aiohttp made itself)
            host, path, method = "-", "-", "-"
        ua = request.headers.get("User-Agent", "") if hasattr(request, "headers") else ""
        refused = getattr(request.protocol, "refused", None)
        if refused:
            request.protocol.refused = None
        self.logger.info("%s %s %s %d %d %.1fms host=%s%s%s", tag, _token(method, 16), _token(path), response.status,
                         response.body_length, time * 1000, _token(host or "-", 100),
                         f" ua={_safe(ua, 80)!r}" if ua else "", f" error={_safe(refused, 120)!r}" if refused else "")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(20)  # INFO: the bench runs at warning and skips the work
