"""The landing pages (``/``, ``/settings/``, ``/admin/``) and ``GET /api/v1/me``, the example route.

The landing pages list the links the other page modules register with
``site.nav(...)``; they hold nothing of their own beyond the account's security
settings (second factor, log out everywhere).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..identity import identity_for
from ..render import redirect, render
from ..site import Role, Site, ctx_of, maybe_viewer, viewer

ME = {
    "type": "object",
    "properties": {
        "address": {"type": "string", "format": "email"},
        "admin": {"type": "boolean"},
        "totp": {"type": "boolean", "description": "a second factor (TOTP) is required at login"},
        "via_token": {"type": "boolean", "description": "authenticated by an API token"},
    },
    "required": ["address", "admin", "totp", "via_token"],
    "additionalProperties": False,
}


SERVER = {
    "type": "object",
    "properties": {
        "hostname": {"type": "string"},
        "version": {"type": "string"},
        "domains": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["hostname", "version", "domains"],
    "additionalProperties": False,
}


def setup(site: Site) -> None:
    site.page("GET", "/", root, role=Role.PUBLIC)
    site.page("GET", "/settings/", settings_home, role=Role.USER)
    site.page("GET", "/admin/", admin_home, role=Role.ADMIN)
    site.nav(Role.USER, "/settings/totp", "Two-factor login")
    site.api("GET", "/api/v1/me", me, role=Role.USER, summary="The signed-in account",
             response=ME, tag="account")
    site.api("GET", "/api/v1/server", server, role=Role.ADMIN, summary="This server: host name, version, "
             "configured domains", response=SERVER, tag="server")


async def root(request: web.Request) -> web.StreamResponse:
    v = maybe_viewer(request)
    if v is None:
        return redirect(request, "/login")
    return redirect(request, "/admin/" if v.is_admin else "/settings/")


async def settings_home(request: web.Request) -> web.StreamResponse:
    return render(request, "settings/index.html")


async def admin_home(request: web.Request) -> web.StreamResponse:
    return render(request, "admin/index.html")


async def me(request: web.Request, body: None) -> dict[str, Any]:
    v = viewer(request)
    account = await identity_for(ctx_of(request)).account_by_id(v.account_id)
    return {"address": v.address, "admin": v.is_admin, "totp": bool(account and account.totp_secret),
            "via_token": v.via_token}


async def server(request: web.Request, body: None) -> dict[str, Any]:
    from ... import __version__

    cfg = ctx_of(request).config
    return {"hostname": cfg.hostname, "version": __version__, "domains": sorted(cfg.domains)}
