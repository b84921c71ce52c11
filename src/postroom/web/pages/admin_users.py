"""``/admin/users`` and ``/api/v1/admin/users``: accounts, flags, quotas, passwords
(services/admin_users.py). Password hashes are never shown nor returned."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Invalid, WebError
from ..render import redirect, render
from ..services import admin_users as users
from ..site import Role, Site, form

LIMIT = {"type": "integer", "minimum": 0, "maximum": 2**62, "nullable": True}
USER = {
    "type": "object",
    "properties": {
        "address": {"type": "string"}, "admin": {"type": "boolean"}, "disabled": {"type": "boolean"},
        "totp": {"type": "boolean"}, "storage_used": {"type": "integer", "minimum": 0},
        "storage_limit": LIMIT, "messages_used": {"type": "integer", "minimum": 0}, "message_limit": LIMIT,
    },
    "required": ["address", "admin", "disabled", "totp", "storage_used", "storage_limit", "messages_used",
                 "message_limit"],
    "additionalProperties": False,
}
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
NEW_USER = {
    "type": "object",
    "properties": {"address": {"type": "string", "minLength": 3, "maxLength": 321}, "password": PASSWORD,
                   "admin": {"type": "boolean"}},
    "required": ["address", "password"],
    "additionalProperties": False,
}
CHANGE_USER = {
    "type": "object",
    "properties": {"admin": {"type": "boolean"}, "disabled": {"type": "boolean"},
                   "storage_limit": LIMIT, "message_limit": LIMIT},
    "additionalProperties": False,
}
NEW_PASSWORD = {"type": "object", "properties": {"password": PASSWORD}, "required": ["password"],
                "additionalProperties": False}


def setup(site: Site) -> None:
    site.page("GET", "/admin/users", list_page, role=Role.ADMIN)
    site.page("POST", "/admin/users", add_page, role=Role.ADMIN)
    site.page("GET", "/admin/users/{address}", user_page, role=Role.ADMIN)
    site.page("POST", "/admin/users/{address}", change_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/users", "Users")
    tag = "admin"
    site.api("GET", "/api/v1/admin/users", api_list, summary="List accounts with flags and quota use",
             response={"type": "array", "items": USER}, tag=tag)
    site.api("POST", "/api/v1/admin/users", api_add, summary="Add an account", request=NEW_USER,
             response=USER, status=201, tag=tag)
    site.api("GET", "/api/v1/admin/users/{address}", api_get, summary="One account", response=USER, tag=tag)
    site.api("PATCH", "/api/v1/admin/users/{address}", api_change,
             summary="Change an account's flags and quota (null limit: unlimited)", request=CHANGE_USER,
             response=USER, tag=tag)
    site.api("PUT", "/api/v1/admin/users/{address}/password", api_password,
             summary="Set a new password (ends the account's web sessions)", request=NEW_PASSWORD,
             response=USER, tag=tag)
    site.api("DELETE", "/api/v1/admin/users/{address}", api_delete, summary="Delete an account and all its mail",
             response=None, status=204, tag=tag)


async def _list(request: web.Request, values: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.StreamResponse:
    return render(request, "admin/users.html", {"rows": await users.list_all(request), "values": values,
                                                "errors": errors}, status=status)


async def list_page(request: web.Request) -> web.StreamResponse:
    return await _list(request, {}, {})


async def add_page(request: web.Request) -> web.StreamResponse:
    values = await form(request)
    try:
        row = await users.add(request, values.get("address", ""), values.get("password", ""),
                              admin=values.get("admin") == "on")
    except WebError as exc:
        return await _list(request, values, exc.errors(), exc.status)
    return redirect(request, "/admin/users", flash=f"Account {row.address} added.")


def _quota_values(row: users.UserRow) -> dict[str, str]:
    return {"storage": "" if row.storage_limit is None else str(row.storage_limit),
            "messages": "" if row.message_limit is None else str(row.message_limit)}


async def _detail(request: web.Request, address: str, values: dict[str, str], errors: dict[str, str],
                  status: int = 200) -> web.StreamResponse:
    row = await users.get(request, address)  # NotFound → the 404 page
    shown = _quota_values(row) | values
    return render(request, "admin/user.html", {"row": row, "values": shown, "errors": errors}, status=status)


async def user_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, request.match_info["address"], {}, {})


async def change_page(request: web.Request) -> web.StreamResponse:
    address = request.match_info["address"]
    sent = await form(request)
    action = sent.get("action", "")
    values = {k: v for k, v in sent.items() if k != "password"}  # a password is never echoed back
    try:
        if action == "quota":
            await users.update(request, address, storage=values.get("storage", ""),
                               messages=values.get("messages", ""), set_quota=True)
            flash = "Quota saved."
        elif action in ("disable", "enable"):
            await users.update(request, address, disabled=action == "disable")
            flash = f"Account {action}d."
        elif action in ("make-admin", "drop-admin"):
            await users.update(request, address, admin=action == "make-admin")
            flash = "Admin flag set." if action == "make-admin" else "Admin flag removed."
        elif action == "password":
            await users.reset_password(request, address, sent.get("password", ""))
            flash = "Password changed; the account's web sessions have ended."
        elif action == "delete":
            await users.delete(request, address)
            return redirect(request, "/admin/users", flash=f"Account {address} deleted.")
        else:
            raise Invalid("unknown action", "")
    except WebError as exc:
        return await _detail(request, address, values, exc.errors(), exc.status)
    return redirect(request, f"/admin/users/{address}", flash=flash)


async def api_list(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [r.as_json() for r in await users.list_all(request)]


async def api_add(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await users.add(request, body["address"], body["password"], bool(body.get("admin")))).as_json()


async def api_get(request: web.Request, body: None) -> dict[str, Any]:
    return (await users.get(request, request.match_info["address"])).as_json()


async def api_change(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    address = request.match_info["address"]
    quota = "storage_limit" in body or "message_limit" in body
    storage, messages = body.get("storage_limit"), body.get("message_limit")
    if quota and ("storage_limit" not in body or "message_limit" not in body):
        old = await users.get(request, address)  # one limit given: keep the other
        storage = storage if "storage_limit" in body else old.storage_limit
        messages = messages if "message_limit" in body else old.message_limit
    return (await users.update(request, address, admin=body.get("admin"), disabled=body.get("disabled"),
                               storage=storage, messages=messages, set_quota=quota)).as_json()


async def api_password(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return (await users.reset_password(request, request.match_info["address"], body["password"])).as_json()


async def api_delete(request: web.Request, body: None) -> None:
    await users.delete(request, request.match_info["address"])
