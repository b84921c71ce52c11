"""Server-rendered pages: the Jinja2 environment, ``render``, ``redirect`` and flash messages.

Autoescape is on for every template, so a value from a user (a subject, a name) can never
become markup; templates never use ``|safe`` on user data. The base layout
(``templates/base.html``) carries the landmarks, the skip link, the CSRF ``<meta>`` and
the flash message, so a page template only fills its title and content.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup

from . import keys
from .sessions import FLASH_COOKIE
from .site import Role, maybe_viewer

FLASH_KINDS = ("ok", "error")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("postroom.web", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["csrf_field"] = _csrf_field
    return env


@jinja2.pass_context
def _csrf_field(context: Any) -> Markup:
    token = context.get("csrf_token", "")
    return Markup('<input type="hidden" name="csrf" value="{}">').format(token)


def csrf_token(request: web.Request) -> str:
    """The token forms and fetch() calls must send: the session's, or the anonymous one."""
    v = maybe_viewer(request)
    return v.csrf if v is not None else str(request.get(keys.ANON_CSRF, ""))


def render(request: web.Request, template: str, values: dict[str, Any] | None = None,
           status: int = 200) -> web.Response:
    from .app import site_of

    v = maybe_viewer(request)
    site = site_of(request)
    ctx: dict[str, Any] = {
        "viewer": v,
        "csrf_token": csrf_token(request),
        "flash": request.get(keys.FLASH),
        "path": request.path,
        "nav_user": site.links[Role.USER],
        "nav_admin": site.links[Role.ADMIN] if v is not None and v.is_admin else [],
        "values": {},
        "errors": {},
    }
    ctx.update(values or {})
    body = environment().get_template(template).render(ctx)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    if ctx["flash"] is not None:
        response.del_cookie(FLASH_COOKIE, path="/")  # shown once
    return response


def safe_next(target: str | None, default: str = "/settings/") -> str:
    """A local path to go to after login; anything else (another host, ``//evil``) → default."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return default
    return target


def redirect(request: web.Request, location: str, flash: str | None = None, kind: str = "ok") -> web.Response:
    """303 See Other to a local path (POST/redirect/GET), with a message for the next page."""
    from .app import is_tls, web_state
    from .site import ctx_of

    response = web.Response(status=303, headers={"Location": safe_next(location, "/")})
    if flash:
        signer = web_state(ctx_of(request)).signer
        response.set_cookie(FLASH_COOKIE, signer.sign("flash", {"m": flash[:500], "k": kind}), path="/",
                            httponly=True, samesite="Strict", secure=is_tls(request))
    return response


def read_flash(request: web.Request) -> dict[str, str] | None:
    from .app import web_state
    from .site import ctx_of

    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    data = web_state(ctx_of(request)).signer.unsign("flash", value)
    if data is None:
        return None
    kind = str(data.get("k", "ok"))
    return {"message": str(data.get("m", "")), "kind": kind if kind in FLASH_KINDS else "ok"}


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    titles = {400: "Bad request", 401: "Sign in", 403: "Forbidden", 404: "Not found", 405: "Not allowed",
              409: "Conflict", 413: "Too large", 500: "Server error"}
    return render(request, "error.html", {"status": status, "title": titles.get(status, "Error"),
                                          "message": message}, status=status)
