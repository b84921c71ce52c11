"""SELECT/EXAMINE with CONDSTORE and QRESYNC parameters, and VANISHED (EARLIER) (RFC 7162 §3.2).

Every SELECT/EXAMINE sends ``OK [HIGHESTMODSEQ n]`` (MODSEQs are kept for every mailbox, so
never ``NOMODSEQ``), and ``OK [CLOSED]`` first when it closes a selected mailbox (§3.2.11;
Dovecot sends it whether or not QRESYNC is enabled, and so do we).

Which UIDs vanished since the client's MODSEQ comes from the store's expunge log. When the
log was pruned past that MODSEQ (``MailboxChanges.log_floor``) it cannot say, and we report
instead every UID the client may know (its known-uids, or 1:UIDNEXT-1, or the UID FETCH set)
that is not in the mailbox: a superset of the truth, which §3.2.5.2 allows (a client ignores
UIDs it did not know). seq-match-data would let us narrow that superset; it is checked for
syntax and otherwise not needed. Sets are handled as ranges, so ``1:4294967295`` costs as
much as the messages actually in the mailbox, never four billion numbers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Sequence

from ..errors import Bad, ImapError
from ..parser.condstore import SelectArgs
from ..parser.seqset import STAR, SequenceSet
from ..responses import Reply, untagged
from ..selected import SelectedMailbox
from ..session import Session
from . import mailboxes
from .enabled import enable_condstore, sync_box

Ranges = list[tuple[int, int]]


def clip(s: SequenceSet, top: int) -> Ranges:
    """The set's ranges within 1..top (``*`` is ``top``), sorted and merged."""
    out: Ranges = []
    for a, b in s.ranges:
        a = top if a == STAR else a
        b = top if b == STAR else b
        if a > b:
            a, b = b, a
        b = min(b, top)
        if a <= b:
            out.append((a, b))
    out.sort()
    merged: Ranges = []
    for a, b in out:
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def missing(ranges: Ranges, present: Sequence[int]) -> Ranges:
    """The parts of ``ranges`` holding none of the sorted UIDs in ``present``."""
    out: Ranges = []
    for a, b in ranges:
        lo = a
        for u in present[bisect_left(present, a):bisect_right(present, b)]:
            if u > lo:
                out.append((lo, u - 1))
            lo = u + 1
        if lo <= b:
            out.append((lo, b))
    return out


def in_ranges(uids: Sequence[int], ranges: Ranges) -> Ranges:
    """The sorted ``uids`` that fall within ``ranges``, as ranges of one."""
    return [(u, u) for a, b in ranges for u in uids[bisect_left(uids, a):bisect_right(uids, b)]]


def fmt(ranges: Ranges) -> bytes:
    return b",".join(b"%d" % a if a == b else b"%d:%d" % (a, b) for a, b in ranges)


def vanished_line(ranges: Ranges) -> list[bytes]:
    return [untagged(b"VANISHED (EARLIER) " + fmt(ranges))] if ranges else []


async def _vanished(s: Session, box: SelectedMailbox, ranges: Ranges, since: int,
                    present: Sequence[int]) -> Ranges:
    """UIDs of ``ranges`` expunged after ``since`` and no longer in ``present`` (the view)."""
    ch = await s.store.changes_since(box.id, since)
    if not ch.complete_since(since):
        return missing(ranges, present)
    gone = [u for u in ch.expunged if box.seq_of(u) is None]  # still in the view: held back, sent later
    return in_ranges(gone, ranges)


async def vanished_for_uid_fetch(s: Session, box: SelectedMailbox, uidset: SequenceSet, since: int) -> list[bytes]:
    """§3.2.6: ``UID FETCH … (CHANGEDSINCE n VANISHED)``. UIDs at or above the UIDNEXT this
    session last saw were never known to it."""
    ranges = clip(uidset, box.mailbox.uidnext - 1)
    return vanished_line(await _vanished(s, box, ranges, since, box.uids))


async def _open(s: Session, a: SelectArgs, readonly: bool) -> Reply:
    if a.qresync is not None and "QRESYNC" not in s.enabled:
        raise Bad("QRESYNC is not enabled")  # §3.2.5: a BAD leaves the selected mailbox as it was
    closed = [untagged(b"OK [CLOSED] Previous mailbox closed")] if s.selected is not None else []
    s.selected = None
    enable_condstore(s, a.condstore or a.qresync is not None)
    try:
        reply = await mailboxes.open_mailbox(s, a.mailbox, readonly)
    except ImapError as exc:
        if not closed:
            raise
        return Reply(exc.text, exc.status, exc.code, untagged=closed)
    box = s.selected
    assert box is not None
    sync_box(s)
    out = closed + reply.untagged
    out.append(untagged(b"OK [HIGHESTMODSEQ %d] Highest" % box.modseq))  # §3.1.2.1
    q = a.qresync
    if q is not None and q.uidvalidity == box.mailbox.uidvalidity:
        # §3.2.5.2: what vanished since the client's MODSEQ, then the messages changed since.
        top = box.mailbox.uidnext - 1
        ranges = clip(q.known_uids, top) if q.known_uids is not None else ([(1, top)] if top else [])
        out += vanished_line(await _vanished(s, box, ranges, q.modseq, box.uids))
        # Flag changes: only of the known UIDs when the client listed them (§3.2.5, as Dovecot);
        # it asks for new messages itself (UID FETCH last+1:*).
        ch = await s.store.changes_since(box.id, q.modseq)
        for m in ch.changed:
            seq = box.seq_of(m.uid)
            if seq is not None and (q.known_uids is None or in_ranges([m.uid], ranges)):
                out.append(untagged(b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))"
                                    % (seq, m.uid, box.flags_wire(m), m.modseq)))
    reply.untagged = out
    return reply


async def select(s: Session, a: SelectArgs) -> Reply:
    return await _open(s, a, readonly=False)


async def examine(s: Session, a: SelectArgs) -> Reply:
    return await _open(s, a, readonly=True)
