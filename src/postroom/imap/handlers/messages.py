"""Selected state (RFC 3501 §6.4) except FETCH and SEARCH: CHECK, CLOSE, UNSELECT,
EXPUNGE, STORE, COPY, MOVE (RFC 6851) and UID EXPUNGE (RFC 4315)."""

from __future__ import annotations

from ...abuse import training
from ...errors import MailboxNotFound
from ...storage.models import SYSTEM_FLAGS, FlagOp, MessageInfo
from ..errors import No, trycreate
from ..parser.args import CopyArgs, StoreArgs
from ..parser.seqset import SequenceSet, compress
from ..responses import Reply, flag_list, untagged
from ..selected import SelectedMailbox
from ..session import Session, State
from . import quota


def sel(s: Session) -> SelectedMailbox:
    assert s.selected is not None
    return s.selected


def resolve(box: SelectedMailbox, seqset: SequenceSet, by_uid: bool) -> list[int]:
    """UIDs named by a sequence set, in ascending order."""
    if seqset.saved:
        # RFC 5182 §2.1: "$" is the saved result less what was expunged since; the same
        # messages for the UID and the sequence-number forms. Empty is not an error.
        return [u for u in box.saved if box.seq_of(u) is not None]
    idx = seqset.uid_indexes(box.uids) if by_uid else seqset.seq_indexes(box.exists)
    uids = box.uids
    if idx and idx[-1] - idx[0] + 1 == len(idx):
        return list(uids[idx[0]:idx[-1] + 1])  # one run (ascending, no repeats): a slice
    return [uids[i] for i in idx]


def _writable(box: SelectedMailbox) -> None:
    if box.readonly:
        raise No("Mailbox is read-only", b"READ-ONLY")


async def check(s: Session, _: None) -> Reply:
    return Reply("Check completed")  # every change is already durable (§6.4.1)


async def close(s: Session, _: None) -> Reply:
    box = sel(s)
    if not box.readonly:
        # §6.4.2: silently expunge \Deleted messages (no EXPUNGE responses).
        await s.store.expunge(box.id, box.uids)
    s.selected = None
    s.state = State.AUTHENTICATED
    return Reply("Close completed")


async def unselect(s: Session, _: None) -> Reply:
    s.selected = None  # RFC 3691: like CLOSE without the expunge
    s.state = State.AUTHENTICATED
    return Reply("Unselect completed")


async def _expunged(s: Session, box: SelectedMailbox, gone: list[int]) -> Reply:
    out = box.remove(gone)
    code = None
    if box.condstore:
        # RFC 7162 §3.1.10 (as Dovecot): the tagged OK gives the HIGHESTMODSEQ, once this
        # session has been sent every change up to it (the updates go here, not after).
        out += await box.poll(s.store, allow_expunge=True)
        code = b"HIGHESTMODSEQ %d" % box.modseq
    return Reply("Expunge completed", code=code, untagged=out)


async def expunge(s: Session, _: None) -> Reply:
    box = sel(s)
    _writable(box)
    return await _expunged(s, box, await s.store.expunge(box.id, None))


async def uid_expunge(s: Session, seqset: SequenceSet) -> Reply:
    box = sel(s)
    _writable(box)
    uids = resolve(box, seqset, True)
    return await _expunged(s, box, await s.store.expunge(box.id, uids) if uids else [])


# -- STORE (§6.4.6) ---------------------------------------------------------------------
def _keywords_update(box: SelectedMailbox, flags: frozenset[str]) -> list[bytes]:
    new = {f for f in flags if not f.startswith("\\")} - box.keywords
    if not new:
        return []
    box.keywords |= new
    # §7.2.6: tell the client the flags now defined in the mailbox.
    return [untagged(b"FLAGS " + flag_list(SYSTEM_FLAGS + tuple(sorted(box.keywords))))]


def _note_store(box: SelectedMailbox, updated: tuple[MessageInfo, ...]) -> None:
    """Record this session's own flag changes, so that the next poll does not echo them.

    When they took the MODSEQ right after the last one this view has seen, nothing else can
    have happened in between (MODSEQs are whole numbers, strictly increasing per mailbox), so
    the view is current up to it: the poll after the command then finds nothing to read
    (``Store.changes_since`` answers from the mailbox row alone). Not with live search
    contexts, which must re-check the changed messages (RFC 5267 §4.3.3).
    """
    box.note_own(updated)
    if updated and box.contexts is None:
        top = updated[0].modseq
        if top == box.modseq + 1 and all(m.modseq == top for m in updated):
            box.modseq = top


async def store(s: Session, a: StoreArgs, by_uid: bool = False, unchangedsince: int | None = None) -> Reply:
    box = sel(s)
    _writable(box)
    uids = resolve(box, a.seqset, by_uid)
    if not uids:
        return Reply("Store completed")
    for f in a.flags:
        if f.startswith("\\") and f not in SYSTEM_FLAGS:
            raise No("Unknown system flag", b"CANNOT")
    res = await s.store.store_flags(box.id, uids, a.op, a.flags, unchangedsince)
    _note_store(box, res.updated)
    out = _keywords_update(box, a.flags) if a.op is not FlagOp.REMOVE else []
    # RFC 7162 §3.1.3: messages changed since UNCHANGEDSINCE are left alone and named in
    # [MODIFIED] (UIDs for UID STORE); 0 fails for every message.
    failed = sorted(set(res.failed))
    code = None
    if failed:
        named = failed if by_uid else sorted(n for u in failed if (n := box.seq_of(u)) is not None)
        code = b"MODIFIED " + compress(named).encode()
    done = "Conditional STORE failed" if failed else "Store completed"
    # With QRESYNC every FETCH response carries the UID (RFC 7162 §3.2.4), and for a rev2
    # client too (RFC 9051 §7.5.2: unsolicited FETCH responses MUST include UID).
    with_uid = by_uid or box.qresync or box.rev2
    if a.silent:
        if box.condstore:
            # §3.1.3: with CONDSTORE the new MODSEQs are sent even for .SILENT.
            for m in res.updated:
                seq = box.seq_of(m.uid)
                if seq is not None:
                    uid_item = b"UID %d " % m.uid if with_uid else b""
                    out.append(untagged(b"%d FETCH (%sMODSEQ (%d))" % (seq, uid_item, m.modseq)))
        return Reply(done, code=code, untagged=out)
    # §6.4.6: an untagged FETCH with the new flags of every message in the set.
    infos = {m.uid: m for m in res.updated}
    skip = set(failed)
    rest = [u for u in uids if u not in infos and u not in skip]
    if rest:
        infos.update((m.uid, m) for m in await s.store.get_messages(box.id, rest))
    for uid in uids:
        m = infos.get(uid)
        seq = box.seq_of(uid)
        if m is None or seq is None:
            continue
        uid_item = b"UID %d " % uid if with_uid else b""
        modseq_item = b"MODSEQ (%d) " % m.modseq if box.condstore else b""
        out.append(untagged(b"%d FETCH (%s%sFLAGS %s)" % (seq, uid_item, modseq_item, box.flags_wire(m))))
    return Reply(done, code=code, untagged=out)


# -- COPY / MOVE (§6.4.7, RFC 6851, RFC 4315 COPYUID) -----------------------------------
async def _target(s: Session, name: str) -> int:
    mb = await s.store.get_mailbox(s.account_id, name)
    if mb is None:
        raise trycreate()
    return mb.id


def _copyuid(res) -> bytes | None:  # type: ignore[no-untyped-def]
    if not res.pairs:
        return None
    src = compress([p[0] for p in res.pairs]).encode()
    dst = compress([p[1] for p in res.pairs]).encode()
    return b"COPYUID %d %s %s" % (res.uidvalidity, src, dst)


async def _transfer(s: Session, a: CopyArgs, by_uid: bool, move: bool):  # type: ignore[no-untyped-def]
    """COPY or MOVE: the UIDs, then the store's result (None when the set is empty)."""
    box = sel(s)
    if move:
        _writable(box)
    uids = resolve(box, a.seqset, by_uid)
    dst = await _target(s, a.mailbox)
    if not uids:
        return None
    if not move:
        # RFC 9208 §4.3: a COPY the account's quota cannot take is refused whole. MOVE is
        # not checked: its mailboxes share the account's one quota root, so it uses no more
        # (and moving mail to Trash is how a user over quota gets under it; Dovecot agrees).
        idx = await s.store.message_index(box.id)
        await quota.check_room(s, sum(idx.size_of(u) or 0 for u in uids), len(uids))
    try:
        if move:
            res = await s.store.move_messages(box.id, uids, dst)
        else:
            res = await s.store.copy_messages(box.id, uids, dst)
    except MailboxNotFound:
        raise trycreate() from None
    training.transferred(s.ctx, s.account, box.mailbox, dst, res)  # into/out of Junk: rspamd learns, later
    return res


async def copy(s: Session, a: CopyArgs, by_uid: bool = False) -> Reply:
    res = await _transfer(s, a, by_uid, move=False)
    return Reply("Copy completed", code=_copyuid(res) if res else None)


async def uid_copy(s: Session, a: CopyArgs) -> Reply:
    return await copy(s, a, by_uid=True)


async def move(s: Session, a: CopyArgs, by_uid: bool = False) -> Reply:
    res = await _transfer(s, a, by_uid, move=True)
    out = []
    if res is not None:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        code = _copyuid(res)
        if code:
            out.append(untagged(b"OK [" + code + b"] Moved"))
        out += sel(s).remove([p[0] for p in res.pairs])
    return Reply("Move completed", untagged=out)


async def uid_move(s: Session, a: CopyArgs) -> Reply:
    return await move(s, a, by_uid=True)
