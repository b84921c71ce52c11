"""Login, the TOTP step, logout, and enrolling or removing the second factor.

The password goes through the mail protocols' authenticator
(``ctx.auth.authenticate``), so a guesser meets the same per-IP and per-user counters
whether they try IMAP or the login form, and a TOTP code that is wrong (or used before)
counts as one more failure on those counters. App passwords are refused here (``app_passwords=False``):
a password kept on a phone's mail app must not manage the account.

A TOTP code is accepted once (RFC 6238 §5.2): the store keeps the time step of the last
code accepted for the account and takes a code only if its step is later, in one
compare-and-set UPDATE, so a code seen over a shoulder or relayed by a phishing proxy
cannot open a second session, even on another worker or node. Enrolling, logging in and
turning the factor off all use up the code's step.

A login always makes a new session (new nonce, so a new CSRF token): a cookie planted
before the login (session fixation) is worth nothing after it.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from aiohttp import web

from . import keys, totp
from .app import check_csrf, set_session_cookie, web_state
from .errors import Invalid
from .identity import WebAccount, identity_for
from .render import redirect, render, safe_next
from .sessions import Session
from .site import Role, Site, ctx_of, form, maybe_viewer, viewer

ENROL_TTL = 600.0  # seconds a generated TOTP secret waits for its confirming code
FAILED = "Wrong address or password."
WRONG_CODE = "That code is not right or was used already; try the next one."
THROTTLED = "Too many failed logins from your address; wait a few minutes."


def setup(site: Site) -> None:
    site.page("GET", "/login", login_form, role=Role.PUBLIC)
    site.page("POST", "/login", login, role=Role.PUBLIC)
    site.page("GET", "/totp", totp_form, role=Role.PUBLIC)
    site.page("POST", "/totp", totp_check, role=Role.PUBLIC)
    site.page("POST", "/logout", logout, role=Role.PUBLIC, csrf=False)
    site.page("GET", "/settings/totp", totp_settings, role=Role.USER)
    site.page("POST", "/settings/totp", totp_change, role=Role.USER)
    site.page("POST", "/settings/logout-everywhere", logout_everywhere, role=Role.USER)


def _login_page(request: web.Request, values: dict[str, str], error: str | None, status: int) -> web.Response:
    return render(request, "login.html", {"values": values, "errors": {"": error} if error else {}}, status=status)


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(keys.VIEWER) is not None:
        return redirect(request, safe_next(request.query.get("next")))
    return _login_page(request, {"next": safe_next(request.query.get("next"))}, None, 200)


def _start(request: web.Request, account: WebAccount, pending: bool) -> Session:
    session = web_state(ctx_of(request)).signer.new(account.id, account.address, account.session_epoch, pending)
    set_session_cookie(request, session)
    return session


async def login(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    fields = await form(request)
    username = fields.get("username", "").strip()
    password = fields.get("password", "")
    target = safe_next(fields.get("next"))
    values = {"username": username, "next": target}
    if not username or not password:
        return _login_page(request, values, "Enter your address and password.", 400)
    if len(username) > 320 or len(password) > 1024:
        return _login_page(request, values, FAILED, 403)
    result = await ctx.auth.authenticate(username, password, request.remote or "", app_passwords=False)
    if result.throttled:
        return _login_page(request, values, THROTTLED, 429)
    account = await identity_for(ctx).account(result.account.address) if result.account is not None else None
    if account is None or account.disabled:
        return _login_page(request, values, FAILED, 403)
    if account.totp_secret:
        _start(request, account, pending=True)
        return redirect(request, "/totp?next=" + quote(target, safe="/"))
    _start(request, account, pending=False)
    return redirect(request, target)


def _pending(request: web.Request) -> Session | None:
    session = request.get(keys.SESSION)
    return session if isinstance(session, Session) and session.pending else None


async def _use_code(request: web.Request, account: WebAccount | None, code: str) -> bool:
    """True if ``code`` is the account's current TOTP code and its time step is later than
    any accepted before; that step is then used up (RFC 6238 §5.2). The step is taken by
    the store's compare-and-set, not compared here, so two requests racing with one code
    (on any workers or nodes) cannot both pass."""
    if account is None or not account.totp_secret:
        return False
    step = totp.verify(account.totp_secret, code)
    return step is not None and await identity_for(ctx_of(request)).claim_totp_step(
        account.id, account.totp_secret, step)


async def totp_form(request: web.Request) -> web.StreamResponse:
    if _pending(request) is None:
        return redirect(request, "/login")
    return render(request, "totp.html", {"values": {"next": safe_next(request.query.get("next"))}})


async def totp_check(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    session = _pending(request)
    if session is None:
        return redirect(request, "/login", flash="Your login expired; start again.", kind="error")
    fields = await form(request)
    target = safe_next(fields.get("next"))
    ip = request.remote or ""
    if await ctx.auth.throttled(ip):
        return render(request, "totp.html", {"values": {"next": target}, "errors": {"code": THROTTLED}}, status=429)
    account = await identity_for(ctx).account_by_id(session.account_id)
    if account is None or not await _use_code(request, account, fields.get("code", "")):
        await ctx.auth.record_failure(session.address, ip)
        return render(request, "totp.html", {"values": {"next": target}, "errors": {"code": WRONG_CODE}},
                      status=403)
    _start(request, account, pending=False)
    return redirect(request, target)


async def logout(request: web.Request) -> web.StreamResponse:
    """This session only: the browser's cookie goes, and the store records the session as
    ended, so a copy of the cookie (a stolen one) is refused too until it would have
    expired; "log out everywhere" ends the account's other sessions as well.

    The CSRF token is checked only while a session is valid: a user whose session has
    already ended is sent to the login page, not shown "the form has expired"."""
    session = request.get(keys.SESSION)
    if maybe_viewer(request) is not None or _pending(request) is not None:
        await check_csrf(request)
    if isinstance(session, Session):
        st = web_state(ctx_of(request))
        await identity_for(ctx_of(request)).end_session(session.account_id, session.digest,
                                                        st.signer.expires(session))
    set_session_cookie(request, None)
    return redirect(request, "/login", flash="You are logged out.")


async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    await identity_for(ctx_of(request)).bump_session_epoch(viewer(request).address)
    set_session_cookie(request, None)
    return redirect(request, "/login", flash="Every session of your account is logged out.")


# -- enrolling the second factor -------------------------------------------------------
def _enrol_token(request: web.Request, secret: str) -> str:
    signer = web_state(ctx_of(request)).signer
    return signer.sign("totp-enrol", {"s": secret, "a": viewer(request).account_id, "t": int(time.time())})


def _enrol_secret(request: web.Request, token: str) -> str:
    data = web_state(ctx_of(request)).signer.unsign("totp-enrol", token)
    if (data is None or data.get("a") != viewer(request).account_id
            or time.time() - float(data.get("t", 0)) > ENROL_TTL):  # type: ignore[arg-type]
        raise Invalid("This setup has expired; start again.", "code")
    return str(data["s"])


async def _totp_page(request: web.Request, errors: dict[str, str] | None = None, status: int = 200,
                     secret: str | None = None) -> web.Response:
    account = await identity_for(ctx_of(request)).account_by_id(viewer(request).account_id)
    enabled = bool(account and account.totp_secret)
    values: dict[str, object] = {"enabled": enabled}
    if not enabled:
        secret = secret or totp.new_secret()
        issuer = web_state(ctx_of(request)).settings.totp_issuer
        values.update(secret=secret, uri=totp.uri(secret, viewer(request).address, issuer),
                      enrol=_enrol_token(request, secret))
    return render(request, "settings/totp.html", {**values, "errors": errors or {}}, status=status)


async def totp_settings(request: web.Request) -> web.StreamResponse:
    return await _totp_page(request)


async def totp_change(request: web.Request) -> web.StreamResponse:
    ident = identity_for(ctx_of(request))
    v = viewer(request)
    fields = await form(request)
    code = fields.get("code", "")
    account = await ident.account_by_id(v.account_id)
    if account is None:
        raise Invalid("the account is gone")
    if fields.get("action") == "disable":
        if not account.totp_secret:
            return redirect(request, "/settings/totp")
        auth, ip = ctx_of(request).auth, request.remote or ""
        if await auth.throttled(ip):  # a stolen session must not become a code guesser
            return await _totp_page(request, {"code": THROTTLED}, 429)
        if not await _use_code(request, account, code):
            await auth.record_failure(v.address, ip)
            return await _totp_page(request, {"code": WRONG_CODE}, 403)
        await ident.set_totp_secret(v.address, None)
        return redirect(request, "/settings/totp", flash="Two-factor login is off.")
    if account.totp_secret:
        return redirect(request, "/settings/totp")
    secret = _enrol_secret(request, fields.get("enrol", ""))
    step = totp.verify(secret, code)
    if step is None:
        return await _totp_page(request, {"code": "That code is not right; check the phone's clock."}, 400,
                                secret=secret)
    if not await ident.enable_totp(v.account_id, secret, step):  # another tab turned it on meanwhile
        return redirect(request, "/settings/totp")
    # Turning it on bumped the epoch: sessions opened with the password alone (a stolen one
    # perhaps) end; this browser, which just showed a code, gets a session of the new epoch.
    account = await ident.account_by_id(v.account_id)
    if account is not None:
        _start(request, account, pending=False)
    return redirect(request, "/settings/totp", flash="Two-factor login is on: the next login asks for a code.")
