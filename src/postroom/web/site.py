"""The registry pages and API routes add themselves to, and what a handler asks of a request.

``Site`` only records routes (with their role and, for the API, their OpenAPI
operation); :func:`postroom.web.mount` installs them on the aiohttp application with
the role, CSRF and error handling around each (``postroom.web.app``), so a handler
never repeats those checks. See docs/web-dev.md.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from .errors import Invalid, TooLarge, WebError
from .keys import BODY, FORM, VIEWER
from .settings import FIELD_MAX

if TYPE_CHECKING:
    from ..context import ServerContext

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ApiHandler = Callable[[web.Request, Any], Awaitable[Any]]
MAX_FIELDS = 1000


class Role(enum.Enum):
    PUBLIC = "public"  # the login pages only
    USER = "user"  # any signed-in account, admins included
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is making the request (never taken from the URL or the form)."""

    account_id: int
    address: str
    is_admin: bool
    csrf: str  # the session's CSRF token ("" for API tokens: they need none)
    via_token: bool = False  # authenticated by ``Authorization: Bearer``


@dataclass(frozen=True, slots=True)
class Page:
    method: str
    path: str
    handler: PageHandler
    role: Role
    csrf: bool = True  # False: the handler checks it itself (only /logout, see auth.logout)


@dataclass(frozen=True, slots=True)
class ApiOperation:
    method: str
    path: str
    handler: ApiHandler
    role: Role
    summary: str
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    status: int = 200
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_query: tuple[str, ...] = ()
    description: str = ""
    tag: str = ""


@dataclass(slots=True)
class Site:
    pages: list[Page] = field(default_factory=list)
    operations: list[ApiOperation] = field(default_factory=list)
    links: dict[Role, list[tuple[str, str]]] = field(default_factory=lambda: {Role.USER: [], Role.ADMIN: []})

    def page(self, method: str, path: str, handler: PageHandler, role: Role = Role.USER, *,
             csrf: bool = True) -> None:
        if not (path.startswith(("/admin", "/settings")) or role is Role.PUBLIC or path == "/"):
            raise ValueError(f"page {path}: pages live under /admin/ or /settings/")
        if path.startswith("/admin") and role is not Role.ADMIN:
            raise ValueError(f"page {path}: /admin/ pages are for Role.ADMIN")
        self.pages.append(Page(method.upper(), path, handler, role, csrf))

    def api(self, method: str, path: str, handler: ApiHandler, *, summary: str, role: Role = Role.ADMIN,
            request: dict[str, Any] | None = None, response: dict[str, Any] | None = None, status: int = 200,
            query: dict[str, dict[str, Any]] | None = None, required_query: tuple[str, ...] = (),
            description: str = "", tag: str = "") -> None:
        if not path.startswith("/api/v1/"):
            raise ValueError(f"API route {path}: must be under /api/v1/")
        if role is Role.PUBLIC:
            raise ValueError(f"API route {path}: every API route needs a signed-in caller")
        self.operations.append(ApiOperation(method.upper(), path, handler, role, summary, request, response, status,
                                            dict(query or {}), required_query, description,
                                            tag or path.split("/")[3]))

    def nav(self, role: Role, path: str, label: str) -> None:
        """A link on the landing page (and menu) of ``role``'s area."""
        self.links[role].append((path, label))


# -- what a handler asks of its request ------------------------------------------------
CTX_KEY = "postroom_ctx"


def ctx_of(request: web.Request) -> ServerContext:
    from ..http.app import CTX

    return request.app[CTX]  # type: ignore[return-value]


def viewer(request: web.Request) -> Viewer:
    """The signed-in caller; only called by handlers of USER/ADMIN routes, where one exists."""
    found = request.get(VIEWER)
    if not isinstance(found, Viewer):
        raise WebError("not signed in")  # a PUBLIC handler asked: a bug, shown as a 400 page
    return found


def maybe_viewer(request: web.Request) -> Viewer | None:
    found = request.get(VIEWER)
    return found if isinstance(found, Viewer) else None


async def read_body(request: web.Request) -> bytes:
    """The whole body within ``[web] max_body`` (TooLarge before reading past it)."""
    cached = request.get(BODY)
    if isinstance(cached, bytes):
        return cached
    from ..http.app import read_body as read_limited
    from ..http.app import state_for
    from .app import web_state

    ctx = ctx_of(request)
    limit = web_state(ctx).settings.max_body
    got = await read_limited(request, limit, state_for(ctx).settings.request_timeout)
    if isinstance(got, web.Response):
        if got.status == 413:
            raise TooLarge(f"the request is larger than {limit} bytes")
        raise Invalid("the request body did not arrive in time")
    request[BODY] = got
    return got


async def form(request: web.Request) -> dict[str, str]:
    """The fields of a urlencoded form post (first value of each name), each ≤ 64 KiB."""
    cached = request.get(FORM)
    if isinstance(cached, dict):
        return cached
    if request.method in ("GET", "HEAD"):
        return {}
    ctype = request.content_type
    if ctype != "application/x-www-form-urlencoded":
        raise Invalid("send the form as application/x-www-form-urlencoded")
    body = await read_body(request)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise Invalid("the form is not UTF-8") from None
    except ValueError:
        raise Invalid(f"the form has more than {MAX_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if len(value) > FIELD_MAX or len(name) > 256:
            raise Invalid(f"the field {name[:64]!r} is longer than {FIELD_MAX} characters", name[:64])
        if "\0" in value:
            raise Invalid("the form contains a NUL character", name[:64])
        fields.setdefault(name, value)
    request[FORM] = fields
    return fields
