"""Selected state (RFC 3501 §6.4) except FETCH and SEARCH: CHECK, CLOSE, UNSELECT,
EXPUNGE, STORE, COPY, MOVE (RFC 6851) and UID EXPUNGE (RFC 4315)."""

from __future__ import annotations

from ...errors import MailboxNotFound
from ...storage.models import SYSTEM_FLAGS, FlagOp
from ..errors import No, trycreate
from ..parser.args import CopyArgs, StoreArgs
from ..parser.seqset import SequenceSet, compress
from ..responses import Reply, flag_list, untagged
from ..selected import SelectedMailbox
from ..session import Session, State


def sel(s: Session) -> SelectedMailbox:
    assert s.selected is not None
    return s.selected


def resolve(box: SelectedMailbox, seqset: SequenceSet, by_uid: bool) -> list[int]:
    """UIDs named by a sequence set, in ascending order."""
    idx = seqset.uid_indexes(box.uids) if by_uid else seqset.seq_indexes(box.exists)
    uids = box.uids
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


async def expunge(s: Session, _: None) -> Reply:
    box = sel(s)
    _writable(box)
    gone = await s.store.expunge(box.id, None)
    return Reply("Expunge completed", untagged=box.remove(gone))


async def uid_expunge(s: Session, seqset: SequenceSet) -> Reply:
    box = sel(s)
    _writable(box)
    uids = resolve(box, seqset, True)
    gone = await s.store.expunge(box.id, uids) if uids else []
    return Reply("Expunge completed", untagged=box.remove(gone))


# -- STORE (§6.4.6) ---------------------------------------------------------------------
def _keywords_update(box: SelectedMailbox, flags: frozenset[str]) -> list[bytes]:
    new = {f for f in flags if not f.startswith("\\")} - box.keywords
    if not new:
        return []
    box.keywords |= new
    # §7.2.6: tell the client the flags now defined in the mailbox.
    return [untagged(b"FLAGS " + flag_list(SYSTEM_FLAGS + tuple(sorted(box.keywords))))]


async def store(s: Session, a: StoreArgs, by_uid: bool = False) -> Reply:
    box = sel(s)
    _writable(box)
    uids = resolve(box, a.seqset, by_uid)
    if not uids:
        return Reply("Store completed")
    for f in a.flags:
        if f.startswith("\\") and f not in SYSTEM_FLAGS:
            raise No("Unknown system flag", b"CANNOT")
    res = await s.store.store_flags(box.id, uids, a.op, a.flags)
    box.note_own(res.updated)
    out = _keywords_update(box, a.flags) if a.op is not FlagOp.REMOVE else []
    if a.silent:
        return Reply("Store completed", untagged=out)
    # §6.4.6: an untagged FETCH with the new flags of every message in the set.
    infos = {m.uid: m for m in res.updated}
    rest = [u for u in uids if u not in infos]
    if rest:
        infos.update((m.uid, m) for m in await s.store.get_messages(box.id, rest))
    for uid in uids:
        m = infos.get(uid)
        seq = box.seq_of(uid)
        if m is None or seq is None:
            continue
        if by_uid:
            out.append(untagged(b"%d FETCH (UID %d FLAGS %s)" % (seq, uid, box.flags_wire(m))))
        else:
            out.append(untagged(b"%d FETCH (FLAGS %s)" % (seq, box.flags_wire(m))))
    return Reply("Store completed", untagged=out)


async def uid_store(s: Session, a: StoreArgs) -> Reply:
    return await store(s, a, by_uid=True)


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
    try:
        if move:
            return await s.store.move_messages(box.id, uids, dst)
        return await s.store.copy_messages(box.id, uids, dst)
    except MailboxNotFound:
        raise trycreate() from None


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
