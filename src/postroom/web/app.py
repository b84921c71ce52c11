"""The web UI's middleware: who may reach it, who is signed in, and the headers of every page.

Web paths (:data:`PREFIXES`) are served on the ``https`` listeners; on a plain ``http``
listener only to loopback clients (a browser on the server itself, or an SSH tunnel),
and to anybody else exactly the 404 of an unknown path, as if the UI were absent: a
password must never cross a network in clear. ``[web] enabled = false`` gives that 404
everywhere. Other paths (autoconfig, health, metrics) pass through untouched.

For a web path the middleware reads the session cookie (or, on ``/api/``, a Bearer
token) and sets ``request[keys.VIEWER]``; the per-route wrappers (:func:`page_handler`,
:mod:`.api`) then check the role and the CSRF token before the handler runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .. import log
from ..config import Config
from . import keys
from .errors import Forbidden, WebError
from .identity import identity_for
from .render import error_page, read_flash, safe_next
from .sessions import COOKIE, REFRESH, Session, Signer, load_secret
from .settings import WebSettings, read_settings
from .site import Page, Role, Site, Viewer, ctx_of, form

if TYPE_CHECKING:
    from ..context import ServerContext

logger = log.get("web")

PREFIXES = ("/login", "/logout", "/totp", "/admin", "/settings", "/api", "/static")
ANON_COOKIE = "postroom_anon"  # the CSRF nonce of a browser not signed in (login form)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SITE = web.AppKey("postroom_web_site", Site)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True, slots=True)
class WebState:
    """Per-config (replaced on SIGHUP with ``ctx.state``)."""

    settings: WebSettings
    config: Config
    signer: Signer


def web_state(ctx: ServerContext) -> WebState:
    st = ctx.state.get("web")
    if isinstance(st, WebState) and st.config is ctx.config:
        return st
    settings = read_settings(ctx.config, [])
    key = load_secret(settings.secret_path(ctx.config))
    st = WebState(settings, ctx.config, Signer(key, settings.idle_timeout, settings.session_lifetime))
    ctx.state["web"] = st
    return st


def site_of(request: web.Request) -> Site:
    return request.app[SITE]


def is_web_path(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PREFIXES)


def is_tls(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def _loopback(ip: str | None) -> bool:
    try:
        addr = ipaddress.ip_address((ip or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def allowed(request: web.Request) -> bool:
    """HTTPS from anywhere; plain HTTP from loopback only."""
    return is_tls(request) or _loopback(request.remote)


def wants_json(request: web.Request) -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def json_error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


def set_session_cookie(request: web.Request, session: Session | None) -> None:
    """Have the response (re)write the session cookie, or expire it (None)."""
    request[keys.SET_SESSION] = session


async def _load_session(request: web.Request, st: WebState) -> None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return
    session = st.signer.decode(raw)
    account = None
    if session is not None:
        ident = identity_for(ctx_of(request))
        account = await ident.account_by_id(session.account_id)
        if account is not None and await ident.session_ended(session.digest):
            account = None  # logged out (this cookie may be a copy of the one logout expired)
    if (session is None or account is None or account.disabled or account.address != session.address
            or account.session_epoch != session.epoch):
        set_session_cookie(request, None)  # expired, tampered, logged out (everywhere): forget it
        return
    request[keys.SESSION] = session
    if session.pending:
        return  # password given, TOTP due: only /totp will look at it
    request[keys.VIEWER] = Viewer(account.id, account.address, account.is_admin, st.signer.csrf_token(session))
    now = time.time()
    if now - session.seen >= REFRESH:
        set_session_cookie(request, session.touched(now))


async def _load_token(request: web.Request, header: str) -> bool:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    account = await identity_for(ctx_of(request)).account_for_api_token(token.strip())
    if account is None or account.disabled or not account.is_admin:
        return False
    request[keys.VIEWER] = Viewer(account.id, account.address, True, "", via_token=True)
    return True


def _anon_csrf(request: web.Request, st: WebState) -> None:
    nonce = request.cookies.get(ANON_COOKIE, "")
    if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
        nonce = secrets.token_urlsafe(18)
        request[keys.SET_ANON] = nonce
    request[keys.ANON_NONCE] = nonce
    request[keys.ANON_CSRF] = st.signer.csrf_token(Session(0, "", 0, 0, 0, "anon:" + nonce))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_web_path(request.path):
        return await handler(request)
    ctx = ctx_of(request)
    st = web_state(ctx)
    if not st.settings.enabled or not allowed(request):
        raise web.HTTPNotFound()  # as if there were no web UI here
    request[keys.WEB] = True
    try:
        auth = request.headers.get("Authorization")
        if auth is not None and wants_json(request):
            if not await _load_token(request, auth):
                return json_error(401, "the API token is not valid")
        else:
            await _load_session(request, st)
            if keys.VIEWER not in request:
                _anon_csrf(request, st)
        request[keys.FLASH] = read_flash(request)
        return await handler(request)
    except WebError as exc:
        return json_error(exc.status, exc.message, exc.field) if wants_json(request) else error_page(
            request, exc.status, exc.message)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        tag = getattr(request.protocol, "tag", "http")
        logger.exception("%s %s %s: unexpected error", tag, request.method, request.path[:200])
        return json_error(500, "internal error") if wants_json(request) else web.Response(
            status=500, text="500 Internal Server Error\n", content_type="text/plain")


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers and cookie changes on every web response (errors included)."""
    if not request.get(keys.WEB):
        return
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"
    # Pages show private data: never cached. The CSS and JS may be, briefly.
    h["Cache-Control"] = "max-age=3600" if request.path.startswith("/static/") else "no-store"
    secure = is_tls(request)
    if secure:
        h["Strict-Transport-Security"] = "max-age=31536000"
    # aiohttp has turned response.set_cookie() calls into headers before this hook runs: add the lines.
    if keys.SET_SESSION in request:
        session = request[keys.SET_SESSION]
        value = web_state(ctx_of(request)).signer.encode(session) if isinstance(session, Session) else None
        h.add("Set-Cookie", cookie_line(COOKIE, value, secure))
    if keys.SET_ANON in request:
        h.add("Set-Cookie", cookie_line(ANON_COOKIE, request[keys.SET_ANON], secure))


def cookie_line(name: str, value: str | None, secure: bool) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Strict, Secure over TLS; None expires it.

    No Max-Age on a live cookie: it ends with the browser, and the server enforces the
    idle and absolute limits itself from the times signed inside it."""
    flags = "; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    if value is None:
        return f"{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{flags}"
    return f"{name}={value}{flags}"


def csrf_ok(request: web.Request, sent: str | None) -> bool:
    st = web_state(ctx_of(request))
    session = request.get(keys.SESSION)
    if isinstance(session, Session) and keys.VIEWER in request:
        return st.signer.csrf_ok(session, sent)
    nonce = request.get(keys.ANON_NONCE)
    if not nonce or keys.SET_ANON in request:
        return False  # a fresh anonymous nonce: no page carrying its token was ever served
    return st.signer.csrf_ok(Session(0, "", 0, 0, 0, "anon:" + str(nonce)), sent)


async def check_csrf(request: web.Request) -> None:
    """The form field ``csrf`` or the ``X-CSRF-Token`` header must be this session's token."""
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type == "application/x-www-form-urlencoded":
        sent = (await form(request)).get("csrf")
    if not csrf_ok(request, sent):
        raise Forbidden("the form has expired or did not come from this site: reload the page and try again")


def page_handler(page: Page) -> Handler:
    """Role check, CSRF check, then the page's own handler."""

    async def handle(request: web.Request) -> web.StreamResponse:
        v = request.get(keys.VIEWER)
        if page.role is not Role.PUBLIC:
            if not isinstance(v, Viewer) or v.via_token:
                target = request.path_qs if request.method == "GET" else request.path
                return web.Response(status=303, headers={"Location": "/login?next=" + _quote(safe_next(target))})
            if page.role is Role.ADMIN and not v.is_admin:
                raise Forbidden("this page is for administrators")
        if request.method not in SAFE_METHODS and page.csrf:
            await check_csrf(request)
        return await page.handler(request)

    return handle


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
