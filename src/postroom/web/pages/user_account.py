"""A user's password (``/settings/password``) and app passwords
(``/settings/app-passwords``), with their API routes under ``/api/v1/me/``.

Pages and API call the same service (``services/user_account.py``); both act on the
signed-in account only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...storage.models import Credential
from ..app import set_session_cookie, web_state
from ..errors import WebError
from ..render import redirect, render
from ..services import user_account
from ..site import Role, Site, ctx_of, form, viewer

PASSWORD = {
    "type": "object", "additionalProperties": False, "required": ["current", "new"],
    "properties": {"current": {"type": "string", "maxLength": user_account.MAX_PASSWORD},
                   "new": {"type": "string", "maxLength": user_account.MAX_PASSWORD,
                           "description": f"at least {user_account.MIN_PASSWORD} characters, "
                                          f"{user_account.MIN_DISTINCT} different ones, not the address"}},
}
APP_PASSWORD = {
    "type": "object", "additionalProperties": False, "required": ["name", "created", "last_used"],
    "properties": {"name": {"type": "string"},
                   "created": {"type": "string", "description": "ISO 8601, UTC"},
                   "last_used": {"type": "string", "nullable": True, "description": "ISO 8601, UTC; to 5 minutes"}},
}
NEW_APP_PASSWORD_REQUEST = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64}},
}
MAIL_SETTING = {
    "type": "object", "additionalProperties": False, "required": ["protocol", "host", "port", "security"],
    "properties": {"protocol": {"type": "string"}, "host": {"type": "string"}, "port": {"type": "integer"},
                   "security": {"type": "string", "enum": ["SSL/TLS", "STARTTLS"]}},
}
NEW_APP_PASSWORD = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "created", "last_used", "password", "username", "settings"],
    "properties": {**APP_PASSWORD["properties"],  # type: ignore[dict-item]
                   "password": {"type": "string", "description": "shown this once"},
                   "username": {"type": "string"},
                   "settings": {"type": "array", "items": MAIL_SETTING}},
}


def setup(site: Site) -> None:
    site.page("GET", "/settings/password", password_form, role=Role.USER)
    site.page("POST", "/settings/password", password_change, role=Role.USER)
    site.page("GET", "/settings/app-passwords", app_passwords_page, role=Role.USER)
    site.page("POST", "/settings/app-passwords", app_password_create, role=Role.USER)
    site.page("POST", "/settings/app-passwords/revoke", app_password_revoke, role=Role.USER)
    site.page("POST", "/settings/app-passwords/revoke-all", app_password_revoke_all, role=Role.USER)
    site.nav(Role.USER, "/settings/password", "Password")
    site.nav(Role.USER, "/settings/app-passwords", "App passwords")
    site.api("POST", "/api/v1/me/password", api_password, role=Role.USER, summary="Change your password "
             "(ends your other web sessions)", request=PASSWORD, response=None, status=204, tag="me")
    site.api("GET", "/api/v1/me/app-passwords", api_list, role=Role.USER, summary="Your app passwords",
             response={"type": "array", "items": APP_PASSWORD}, tag="me")
    site.api("POST", "/api/v1/me/app-passwords", api_create, role=Role.USER,
             summary="Create an app password (the secret is in this answer only)",
             request=NEW_APP_PASSWORD_REQUEST, response=NEW_APP_PASSWORD, status=201, tag="me")
    site.api("DELETE", "/api/v1/me/app-passwords/{name}", api_revoke, role=Role.USER,
             summary="Revoke an app password", response=None, status=204, tag="me")
    site.api("DELETE", "/api/v1/me/app-passwords", api_revoke_all, role=Role.USER,
             summary="Revoke all your app passwords", response=None, status=204, tag="me")


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _cred(c: Credential) -> dict[str, Any]:
    return {"name": c.name, "created": _iso(c.created), "last_used": _iso(c.last_used)}


def _keep_session(request: web.Request, epoch: int) -> None:
    """After a password change: this browser stays logged in (a fresh cookie with the new
    epoch); every other session carries the old epoch and ends."""
    v = viewer(request)
    if v.via_token:
        return
    signer = web_state(ctx_of(request)).signer
    set_session_cookie(request, signer.new(v.account_id, v.address, epoch, False))


# -- password ---------------------------------------------------------------------------
async def password_form(request: web.Request) -> web.StreamResponse:
    return render(request, "settings/password.html", {"min_length": user_account.MIN_PASSWORD})


async def password_change(request: web.Request) -> web.StreamResponse:
    fields = await form(request)
    try:
        account = await user_account.change_password(request, fields.get("current", ""), fields.get("new", ""),
                                                     fields.get("confirm", ""))
    except WebError as exc:
        return render(request, "settings/password.html",
                      {"min_length": user_account.MIN_PASSWORD, "errors": exc.errors()}, status=exc.status)
    _keep_session(request, account.session_epoch)
    return redirect(request, "/settings/", flash="Password changed. Your other sessions are logged out.")


async def api_password(request: web.Request, body: dict[str, Any]) -> web.Response:
    account = await user_account.change_password(request, body["current"], body["new"])
    _keep_session(request, account.session_epoch)
    return web.Response(status=204)


# -- app passwords ----------------------------------------------------------------------
async def _app_page(request: web.Request, values: dict[str, Any] | None = None,
                    errors: dict[str, str] | None = None, status: int = 200,
                    created: tuple[Credential, str] | None = None) -> web.Response:
    rows = await user_account.list_app_passwords(request)
    return render(request, "settings/app_passwords.html", {
        "rows": [_cred(c) for c in rows], "values": values or {}, "errors": errors or {},
        "created": ({"name": created[0].name, "password": created[1]} if created else None),
        "settings": user_account.mail_settings(request), "username": viewer(request).address}, status=status)


async def app_passwords_page(request: web.Request) -> web.StreamResponse:
    return await _app_page(request)


async def app_password_create(request: web.Request) -> web.StreamResponse:
    fields = await form(request)
    try:
        created = await user_account.create_app_password(request, fields.get("name", ""))
    except WebError as exc:
        return await _app_page(request, {"name": fields.get("name", "")}, exc.errors(), exc.status)
    # Shown on this response only (no redirect: the secret must not travel in a flash cookie).
    return await _app_page(request, created=created)


async def app_password_revoke(request: web.Request) -> web.StreamResponse:
    fields = await form(request)
    name = fields.get("name", "")
    try:
        await user_account.revoke_app_password(request, name)
    except WebError as exc:
        return await _app_page(request, errors={"": exc.message}, status=exc.status)
    return redirect(request, "/settings/app-passwords", flash=f"App password {name.strip()[:64]!r} revoked.")


async def app_password_revoke_all(request: web.Request) -> web.StreamResponse:
    count = await user_account.revoke_all_app_passwords(request)
    return redirect(request, "/settings/app-passwords", flash=f"{count} app password(s) revoked.")


async def api_list(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [_cred(c) for c in await user_account.list_app_passwords(request)]


async def api_create(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    cred, password = await user_account.create_app_password(request, body["name"])
    return {**_cred(cred), "password": password, "username": viewer(request).address,
            "settings": [{"protocol": s.protocol, "host": s.host, "port": s.port, "security": s.security}
                         for s in user_account.mail_settings(request)]}


async def api_revoke(request: web.Request, body: None) -> None:
    await user_account.revoke_app_password(request, request.match_info["name"])


async def api_revoke_all(request: web.Request, body: None) -> None:
    await user_account.revoke_all_app_passwords(request)
