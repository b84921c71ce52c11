"""Junk training: a user's IMAP COPY/MOVE into or out of Junk teaches rspamd.

A message moved or copied into the account's Junk mailbox is sent to rspamd's controller
as ``POST /learnspam``; one moved or copied out of Junk into any mailbox but Trash as
``/learnham`` (out of Junk into Trash is "delete this spam", not "this was ham"). APPEND
into Junk teaches nothing: it is what clients do when they sync or import folders, not a
user's judgement of one message.

Each learn request carries ``Deliver-To: <account address>``, which rspamd uses for
per-user statistics when its classifier has ``per_user = true`` and ignores otherwise.

Junk is the mailbox with the RFC 6154 ``\\Junk`` use when the account has one, else the
one named "Junk"; Trash likewise with ``\\Trash``.

The IMAP handler calls :func:`transferred` after the store has committed the copy and
returns its reply at once: learning runs in a background task, one message at a time per
server, and its failures go to the log only (the client never hears of rspamd).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from .. import log
from . import rspamd
from .spamresult import strip_spam_headers

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..storage.models import Account, CopyResult, Mailbox

logger = log.get("abuse")

#: Background learn tasks one server keeps at once; a flood of moves beyond it is dropped
#: (and logged) rather than holding messages in memory without bound.
MAX_PENDING = 64
#: Messages learnt from one COPY/MOVE: a user who moves a whole folder is not training.
MAX_PER_COMMAND = 200


def _by_use(boxes: Sequence[Mailbox], use: str, name: str) -> int | None:
    for b in boxes:
        if b.special_use and use.lower() in b.special_use.lower().split():
            return b.id
    for b in boxes:
        if b.name.lower() == name.lower():
            return b.id
    return None


def transferred(ctx: ServerContext, account: Account | None, src: Mailbox, dst_id: int,
                res: CopyResult | None) -> None:
    """After COPY/MOVE (and their UID forms): start learning when Junk is involved."""
    if res is None or not res.pairs or account is None or src.id == dst_id:
        return
    s = rspamd.settings_for(ctx)
    if not s.controller_url:
        return
    tasks: set[asyncio.Task[None]] = ctx.state.setdefault("rspamd.training", set())
    if len(tasks) >= MAX_PENDING:
        logger.warning("junk training for %s skipped: %d learn jobs already pending", account.address, len(tasks))
        return
    uids = [p[1] for p in res.pairs[:MAX_PER_COMMAND]]
    task = asyncio.get_running_loop().create_task(_learn(ctx, s, account, src.id, dst_id, uids))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _lock(ctx: ServerContext) -> asyncio.Lock:
    lock = ctx.state.get("rspamd.training.lock")
    if not isinstance(lock, asyncio.Lock):
        lock = asyncio.Lock()
        ctx.state["rspamd.training.lock"] = lock
    return lock


async def _learn(ctx: ServerContext, s: rspamd.RspamdSettings, account: Account, src_id: int, dst_id: int,
                 uids: list[int]) -> None:
    try:
        boxes = await ctx.store.list_mailboxes(account.id)
        junk = _by_use(boxes, "\\Junk", "Junk")
        trash = _by_use(boxes, "\\Trash", "Trash")
        if junk is None:
            return
        if dst_id == junk:
            kind = "spam"
        elif src_id == junk and dst_id != trash:
            kind = "ham"
        else:
            return
        msgs = await ctx.store.get_messages(dst_id, uids)
        headers: CIMultiDict[str] = CIMultiDict()
        if s.password:
            headers["Password"] = s.password
        headers["Deliver-To"] = account.address
        learnt = already = failed = 0
        async with _lock(ctx):  # one message at a time: rspamd's controller is single-threaded
            for m in msgs:
                raw, _ = strip_spam_headers(await ctx.store.read_message(m))
                try:
                    await rspamd.post(f"{s.controller_url}/learn{kind}", raw, headers, s.timeout)
                    learnt += 1
                except rspamd.RspamdError as exc:
                    # "already learned" (HTTP 208 in newer rspamd, 404 in 3.4): moved back and forth.
                    if "HTTP 208" in str(exc) or "already learned" in str(exc):
                        already += 1
                        continue
                    failed += 1
                    logger.warning("junk training: learn%s for %s uid %d failed: %s", kind, account.address,
                                   m.uid, exc)
        logger.info("junk training: learn%s for %s learnt=%d already=%d failed=%d", kind, account.address,
                    learnt, already, failed)
    except Exception:  # a background task's failure must reach the log, not vanish
        logger.exception("junk training for %s failed", account.address)


async def drain(ctx: ServerContext, timeout: float) -> None:
    """At shutdown: running learn jobs get ``timeout`` seconds, then are cancelled, before
    the store they read from closes (a job cut short is logged; the mail itself is safe)."""
    tasks: set[asyncio.Task[None]] = ctx.state.get("rspamd.training") or set()
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for t in late:
        t.cancel()
    if late:
        logger.warning("junk training: %d learn jobs cancelled at shutdown", len(late))
        await asyncio.wait(late, timeout=1.0)
