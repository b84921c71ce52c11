"""The JSON API: the wrapper around each operation, and ``/api/openapi.json``.

Each operation registered with :meth:`Site.api` is installed through :func:`api_handler`,
which authenticates (401), checks the role (403) and, for a session cookie, the CSRF
header (403), parses the JSON body and checks it against the declared schema (400),
checks the declared query parameters (400), and turns a :class:`WebError` into
``{"error": ..., "field": ...}`` with its status. The OpenAPI document is generated from
the same registrations, so what it promises is what the server checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .. import __version__
from . import keys, schema
from .app import SAFE_METHODS, csrf_ok, json_error, site_of
from .errors import Invalid, WebError
from .site import ApiOperation, Role, Site, Viewer, read_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string", "nullable": True}},
         "required": ["error", "field"]}


def _query(op: ApiOperation, request: web.Request) -> None:
    for name in request.query:
        if name not in op.query:
            raise Invalid(f"unknown query parameter {name}", name)
    for name in op.required_query:
        if name not in request.query:
            raise Invalid(f"{name} is required", name)
    for name, sch in op.query.items():
        if name not in request.query:
            continue
        raw = request.query.get(name, "")
        value: Any = raw
        if sch.get("type") == "integer":
            if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 18:
                raise Invalid(f"{name} must be an integer", name)
            value = int(raw)
        elif sch.get("type") == "boolean":
            if raw not in ("true", "false"):
                raise Invalid(f"{name} must be true or false", name)
            value = raw == "true"
        schema.check(sch, value, name)


async def _body(op: ApiOperation, request: web.Request) -> Any:
    if op.request is None:
        return None
    if request.content_type != "application/json":
        raise Invalid("send the body as application/json")
    raw = await read_body(request)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid("the body is not JSON") from None
    schema.check(op.request, body)
    return body


def api_handler(op: ApiOperation) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        v = request.get(keys.VIEWER)
        if not isinstance(v, Viewer):
            return json_error(401, "sign in, or send Authorization: Bearer <API token>")
        if op.role is Role.ADMIN and not v.is_admin:
            return json_error(403, "this operation is for administrators")
        if (request.method not in SAFE_METHODS and not v.via_token
                and not csrf_ok(request, request.headers.get("X-CSRF-Token"))):
            return json_error(403, "the X-CSRF-Token header is missing or wrong")
        try:
            _query(op, request)
            body = await _body(op, request)
            result = await op.handler(request, body)
        except WebError as exc:
            return json_error(exc.status, exc.message, exc.field)
        if isinstance(result, web.StreamResponse):
            return result
        if op.status == 204:
            return web.Response(status=204)
        return web.Response(body=orjson.dumps(result), status=op.status, content_type="application/json")

    return handle


def _params(path: str, op: ApiOperation) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            out.append({"name": name, "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 320}})
    for name, sch in op.query.items():
        out.append({"name": name, "in": "query", "required": name in op.required_query, "schema": sch})
    return out


def openapi(site: Site) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of every registered operation."""
    paths: dict[str, dict[str, Any]] = {}
    for op in site.operations:
        responses: dict[str, Any] = {}
        if op.status == 204:
            responses["204"] = {"description": "done"}
        else:
            content = {"application/json": {"schema": op.response if op.response is not None else {}}}
            responses[str(op.status)] = {"description": "success", "content": content}
        for status, what in (("400", "bad input"), ("401", "not signed in"), ("403", "not allowed"),
                             ("404", "not found"), ("409", "conflict")):
            responses[status] = {"description": what,
                                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        item: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op), "tags": [op.tag],
                                "responses": responses,
                                "security": [{"bearer": []}, {"session": []}]}
        if op.description:
            item["description"] = op.description
        params = _params(op.path, op)
        if params:
            item["parameters"] = params
        if op.request is not None:
            item["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.request}}}
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.0.3",
        "info": {"title": "Postroom administration API", "version": __version__,
                 "description": "Admins authenticate with an API token (Authorization: Bearer prt_...); the "
                                "web pages use their session cookie and an X-CSRF-Token header."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an admin's API token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "postroom_session"},
            },
        },
    }


def _operation_id(op: ApiOperation) -> str:
    words = [p.strip("{}").split(":")[0] for p in op.path.split("/")[3:] if p]
    return op.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words)


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """``/api/openapi.json``: public (it describes the API, it gives nothing away)."""
    doc = request.app.get(_DOC)
    if doc is None:
        doc = orjson.dumps(openapi(site_of(request)))
    return web.Response(body=doc, content_type="application/json")


_DOC = web.AppKey("postroom_web_openapi", bytes)
