"""``/admin/queue`` and ``/api/v1/admin/queue``: the outbound queue (services/admin_queue.py),
with the actions of ``postroom queue``: retry, hold, release, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Invalid, WebError
from ..render import redirect, render
from ..services import admin_queue as queue
from ..services.admin_common import utc
from ..site import Role, Site, form

ACTIONS = ("retry", "hold", "release", "delete")
RECIPIENT = {
    "type": "object",
    "properties": {"address": {"type": "string"}, "state": {"type": "string",
                                                            "enum": ["pending", "deferred", "delivered", "bounced"]},
                   "attempts": {"type": "integer", "minimum": 0}, "next_attempt": {"type": "number"},
                   "last_error": {"type": "string"}, "last_status": {"type": "string"},
                   "remote_mta": {"type": "string"}},
    "required": ["address", "state", "attempts", "next_attempt", "last_error", "last_status", "remote_mta"],
    "additionalProperties": False,
}
_MESSAGE_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "sender": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
    "created": {"type": "number", "description": "arrival time, seconds since the epoch"},
    "held": {"type": "boolean"}, "recipients": {"type": "array", "items": RECIPIENT},
}
MESSAGE = {"type": "object", "properties": _MESSAGE_PROPS, "required": list(_MESSAGE_PROPS),
           "additionalProperties": False}
NULLABLE_STRING = {"type": "string", "nullable": True}
DETAIL_PROPS: dict[str, Any] = _MESSAGE_PROPS | {
    "envelope": {"type": "object", "properties": {
        "ret": NULLABLE_STRING, "envid": NULLABLE_STRING, "smtputf8": {"type": "boolean"},
        "body_8bit": {"type": "boolean"}, "received_from": {"type": "string"}},
        "required": ["ret", "envid", "smtputf8", "body_8bit", "received_from"], "additionalProperties": False},
    "header": {"type": "string", "description": "the message's header section (not its body)"},
}
DETAIL = {"type": "object", "properties": DETAIL_PROPS, "required": list(DETAIL_PROPS),
          "additionalProperties": False}
ACTION = {"type": "object", "properties": {"action": {"type": "string", "enum": ["retry", "hold", "release"]}},
          "required": ["action"], "additionalProperties": False}


def setup(site: Site) -> None:
    site.page("GET", "/admin/queue", list_page, role=Role.ADMIN)
    site.page("GET", "/admin/queue/{id}", message_page, role=Role.ADMIN)
    site.page("POST", "/admin/queue/{id}", action_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/queue", "Outbound queue")
    tag = "admin"
    site.api("GET", "/api/v1/admin/queue", api_list, summary="List the outbound queue",
             response={"type": "array", "items": MESSAGE}, tag=tag)
    site.api("GET", "/api/v1/admin/queue/{id}", api_get, summary="One queued message: envelope, attempts, "
             "header", response=DETAIL, tag=tag)
    site.api("POST", "/api/v1/admin/queue/{id}/actions", api_action,
             summary="Retry now, hold, or release a queued message", request=ACTION, response=MESSAGE, tag=tag)
    site.api("DELETE", "/api/v1/admin/queue/{id}", api_delete, summary="Delete a queued message (no bounce)",
             response=None, status=204, tag=tag)


async def list_page(request: web.Request) -> web.StreamResponse:
    try:
        rows = await queue.list_all(request)
        error = ""
    except WebError as exc:  # no queue runs in this process
        rows, error = [], exc.message
    return render(request, "admin/queue.html", {"rows": rows, "utc": utc,
                                                  "errors": {"": error} if error else {}})


async def _detail(request: web.Request, errors: dict[str, str], status: int = 200) -> web.StreamResponse:
    msg_id = request.match_info["id"]
    msg = await queue.get(request, msg_id)  # NotFound → 404 page
    header = await queue.header(request, msg_id)
    return render(request, "admin/queue_message.html", {"msg": msg, "header": header, "utc": utc,
                                                           "errors": errors},
                  status=status)


async def message_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, {})


async def action_page(request: web.Request) -> web.StreamResponse:
    msg_id = request.match_info["id"]
    action = (await form(request)).get("action", "")
    try:
        if action not in ACTIONS:
            raise Invalid("the action is one of retry, hold, release, delete", "")
        left = await queue.act(request, msg_id, action)
    except WebError as exc:
        return await _detail(request, exc.errors(), exc.status)
    done = {"retry": "scheduled for delivery now", "hold": "held", "release": "released",
            "delete": "deleted"}[action]
    if left is None:
        return redirect(request, "/admin/queue", flash=f"Message {msg_id} {done}.")
    return redirect(request, f"/admin/queue/{msg_id}", flash=f"Message {msg_id} {done}.")


async def api_list(request: web.Request, body: None) -> list[dict[str, Any]]:
    return [queue.message_json(m) for m in await queue.list_all(request)]


async def api_get(request: web.Request, body: None) -> dict[str, Any]:
    msg_id = request.match_info["id"]
    msg = await queue.get(request, msg_id)
    return queue.message_json(msg, detail=True) | {"header": await queue.header(request, msg_id)}


async def api_action(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    msg = await queue.act(request, request.match_info["id"], body["action"])
    assert msg is not None  # only delete returns None
    return queue.message_json(msg)


async def api_delete(request: web.Request, body: None) -> None:
    await queue.act(request, request.match_info["id"], "delete")
