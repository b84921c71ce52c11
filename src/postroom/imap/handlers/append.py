"""APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and APPENDUID
(RFC 4315).

Every message of the command is checked (size, quota, disk) and assembled before anything
is written, and all of them are stored in one transaction (``store.append_many``): a
failure of any leaves the mailbox as it was (RFC 3502 §3). The literals were all read by
the framer before the handler runs, so a refusal never leaves the connection mid-command.

CATENATE's URL parts may only name messages of the logged-in account's own mailboxes: the
mailbox is looked up under the session's account whatever the URL says, and a URL naming
another user (or host), or one that does not resolve, is ``NO [BADURL url]``.
"""

from __future__ import annotations

from ... import mime
from ...budget import budget_for
from ...config import Limits
from ...errors import MailboxNotFound
from ...storage.api import has_room
from ...storage.models import NewMessage
from ..errors import No, trycreate
from ..parser import imapurl
from ..parser.args import AppendArgs, CatPart
from ..responses import Reply
from ..session import Session
from . import quota

CAPS = ("MULTIAPPEND", "CATENATE")  # RFC 3502, RFC 4469
MULTIAPPEND_FACTOR = 4


def command_limit(limits: Limits) -> int:
    """The most one APPEND may carry in all (literals and URL parts together): a few messages'
    worth, never more than the memory budget. Each message is bounded by ``message_size``."""
    return max(limits.message_size, min(MULTIAPPEND_FACTOR * limits.message_size, limits.message_memory))


def _toobig() -> No:
    return No("Message too large", b"TOOBIG")


def _badurl(raw: bytes, text: str = "Bad URL") -> No:
    # RFC 4469 §6: the response code names the URL that failed.
    return No(text, b"BADURL " + imapurl.for_response(raw))


class _Held:
    """Bytes read from the store for URL parts, counted in the process's memory budget."""

    def __init__(self, s: Session) -> None:
        self.budget = budget_for(s.ctx)
        self.taken = 0

    def take(self, n: int) -> None:
        if not self.budget.take(n):
            raise No("Server busy, try again later", b"UNAVAILABLE")
        self.taken += n

    def release(self) -> None:
        self.budget.give_back(self.taken)
        self.taken = 0


async def _url_data(s: Session, raw: bytes) -> bytes:
    try:
        url = imapurl.parse(raw)
    except imapurl.UrlError:
        raise _badurl(raw) from None
    if url.user is not None:
        assert s.account is not None
        # Only the logged-in user's own mail, on this server (RFC 4469 §5).
        if url.user.lower() != s.account.address.lower() or url.host != s.ctx.config.hostname.lower():
            raise _badurl(raw)
    store = s.store
    mb = await store.get_mailbox(s.account_id, url.mailbox)  # the session's account, always
    if mb is None or mb.uidvalidity != url.uidvalidity:
        raise _badurl(raw)
    info = (await store.message_index(mb.id)).get(url.uid)
    if info is None:
        raise _badurl(raw)
    try:
        data = await store.read_message(info)
        if url.section is not None:
            part = mime.section(data, await store.read_structure(info), url.section)
            if part is None:
                raise _badurl(raw)
            data = part
    except FileNotFoundError:
        raise _badurl(raw) from None  # expunged meanwhile
    if url.partial is not None:
        start, length = url.partial
        data = data[start:] if length is None else data[start:start + length]
    return data


async def _catenate(s: Session, parts: tuple[CatPart, ...], limit: int, held: _Held) -> bytes:
    out: list[bytes] = []
    size = 0
    for part in parts:
        if part.text is not None:
            data = part.text
        else:
            assert part.url is not None
            data = await _url_data(s, part.url)
            held.take(len(data))
        size += len(data)
        if size > limit:
            raise _toobig()  # RFC 4469 §5: the result is bounded as any APPEND is
        out.append(data)
    return b"".join(out)


async def append(s: Session, a: AppendArgs) -> Reply:
    limits = s.ctx.config.limits
    held = _Held(s)
    try:
        messages = []
        total = 0
        for m in a.messages:
            raw = await _catenate(s, m.catenate, limits.message_size, held) if m.catenate else m.message
            if not raw:
                # Also how a client cancels a MULTIAPPEND (RFC 3502 §6.3.11): nothing is stored.
                raise No("Empty message")
            if len(raw) > limits.message_size:
                raise _toobig()
            total += len(raw)
            if total > command_limit(limits):
                raise _toobig()
            messages.append(NewMessage(raw, m.flags, m.date))
        await quota.check_room(s, total, len(messages))  # RFC 9208 §4.3, for all of them
        if len(messages) > 1 and not has_room(await s.ctx.store.free_space(), total):
            raise No("Not enough disk space", b"OVERQUOTA")
        try:
            if len(messages) == 1:
                m0 = messages[0]
                done = [await s.store.append(s.account_id, a.mailbox, m0.raw, m0.flags, m0.internaldate)]
            else:
                done = await s.store.append_many(s.account_id, a.mailbox, messages)
        except MailboxNotFound:
            raise trycreate() from None
    finally:
        held.release()
    # RFC 4315 §3: APPENDUID uidvalidity uid-set; one transaction gives consecutive UIDs.
    return Reply("Append completed", code=b"APPENDUID %d " % done[0].uidvalidity + uid_set([d.uid for d in done]))


def uid_set(uids: list[int]) -> bytes:
    """Ascending UIDs as a compact uid-set (RFC 4315 §4): "5", "5:7", "5:7,9"."""
    runs: list[bytes] = []
    start = prev = uids[0]
    for uid in uids[1:] + [0]:
        if uid == prev + 1:
            prev = uid
            continue
        runs.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = uid
    return b",".join(runs)
