"""ENABLE (RFC 5161) and the CONDSTORE forms of FETCH and STORE (RFC 7162 §3.1).

CONDSTORE is switched on for the rest of the connection by ENABLE CONDSTORE / QRESYNC or by
the first "CONDSTORE enabling command" (§3.1): SELECT/EXAMINE (CONDSTORE), STATUS
(HIGHESTMODSEQ), FETCH MODSEQ, FETCH (CHANGEDSINCE), STORE (UNCHANGEDSINCE), SEARCH MODSEQ.
From then on every FETCH response that carries FLAGS also carries MODSEQ (selected.py,
fetch.py, messages.py). QRESYNC is switched on only by ENABLE (§3.2.3); SELECT (QRESYNC …)
and VANISHED are in qresync.py.
"""

from __future__ import annotations

from ..errors import Bad
from ..parser.condstore import CondFetchArgs, CondStoreArgs
from ..parser.seqset import SequenceSet, compress
from ..responses import Reply, untagged
from ..session import Session
from . import fetch as fetch_handlers
from . import messages, qresync
from .enabled import SUPPORTED, enable_condstore, sync_box

# RFC 5161 ENABLE; RFC 7162 CONDSTORE and QRESYNC (QRESYNC implies CONDSTORE, §3.2.3).
CAPS = ("ENABLE", "CONDSTORE", "QRESYNC")

async def enable(s: Session, caps: list[str]) -> Reply:
    """RFC 5161 §3.1: ``* ENABLED`` lists what this command switched on (unknown names and
    those already enabled are left out); enabling QRESYNC enables CONDSTORE (RFC 7162 §3.2.3)."""
    known = {c.upper(): c for c in SUPPORTED}  # the parser upper-cases; "IMAP4rev2" is spelled so
    newly = [known[c] for c in dict.fromkeys(caps) if c in known and known[c] not in s.enabled]
    s.enabled.update(newly)
    if "QRESYNC" in s.enabled:
        s.enabled.add("CONDSTORE")
    sync_box(s)
    line = b"ENABLED" + b"".join(b" " + c.encode() for c in newly)
    return Reply("Enable completed", untagged=[untagged(line)])


async def fetch(s: Session, a: CondFetchArgs, by_uid: bool = False) -> Reply:
    box = messages.sel(s)
    if a.vanished:
        # §3.2.6: only UID FETCH, only once QRESYNC is enabled.
        if not by_uid:
            raise Bad("VANISHED is only allowed with UID FETCH")
        if "QRESYNC" not in s.enabled:
            raise Bad("QRESYNC is not enabled")
    head = enable_condstore(s, "MODSEQ" in a.atts or a.changedsince is not None)
    uids = messages.resolve(box, a.seqset, by_uid)
    atts = list(a.atts)
    if a.changedsince is not None:
        # §3.1.4.1: only messages whose MODSEQ is above the value; MODSEQ is implied. A value
        # beyond HIGHESTMODSEQ matches nothing (an OK with no FETCH responses).
        idx = await s.store.message_index(box.id)
        since = a.changedsince
        uids = [u for u in uids if (m := idx.get(u)) is not None and m.modseq > since]
        if "MODSEQ" not in atts:
            atts.append("MODSEQ")
        if a.vanished:
            uidset = a.seqset
            if uidset.saved:  # RFC 5182 "$": the saved UIDs, expunged ones included
                uidset = SequenceSet.from_bytes(compress(box.saved).encode()) if box.saved else SequenceSet(())
            head += await qresync.vanished_for_uid_fetch(s, box, uidset, since)
    return await fetch_handlers.fetch_reply(s, box, uids, atts, by_uid, head)


async def uid_fetch(s: Session, a: CondFetchArgs) -> Reply:
    return await fetch(s, a, by_uid=True)


async def store(s: Session, a: CondStoreArgs, by_uid: bool = False) -> Reply:
    head = enable_condstore(s, a.unchangedsince is not None)
    reply = await messages.store(s, a.store, by_uid, a.unchangedsince)
    reply.untagged[:0] = head
    return reply


async def uid_store(s: Session, a: CondStoreArgs) -> Reply:
    return await store(s, a, by_uid=True)
