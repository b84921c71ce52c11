"""What the web middleware and wrappers keep on a request (typed keys, as aiohttp advises)."""

from __future__ import annotations

from aiohttp import web

from .sessions import Session

WEB = web.RequestKey("postroom_web", bool)  # a web path: on_prepare adds the security headers
VIEWER = web.RequestKey("postroom_web_viewer", object)  # site.Viewer of the signed-in caller
SESSION = web.RequestKey("postroom_web_session", Session)  # the valid session cookie (maybe pending TOTP)
SET_SESSION = web.RequestKey("postroom_web_set_session", object)  # Session to write, or None to expire
SET_ANON = web.RequestKey("postroom_web_set_anon", str)  # a new anonymous CSRF nonce to send
ANON_NONCE = web.RequestKey("postroom_web_anon_nonce", str)
ANON_CSRF = web.RequestKey("postroom_web_anon_csrf", str)  # the login form's CSRF token
FLASH = web.RequestKey("postroom_web_flash", object)  # dict (message, kind) from the last redirect, or None
BODY = web.RequestKey("postroom_web_body", bytes)  # the request body, read once within the limit
FORM = web.RequestKey("postroom_web_form", dict)  # the parsed form fields
