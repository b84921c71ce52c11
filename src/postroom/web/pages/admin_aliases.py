"""``/admin/aliases`` and ``/api/v1/admin/aliases``: aliases and catch-alls
(services/admin_aliases.py). In the form the targets are one address per line."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import WebError
from ..render import redirect, render
from ..services import admin_aliases as aliases
from ..site import Role, Site, form

TARGETS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 321}, "maxItems": 1000}
ALIAS = {
    "type": "object",
    "properties": {"source": {"type": "string", "description": "local@domain, or @domain for a catch-all"},
                   "targets": {"type": "array", "items": {"type": "string"}},
                   "newsgroups": {"type": "array", "items": {"type": "string"},
                                  "description": "newsgroups bound to this address as a mailing list"}},
    "required": ["source", "targets", "newsgroups"],
    "additionalProperties": False,
}
NEW_ALIAS = {
    "type": "object",
    "properties": {"source": {"type": "string", "minLength": 1, "maxLength": 330}, "targets": TARGETS},
    "required": ["source", "targets"],
    "additionalProperties": False,
}
CHANGE_ALIAS = {"type": "object", "properties": {"targets": TARGETS}, "required": ["targets"],
                "additionalProperties": False}


def setup(site: Site) -> None:
    site.page("GET", "/admin/aliases", list_page, role=Role.ADMIN)
    site.page("POST", "/admin/aliases", add_page, role=Role.ADMIN)
    site.page("GET", "/admin/aliases/{source}", edit_page, role=Role.ADMIN)
    site.page("POST", "/admin/aliases/{source}", change_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/aliases", "Aliases")
    tag = "admin"
    site.api("GET", "/api/v1/admin/aliases", api_list, summary="List aliases",
             response={"type": "array", "items": ALIAS}, tag=tag)
    site.api("POST", "/api/v1/admin/aliases", api_add, summary="Add an alias", request=NEW_ALIAS,
             response=ALIAS, status=201, tag=tag)
    site.api("GET", "/api/v1/admin/aliases/{source}", api_get, summary="One alias", response=ALIAS, tag=tag)
    site.api("PUT", "/api/v1/admin/aliases/{source}", api_change, summary="Replace an alias's targets",
             request=CHANGE_ALIAS, response=ALIAS, tag=tag)
    site.api("DELETE", "/api/v1/admin/aliases/{source}", api_delete, summary="Delete an alias", response=None,
             status=204, tag=tag)


async def _list(request: web.Request, values: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.StreamResponse:
    rows = await aliases.list_all(request)
    shown = {r.source for r in rows}
    lists = [(a, g) for a, g in sorted((await aliases.bound_lists(request)).items()) if a not in shown]
    return render(request, "admin/aliases.html", {"rows": rows, "lists": lists, "values": values,
                                                  "errors": errors}, status=status)


async def list_page(request: web.Request) -> web.StreamResponse:
    return await _list(request, {}, {})


async def add_page(request: web.Request) -> web.StreamResponse:
    values = await form(request)
    try:
        row = await aliases.put(request, values.get("source", ""), values.get("targets", ""), create=True)
    except WebError as exc:
        return await _list(request, values, exc.errors(), exc.status)
    return redirect(request, "/admin/aliases", flash=f"Alias {row.source} added.")


async def _edit(request: web.Request, values: dict[str, str] | None, errors: dict[str, str],
                status: int = 200) -> web.StreamResponse:
    row = await aliases.get(request, request.match_info["source"])  # NotFound → 404 page
    shown = values if values is not None else {"targets": "\n".join(row.targets)}
    return render(request, "admin/alias.html", {"row": row, "values": shown, "errors": errors}, status=status)


async def edit_page(request: web.Request) -> web.StreamResponse:
    return await _edit(request, None, {})


async def change_page(request: web.Request) -> web.StreamResponse:
    source = request.match_info["source"]
    values = await form(request)
    try:
        if values.get("action") == "delete":
            await aliases.delete(request, source)
            return redirect(request, "/admin/aliases", flash=f"Alias {source} deleted.")
        row = await aliases.put(request, source, values.get("targets", ""), create=False)
    except WebError as exc:
        return await _edit(request, values, exc.errors(), exc.status)
    return redirect(request, "/admin/aliases", flash=f"Alias {row.source} saved.")


async def api_list(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [r.as_json() for r in await aliases.list_all(request)]


async def api_add(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await aliases.put(request, body["source"], body["targets"], create=True)).as_json()


async def api_get(request: web.Request, body: None) -> dict[str, Any]:
    return (await aliases.get(request, request.match_info["source"])).as_json()


async def api_change(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await aliases.put(request, request.match_info["source"], body["targets"], create=False)).as_json()


async def api_delete(request: web.Request, body: None) -> None:
    await aliases.delete(request, request.match_info["source"])
