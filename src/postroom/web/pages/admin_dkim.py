"""``/admin/dkim`` and ``/api/v1/admin/dkim``: per domain its DKIM keys (keygen, activate, retire),
the DNS records to publish, and a live check of what DNS answers now (services/admin_dkim.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Invalid, WebError
from ..render import redirect, render
from ..services import admin_common
from ..services import admin_dkim as dkim
from ..services import admin_domains as domains
from ..site import Role, Site, form

STRING = {"type": "string"}
KEY = {
    "type": "object",
    "properties": {"selector": STRING, "algorithm": {"type": "string", "enum": ["rsa", "ed25519"]},
                   "state": {"type": "string", "enum": ["pending", "active", "retired"]},
                   "created": {"type": "number"}, "record_name": STRING,
                   "record": {"type": "string", "description": "the TXT record's text"}},
    "required": ["selector", "algorithm", "state", "created", "record_name", "record"],
    "additionalProperties": False,
}
NEW_KEY = {
    "type": "object",
    "properties": {"algorithm": {"type": "string", "enum": ["rsa", "ed25519"]},
                   "selector": {"type": "string", "maxLength": 63, "pattern": "^[A-Za-z0-9-]*$"}},
    "required": ["algorithm"],
    "additionalProperties": False,
}
KEY_ACTION = {"type": "object", "properties": {"action": {"type": "string", "enum": ["activate", "retire"]}},
              "required": ["action"], "additionalProperties": False}
RECORD = {
    "type": "object",
    "properties": {"kind": STRING, "name": STRING, "type": STRING, "value": STRING, "comment": STRING,
                   "status": {"type": "string", "enum": ["ok", "missing", "different", "temporary failure"]},
                   "detail": STRING, "warning": STRING},
    "required": ["kind", "name", "type", "value", "comment", "status", "detail", "warning"],
    "additionalProperties": False,
}
DNS = {"type": "object",
       "properties": {"records": {"type": "array", "items": RECORD}, "notes": {"type": "array", "items": STRING}},
       "required": ["records", "notes"], "additionalProperties": False}


def setup(site: Site) -> None:
    site.page("GET", "/admin/dkim", index_page, role=Role.ADMIN)
    site.page("GET", "/admin/dkim/{domain}", domain_page, role=Role.ADMIN)
    site.page("POST", "/admin/dkim/{domain}", action_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/dkim", "DKIM keys and DNS")
    tag = "admin"
    site.api("GET", "/api/v1/admin/dkim/{domain}/keys", api_keys, summary="A domain's DKIM keys",
             response={"type": "array", "items": KEY}, tag=tag)
    site.api("POST", "/api/v1/admin/dkim/{domain}/keys", api_keygen, summary="Make a DKIM key (active if the "
             "domain has none of that algorithm, else pending)", request=NEW_KEY, response=KEY, status=201, tag=tag)
    site.api("POST", "/api/v1/admin/dkim/{domain}/keys/{selector}/actions", api_key_action,
             summary="Activate or retire a DKIM key", request=KEY_ACTION, response={"type": "array", "items": KEY},
             tag=tag)
    site.api("GET", "/api/v1/admin/dns/{domain}", api_dns, summary="The DNS records to publish for a domain "
             "and what DNS answers for each now", response=DNS, tag=tag)


def utc(ts: float) -> str:
    return admin_common.utc(ts, "%Y-%m-%d %H:%M")


async def index_page(request: web.Request) -> web.StreamResponse:
    return render(request, "admin/dkim_index.html", {"rows": await domains.list_all(request)})


async def _domain(request: web.Request, values: dict[str, str], errors: dict[str, str],
                  status: int = 200) -> web.StreamResponse:
    domain = request.match_info["domain"]
    rows = await dkim.list_keys(request, domain)  # NotFound (not served) → the 404 page
    records, notes = await dkim.records(request, domain)
    return render(request, "admin/dkim.html", {"domain": domain.lower().rstrip("."), "keys": rows,
                                               "records": records, "notes": notes, "utc": utc,
                                               "values": values, "errors": errors}, status=status)


async def domain_page(request: web.Request) -> web.StreamResponse:
    return await _domain(request, {"algorithm": "rsa"}, {})


async def action_page(request: web.Request) -> web.StreamResponse:
    domain = request.match_info["domain"]
    values = await form(request)
    action = values.get("action", "")
    try:
        if action == "keygen":
            key = await dkim.keygen(request, domain, values.get("algorithm", ""), values.get("selector", ""))
            flash = (f"Key {key.selector} made, {key.state}. Publish its record"
                     + (", check it below, then activate it." if key.state == "pending" else " now."))
        elif action in ("activate", "retire"):
            await dkim.change(request, domain, values.get("selector", ""), action)
            flash = f"Key {values.get('selector', '')} {action}d."
        else:
            raise Invalid("unknown action", "")
    except WebError as exc:
        return await _domain(request, values, exc.errors(), exc.status)
    return redirect(request, f"/admin/dkim/{domain}", flash=flash)


async def api_keys(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [k.as_json() for k in await dkim.list_keys(request, request.match_info["domain"])]


async def api_keygen(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await dkim.keygen(request, request.match_info["domain"], body["algorithm"],
                              body.get("selector", ""))).as_json()


async def api_key_action(request: web.Request, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows = await dkim.change(request, request.match_info["domain"], request.match_info["selector"], body["action"])
    return [k.as_json() for k in rows]


async def api_dns(request: web.Request, body: None) -> dict[str, Any]:
    records, notes = await dkim.records(request, request.match_info["domain"])
    return {"records": [r.as_json() for r in records], "notes": notes}
