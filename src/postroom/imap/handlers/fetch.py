"""FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2).

Messages are read in batches of ``settings.batch`` UIDs: one ``get_messages`` query
per batch, then the structure (ENVELOPE, BODYSTRUCTURE, sections) and the bytes only
for the attributes that need them. The response is streamed, so FETCH 1:* of a big
mailbox does not build one huge buffer.
"""

from __future__ import annotations

from typing import AsyncIterator

from ... import mime
from ...storage.models import FlagOp, MessageInfo
from ..parser.args import FetchArgs
from ..parser.fetch import BodySection
from ..responses import Reply, flag_list, internaldate, literal
from ..selected import SelectedMailbox
from ..session import Session
from .messages import resolve, sel

_NEEDS_STRUCTURE = {"ENVELOPE", "BODY", "BODYSTRUCTURE"}


def _section_bytes(raw: bytes, parsed: "mime.ParsedMessage", sec: BodySection) -> bytes:
    if sec.part or sec.text or sec.fields:
        data = mime.section(raw, parsed, sec.spec().decode("ascii", "replace"))
        if data is None:
            data = b""  # a part that does not exist reads as empty (as Dovecot answers)
    else:
        data = raw
    if sec.partial is not None:
        start, length = sec.partial
        data = data[start : start + length]  # §6.4.5: past the end gives an empty string
    return data


async def fetch(s: Session, a: FetchArgs, by_uid: bool = False) -> Reply:
    box = sel(s)
    uids = resolve(box, a.seqset, by_uid)
    atts = list(a.atts)
    if by_uid and "UID" not in atts:
        atts.insert(0, "UID")  # §6.4.8: UID FETCH always returns the UID
    reply = Reply("Fetch completed")
    if uids:
        reply.stream = _stream(s, box, uids, atts, reply)
    return reply


async def _stream(s: Session, box: SelectedMailbox, uids: list[int], atts: list, reply: Reply) -> AsyncIterator[bytes]:
    store = s.store
    sections = [x for x in atts if isinstance(x, BodySection)]
    need_raw = bool(sections)
    need_structure = any(x in _NEEDS_STRUCTURE for x in atts) or any(
        x.part or x.text for x in sections)
    sets_seen = not box.readonly and any(x.sets_seen for x in sections)
    want_flags = "FLAGS" in atts
    batch = s.settings.batch
    missing = False
    for i in range(0, len(uids), batch):
        chunk = uids[i : i + batch]
        infos = await store.get_messages(box.id, chunk)
        if len(infos) != len(chunk):
            missing = True
        seen_changed: set[int] = set()
        if sets_seen:
            unseen = [m.uid for m in infos if "\\Seen" not in m.flags]
            if unseen:
                res = await store.store_flags(box.id, unseen, FlagOp.ADD, frozenset({"\\Seen"}))
                box.note_own(res.updated)
                upd = {m.uid: m for m in res.updated}
                seen_changed = set(upd)
                infos = [upd.get(m.uid, m) for m in infos]
        out: list[bytes] = []
        for m in infos:
            seq = box.seq_of(m.uid)
            if seq is None:
                continue
            try:
                raw = await store.read_message(m) if need_raw else b""
                parsed = await store.read_structure(m) if need_structure else None
            except Exception:  # expunged and its blob gone in between: skip it (RFC 2180 §4.1)
                s.ctx.log.debug("imap fetch: message %d vanished", m.uid, exc_info=True)
                missing = True
                continue
            items = [_item(att, m, box, raw, parsed) for att in atts]
            if m.uid in seen_changed and not want_flags:
                # §6.4.5: \Seen was set as a side effect: report the new flags.
                items.append(b"FLAGS " + flag_list(box.flags_of(m)))
            out.append(b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n")
        yield b"".join(out)
    if missing:
        # RFC 5530 EXPUNGEISSUED: some messages were expunged by another session.
        reply.status, reply.code, reply.text = b"NO", b"EXPUNGEISSUED", "Some messages were expunged"


def _item(att: object, m: MessageInfo, box: SelectedMailbox, raw: bytes, parsed: object) -> bytes:
    if isinstance(att, BodySection):
        return att.response_name() + b" " + literal(_section_bytes(raw, parsed, att))  # type: ignore[arg-type]
    if att == "UID":
        return b"UID %d" % m.uid
    if att == "FLAGS":
        return b"FLAGS " + flag_list(box.flags_of(m))
    if att == "INTERNALDATE":
        return b"INTERNALDATE " + internaldate(m.internaldate)
    if att == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % m.size
    if att == "ENVELOPE":
        return b"ENVELOPE " + mime.envelope(parsed)  # type: ignore[arg-type]
    if att == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + mime.bodystructure(parsed, extended=True)  # type: ignore[arg-type]
    if att == "BODY":
        return b"BODY " + mime.bodystructure(parsed, extended=False)  # type: ignore[arg-type]
    raise AssertionError(att)


async def uid_fetch(s: Session, a: FetchArgs) -> Reply:
    return await fetch(s, a, by_uid=True)
