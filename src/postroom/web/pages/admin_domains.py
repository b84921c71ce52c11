"""``/admin/domains`` and ``/api/v1/admin/domains``: the served domains (services/admin_domains.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import WebError
from ..render import redirect, render
from ..services import admin_domains as domains
from ..site import Role, Site, form

NAME = {"type": "string", "minLength": 1, "maxLength": 254}
DOMAIN = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "accounts": {"type": "integer", "minimum": 0},
                   "aliases": {"type": "integer", "minimum": 0},
                   "in_config": {"type": "boolean", "description": "listed in the config file"}},
    "required": ["name", "accounts", "aliases", "in_config"],
    "additionalProperties": False,
}
NEW_DOMAIN = {"type": "object", "properties": {"name": NAME}, "required": ["name"], "additionalProperties": False}


def setup(site: Site) -> None:
    site.page("GET", "/admin/domains", list_page, role=Role.ADMIN)
    site.page("POST", "/admin/domains", add_page, role=Role.ADMIN)
    site.page("POST", "/admin/domains/{name}/delete", delete_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/domains", "Domains")
    site.api("GET", "/api/v1/admin/domains", api_list, role=Role.ADMIN, summary="List served domains",
             response={"type": "array", "items": DOMAIN}, tag="admin")
    site.api("POST", "/api/v1/admin/domains", api_add, role=Role.ADMIN, summary="Add a served domain",
             request=NEW_DOMAIN, response=DOMAIN, status=201, tag="admin")
    site.api("DELETE", "/api/v1/admin/domains/{name}", api_delete, role=Role.ADMIN,
             summary="Delete a served domain (refused while it has accounts)", response=None, status=204,
             tag="admin")


async def _page(request: web.Request, values: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.StreamResponse:
    rows = await domains.list_all(request)
    return render(request, "admin/domains.html", {"rows": rows, "values": values, "errors": errors},
                  status=status)


async def list_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, {}, {})


async def add_page(request: web.Request) -> web.StreamResponse:
    values = await form(request)
    try:
        row = await domains.add(request, values.get("name", ""))
    except WebError as exc:
        return await _page(request, values, exc.errors(), exc.status)
    return redirect(request, "/admin/domains", flash=f"Domain {row.name} added.")


async def delete_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        await domains.delete(request, name)
    except WebError as exc:
        return await _page(request, {}, {"": exc.message}, exc.status)
    return redirect(request, "/admin/domains", flash=f"Domain {name} deleted.")


async def api_list(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [r.as_json() for r in await domains.list_all(request)]


async def api_add(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await domains.add(request, body["name"])).as_json()


async def api_delete(request: web.Request, body: None) -> None:
    await domains.delete(request, request.match_info["name"])
