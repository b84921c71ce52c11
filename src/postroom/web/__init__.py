"""The web administration pages and JSON API (issue #21), mounted on the HTTP application.

:func:`mount` is called by :func:`postroom.http.app.build`: it adds the web middleware
and installs every route of :mod:`.auth` and of the modules in :mod:`.pages`, each
wrapped with its role and CSRF checks. docs/web-dev.md is the contract for page and API
authors; docs/web.md the user's side.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from .site import Site

if TYPE_CHECKING:
    from ..context import ServerContext

STATIC = Path(__file__).parent / "static"


def build_site() -> Site:
    """Every route: the login pages, then each module of :mod:`.pages` in name order."""
    from . import auth, pages

    site = Site()
    auth.setup(site)
    for module in pages.modules():
        module.setup(site)
    return site


def mount(app: web.Application, ctx: ServerContext) -> None:
    from . import api
    from .app import SITE, middleware, on_prepare, page_handler

    site = build_site()
    app[SITE] = site
    app.middlewares.append(middleware)
    app.on_response_prepare.append(on_prepare)
    r = app.router
    for page in site.pages:
        r.add_route(page.method, page.path, page_handler(page))
    for op in site.operations:
        r.add_route(op.method, op.path, api.api_handler(op))
    app[api._DOC] = orjson.dumps(api.openapi(site))
    r.add_get("/api/openapi.json", api.openapi_json)
    r.add_static("/static/", STATIC, append_version=False)
    app.on_startup.append(_start_sampler)


async def _start_sampler(app: web.Application) -> None:
    """The status page's charts cover the hours before anyone opened it: the sampler
    starts with the server, not with the first look (services/admin_status.py)."""
    from ..http.app import CTX
    from .services.admin_status import sampler_for

    sampler_for(app[CTX])
