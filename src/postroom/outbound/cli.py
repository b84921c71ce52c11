"""``postroom queue …``: list (like mailq), show, flush, retry, hold, release, delete.

Works on the queue database directly, so it needs no running server; a running
server's runner sees flush/retry/release within ``[outbound] poll_interval`` (with
PostgreSQL at once: they NOTIFY every node's runner).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timezone
from typing import Any

from ..config import Config
from ..errors import NotFound
from .backends import open_queue
from .queue import QueuedMessage
from .settings import parse


def register(subparsers: Any) -> None:
    q = subparsers.add_parser("queue", help="inspect and manage the outbound queue")
    qs = q.add_subparsers(dest="queue_cmd", metavar="COMMAND", required=True)
    qs.add_parser("list", help="every queued message with its recipients (like mailq)")
    for name, text in (("show", "one message: envelope, recipients, state, last error"),
                       ("retry", "try a message's pending recipients now"),
                       ("hold", "keep a message from being delivered until released"),
                       ("release", "let a held message be delivered again"),
                       ("delete", "remove a message without notice to the sender")):
        sp = qs.add_parser(name, help=text)
        sp.add_argument("id", help="queue id, as `queue list` shows it")
        if name == "show":
            sp.add_argument("--body", action="store_true", help="print the message too")
    qs.add_parser("flush", help="try every queued message now")
    q.set_defaults(run=run)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _format(m: QueuedMessage, now: float, detail: bool = False) -> list[str]:
    flag = "!" if m.held else " "
    lines = [f"{m.id}{flag} {m.size:>9} {_when(m.created)}  <{m.sender}>"]
    for r in m.recipients:
        state = r.state.value
        if r.state.value == "deferred":
            state += f", next attempt in {max(0, r.next_attempt - now):.0f}s"
        lines.append(f"{'':>14}<{r.address}> {state}, {r.attempts} attempt(s)")
        if r.last_error:
            lines.append(f"{'':>16}{r.last_error}")
        if detail and (r.notify or r.orcpt):
            lines.append(f"{'':>16}NOTIFY={','.join(r.notify) or '-'} ORCPT={r.orcpt or '-'}")
    if detail:
        e = m.envelope
        lines.append(f"{'':>14}RET={e.ret or '-'} ENVID={e.envid or '-'} SMTPUTF8={e.smtputf8} "
                     f"8BITMIME={e.body_8bit} from={e.received_from or '-'} held={m.held}")
    return lines


async def _main(cfg: Config, args: argparse.Namespace) -> int:
    q = await open_queue(cfg, parse(cfg, []))
    now = time.time()
    try:
        cmd = args.queue_cmd
        if cmd == "list":
            msgs = await q.messages()
            if not msgs:
                print("Mail queue is empty")
                return 0
            print("-Queue ID-      --Size-- ----Arrival Time---  -Sender/Recipient-------")
            for m in msgs:
                print("\n".join(_format(m, now)))
            print(f"-- {sum(m.size for m in msgs) // 1024} Kbytes in {len(msgs)} request(s).")
            return 0
        if cmd == "flush":
            n = await q.reschedule(now)
            print(f"{n} recipient(s) scheduled for delivery now")
            return 0
        msg = await q.get(args.id)
        if msg is None:
            raise NotFound(f"no queued message {args.id}")
        if cmd == "show":
            print("\n".join(_format(msg, now, detail=True)))
            if args.body:
                print()
                print((await q.read_body(msg.id)).decode("utf-8", "replace"))
        elif cmd == "retry":
            print(f"{await q.reschedule(now, msg_id=msg.id)} recipient(s) of {msg.id} scheduled now")
        elif cmd in ("hold", "release"):
            await q.set_held(msg.id, cmd == "hold")
            print(f"{msg.id} {'held' if cmd == 'hold' else 'released'}")
            if cmd == "release":
                await q.reschedule(now, msg_id=msg.id)
        elif cmd == "delete":
            await q.delete(msg.id)
            print(f"{msg.id} deleted")
        return 0
    finally:
        await q.close()


def run(cfg: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_main(cfg, args))
