"""The outbound queue for ``/admin/queue`` and ``/api/v1/admin/queue``.

It calls the same queue backend methods ``postroom queue`` (``outbound/cli.py``) does:
``messages``, ``get``, ``read_body``, ``reschedule``, ``set_held``, ``delete``, on the
queue the running outbound service holds, so the runner is woken at once after a retry
or a release instead of at its next poll. A message's detail shows its header, not its
body (which may be large and is someone's mail).
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from ...outbound.queue import QueueBackend, QueuedMessage
from ...outbound.service import OutboundService
from ..errors import Conflict, Invalid, NotFound
from ..site import ctx_of

HEADER_MAX = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _service(request: web.Request) -> OutboundService:
    ctx = ctx_of(request)
    for candidate in (getattr(ctx, "outbound", None), ctx.state.get("outbound")):
        if isinstance(candidate, OutboundService):
            return candidate
    raise Conflict("this server runs no outbound queue (no [outbound] service started)")


def _queue(request: web.Request) -> QueueBackend:
    return _service(request).queue


def _wake(request: web.Request) -> None:
    runner = _service(request).runner
    if runner is not None:
        runner.wake()


def message_json(m: QueuedMessage, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id, "sender": m.sender, "size": m.size, "created": m.created, "held": m.held,
        "recipients": [{"address": r.address, "state": r.state.value, "attempts": r.attempts,
                        "next_attempt": r.next_attempt, "last_error": r.last_error,
                        "last_status": r.last_status, "remote_mta": r.remote_mta}
                       for r in m.recipients],
    }
    if detail:
        e = m.envelope
        out["envelope"] = {"ret": e.ret, "envid": e.envid, "smtputf8": e.smtputf8, "body_8bit": e.body_8bit,
                           "received_from": e.received_from}
    return out


def check_id(value: str) -> str:
    if not _ID.match(value):
        raise Invalid("not a queue id", "id")
    return value


async def list_all(request: web.Request) -> list[QueuedMessage]:
    return await _queue(request).messages()


async def get(request: web.Request, msg_id: str) -> QueuedMessage:
    found = await _queue(request).get(check_id(msg_id))
    if found is None:
        raise NotFound(f"no queued message {msg_id}", "id")
    return found


async def header(request: web.Request, msg_id: str) -> str:
    """The message's header section (up to 64 KiB), as text, for the detail page."""
    try:
        raw = await _queue(request).read_body(check_id(msg_id))
    except FileNotFoundError:
        raise NotFound(f"no queued message {msg_id}", "id") from None
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end]
    return head[:HEADER_MAX].decode("utf-8", "replace")


async def act(request: web.Request, msg_id: str, action: str) -> QueuedMessage | None:
    """retry / hold / release / delete, as ``postroom queue`` does them; None after delete."""
    q = _queue(request)
    msg = await get(request, msg_id)
    now = time.time()
    if action == "retry":
        await q.reschedule(now, msg_id=msg.id)
    elif action in ("hold", "release"):
        await q.set_held(msg.id, action == "hold")
        if action == "release":
            await q.reschedule(now, msg_id=msg.id)
    elif action == "delete":
        await q.delete(msg.id)
        return None
    else:
        raise Invalid("the action is one of retry, hold, release, delete", "action")
    if action in ("retry", "release"):
        _wake(request)
    return await get(request, msg.id)
