"""THREAD and UID THREAD (RFC 5256 §3, §4): ORDEREDSUBJECT and REFERENCES.

The found messages and their envelopes come from ``handlers/sort.py``; REFERENCES
also needs the References field, which is not in the stored envelope, so it reads
the top-level header of each found message (in batches). The algorithms are in the
pure ``imap.threadalg``.
"""

from __future__ import annotations

from ...mime.headers import split_header
from ..parser.sort import ThreadArgs
from ..responses import Reply, untagged
from ..session import Session
from ..threadalg import Msg, format_threads, ordered_subject, references
from .fetch import read_messages
from .sort import Loaded, load, msg_ids

CAPS = ("THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")


def _msg(it: Loaded, by_uid: bool) -> Msg:
    return Msg(it.info.uid if by_uid else it.seq, it.seq, it.sent(), it.subject())


async def _with_refs(s: Session, items: list[Loaded], by_uid: bool) -> list[Msg]:
    out: list[Msg] = []
    batch = s.settings.batch
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        raws = await read_messages(s, [it.info for it in chunk], set())
        for it, raw in zip(chunk, raws):
            m = _msg(it, by_uid)
            env = it.parsed.envelope
            ids = msg_ids(env.message_id)
            m.message_id = ids[0] if ids else ""
            refs: list[str] = []
            if raw is not None:
                fields, _ = split_header(raw, it.parsed.root.header_start, it.parsed.root.body_start)
                for f in fields:
                    if f.name.lower() == b"references":
                        refs = msg_ids(f.value)  # the last References field, as ENVELOPE's rule
            if not refs:  # §4 (1A): no References, then the first In-Reply-To message-id
                refs = msg_ids(env.in_reply_to)[:1]
            m.refs = refs
            out.append(m)
    return out


async def thread(s: Session, a: ThreadArgs, by_uid: bool = False) -> Reply:
    items = await load(s, a.criteria)
    if a.algorithm == "ORDEREDSUBJECT":
        roots = ordered_subject(_msg(it, by_uid) for it in items)
    else:
        roots = references(await _with_refs(s, items, by_uid))
    line = b"THREAD" + (b" " + format_threads(roots) if roots else b"")
    return Reply("Thread completed", untagged=[untagged(line)])


async def uid_thread(s: Session, a: ThreadArgs) -> Reply:
    return await thread(s, a, by_uid=True)
