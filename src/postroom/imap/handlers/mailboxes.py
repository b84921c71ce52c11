"""Authenticated state (RFC 3501 §6.3): SELECT … APPEND, plus NAMESPACE (RFC 2342)."""

from __future__ import annotations

import re

from ...errors import MailboxExists, MailboxNotFound
from ...storage.models import HIERARCHY_SEPARATOR as SEP
from ...storage.models import SYSTEM_FLAGS
from ..errors import No, nonexistent
from ..parser.args import ListArgs
from ..responses import Reply, flag_list, mailbox_wire, untagged
from ..selected import SelectedMailbox
from ..session import Session, State
from . import metadata, quota, rev2
from .enabled import enable_condstore

_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f*%]")


def check_name(name: str) -> str:
    """A name a client may create: no wildcards or controls, no empty levels (§5.1, §6.3.3)."""
    name = name.rstrip(SEP)  # §6.3.3: a trailing separator only declares the hierarchy
    if not name or _BAD_NAME_CHARS.search(name) or "" in name.split(SEP) or len(name) > 500:
        raise No("Invalid mailbox name", b"CANNOT")
    return name


# -- SELECT / EXAMINE (§6.3.1, §6.3.2) -------------------------------------------------
_SELECT_FLAGS = untagged(b"FLAGS " + flag_list(SYSTEM_FLAGS))
_PERMANENTFLAGS_RW = untagged(b"OK [PERMANENTFLAGS " + flag_list(SYSTEM_FLAGS + ("\\*",)) + b"] Flags permitted")
_PERMANENTFLAGS_RO = untagged(b"OK [PERMANENTFLAGS ()] Flags permitted")


async def open_mailbox(s: Session, name: str, readonly: bool) -> Reply:
    """SELECT/EXAMINE's common part; handlers/qresync.py adds RFC 7162's parameters and lines."""
    s.selected = None  # §6.3.1: a failed SELECT leaves no mailbox selected
    s.state = State.AUTHENTICATED
    store = s.store
    # The cached index (shared by the process's sessions, brought up to date and found by
    # name in one query) gives the UIDs and the counts; before it is built, two aggregate
    # queries do (Store.select_view), and it is built in the background.
    idx = await store.select_view(s.account_id, name)
    if idx is None:
        raise nonexistent()
    st = idx.status()
    mb = idx.mailbox
    is_rev2 = rev2.on(s)
    if readonly or is_rev2:  # RFC 9051: a rev2 session has no \Recent, so claims none
        recent_from = None
    elif idx.recent_uid >= mb.uidnext:
        recent_from = mb.uidnext  # nothing new to claim: skip the write (and its fsync)
    else:
        recent_from = await store.claim_recent(mb.id)
    # The index's UID list, shared until this session has to change its view.
    sel = SelectedMailbox(mb, idx.uids, readonly, recent_from)
    uids = sel.uids
    out = [
        rev2.FLAGS_LINE if is_rev2 else _SELECT_FLAGS,
        _PERMANENTFLAGS_RO if readonly else rev2.PERMANENTFLAGS_RW if is_rev2 else _PERMANENTFLAGS_RW,
        untagged(b"%d EXISTS" % len(uids)),
    ]
    if is_rev2:
        sel.keywords.update(rev2.KEYWORDS)  # a later untagged FLAGS keeps listing them
        out += await rev2.select_lines(s, mb)  # RFC 9051 §6.3.2; no RECENT, no UNSEEN (Appendix E)
    else:
        out.append(untagged(b"%d RECENT" % (st.recent if readonly else sel.recent_count())))
    if st.first_unseen_uid is not None and not is_rev2:
        seq = sel.seq_of(st.first_unseen_uid)
        if seq is not None:
            out.append(untagged(b"OK [UNSEEN %d] First unseen" % seq))
    out.append(untagged(b"OK [UIDVALIDITY %d] UIDs valid" % mb.uidvalidity))
    out.append(untagged(b"OK [UIDNEXT %d] Predicted next UID" % mb.uidnext))
    out.append(untagged(b"OK [MAILBOXID (" + mb.object_id.encode() + b")] Mailbox id"))  # RFC 8474 §4.2
    s.selected = sel
    s.state = State.SELECTED
    return Reply("Select completed" if not readonly else "Examine completed",
                 code=b"READ-ONLY" if readonly else b"READ-WRITE", untagged=out)


# -- CREATE / DELETE / RENAME (§6.3.3-§6.3.5) ------------------------------------------
async def _create_parents(s: Session, name: str) -> None:
    levels = name.split(SEP)
    for i in range(1, len(levels)):
        parent = SEP.join(levels[:i])
        if await s.store.get_mailbox(s.account_id, parent) is None:
            try:
                await s.store.create_mailbox(s.account_id, parent)
            except MailboxExists:
                pass  # created concurrently: fine


async def create(s: Session, name: str, special_use: str | None = None) -> Reply:
    # special_use: RFC 6154 §3 CREATE-SPECIAL-USE (see handlers/listext.py)
    name = check_name(name)
    if name == "INBOX":
        raise No("INBOX already exists", b"ALREADYEXISTS")
    if await s.store.get_mailbox(s.account_id, name) is not None:
        raise No("Mailbox already exists", b"ALREADYEXISTS")
    await _create_parents(s, name)  # §6.3.3: create the superior hierarchy too
    try:
        mb = await s.store.create_mailbox(s.account_id, name, special_use)
    except MailboxExists:
        raise No("Mailbox already exists", b"ALREADYEXISTS") from None
    # RFC 8474 §4.1: the new mailbox's MAILBOXID in the tagged OK
    return Reply("Create completed", code=b"MAILBOXID (" + mb.object_id.encode() + b")",
                 untagged=await rev2.created_lines(s, mb) if rev2.on(s) else [])


async def delete(s: Session, name: str) -> Reply:
    if name == "INBOX":
        raise No("INBOX cannot be deleted", b"CANNOT")  # §6.3.4
    try:
        await s.store.delete_mailbox(s.account_id, name)
    except MailboxNotFound:
        raise nonexistent() from None
    return Reply("Delete completed", untagged=rev2.deleted_lines(name) if rev2.on(s) else [])


async def rename(s: Session, names: tuple[str, str]) -> Reply:
    old, new = names
    new = check_name(new)
    store = s.store
    if new == "INBOX" or (await store.get_mailbox(s.account_id, new)) is not None:
        raise No("Target mailbox already exists", b"ALREADYEXISTS")
    src = await store.get_mailbox(s.account_id, old)
    if src is None:
        raise nonexistent()
    if new.startswith(old + SEP) and old != "INBOX":
        raise No("Cannot rename a mailbox into itself", b"CANNOT")
    await _create_parents(s, new)
    if old == "INBOX":
        # §6.3.5: renaming INBOX moves its messages to the new name; INBOX stays, empty,
        # and its inferiors are not renamed.
        dst = await store.create_mailbox(s.account_id, new)
        await metadata.copy_entries(s, src.id, dst.id)  # RFC 5464 §4.1: and INBOX keeps its own
        uids = list((await store.message_index(src.id)).uids)
        if uids:
            await store.move_messages(src.id, uids, dst.id)
        return Reply("Rename completed")
    try:
        await store.rename_mailbox(s.account_id, old, new)
    except MailboxNotFound:
        raise nonexistent() from None
    except MailboxExists:
        raise No("Target mailbox already exists", b"ALREADYEXISTS") from None
    # RFC 9051 §6.3.6: a rev2 client is told the new name with ("OLDNAME" (old)).
    return Reply("Rename completed", untagged=await rev2.renamed_lines(s, old, new) if rev2.on(s) else [])


# -- SUBSCRIBE / UNSUBSCRIBE (§6.3.6, §6.3.7) ------------------------------------------
async def subscribe(s: Session, name: str) -> Reply:
    if await s.store.get_mailbox(s.account_id, name) is None:
        raise nonexistent()  # §6.3.6: the server MAY validate; Dovecot does too
    await s.store.subscribe(s.account_id, name)
    return Reply("Subscribe completed")


async def unsubscribe(s: Session, name: str) -> Reply:
    await s.store.unsubscribe(s.account_id, name)
    return Reply("Unsubscribe completed")


# -- LIST / LSUB (§6.3.8, §6.3.9) ------------------------------------------------------
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches anything, ``%`` anything but the separator (§6.3.8)."""
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] in (SEP, "*", "%")):
        pattern = "INBOX" + pattern[5:]  # INBOX is case-insensitive
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else f"[^{re.escape(SEP)}]*" if ch == "%" else re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _join(reference: str, pattern: str) -> str:
    if pattern.startswith(SEP) and reference.endswith(SEP):
        return reference + pattern[1:]
    return reference + pattern


def _parents(name: str) -> list[str]:
    levels = name.split(SEP)
    return [SEP.join(levels[:i]) for i in range(1, len(levels))]


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" else 1, name)


async def list_(s: Session, a: ListArgs) -> Reply:
    if a.pattern == "":
        # §6.3.8: an empty pattern asks for the delimiter and the reference's root.
        root = a.reference.split(SEP)[0] + SEP if SEP in a.reference else ""
        return Reply("List completed",
                     untagged=[untagged(b'LIST (\\Noselect) "' + SEP.encode() + b'" ' + mailbox_wire(root))])
    rx = pattern_regex(_join(a.reference, a.pattern))
    boxes = {m.name: m for m in await s.store.list_mailboxes(s.account_id)}
    names = set(boxes)
    for n in list(boxes):
        names.update(_parents(n))
    has_children = {p for n in names for p in _parents(n)}
    out = []
    for name in sorted(names, key=_sort_key):
        if not rx.match(name):
            continue
        attrs = ["\\HasChildren" if name in has_children else "\\HasNoChildren"]
        mb = boxes.get(name)
        if mb is None:
            attrs.insert(0, "\\Noselect")
        elif mb.special_use:
            attrs.append(mb.special_use)
        out.append(untagged(b"LIST (" + " ".join(attrs).encode() + b') "' + SEP.encode() + b'" '
                            + mailbox_wire(name)))
    return Reply("List completed", untagged=out)


async def lsub(s: Session, a: ListArgs) -> Reply:
    if a.pattern == "":
        return Reply("Lsub completed", untagged=[untagged(b'LSUB (\\Noselect) "/" ""')])
    rx = pattern_regex(_join(a.reference, a.pattern))
    subs = set(await s.store.list_subscriptions(s.account_id))
    out = []
    candidates = set(subs)
    for n in subs:
        candidates.update(_parents(n))
    for name in sorted(candidates, key=_sort_key):
        if not rx.match(name):
            continue
        if name in subs:
            attrs = b"()"
        elif any(n.startswith(name + SEP) and not rx.match(n) for n in subs):
            # §6.3.9: a parent of a subscribed name matched by "%" shows as \Noselect.
            attrs = b"(\\Noselect)"
        else:
            continue
        out.append(untagged(b"LSUB " + attrs + b' "' + SEP.encode() + b'" ' + mailbox_wire(name)))
    return Reply("Lsub completed", untagged=out)


# -- STATUS (§6.3.10) ------------------------------------------------------------------
async def status(s: Session, args: tuple[str, list[str]]) -> Reply:
    name, items = args
    if rev2.on(s):
        rev2.check_status(items)
    mb = await s.store.get_mailbox(s.account_id, name)
    if mb is None:
        raise nonexistent()
    st = await s.store.mailbox_status(mb.id)
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.mailbox.uidnext,
              "UIDVALIDITY": st.mailbox.uidvalidity, "UNSEEN": st.unseen,
              "HIGHESTMODSEQ": st.mailbox.highestmodseq,  # RFC 7162 §3.1.6
              "SIZE": st.size,  # RFC 8438 STATUS=SIZE: the sum of the messages' RFC822.SIZE
              "APPENDLIMIT": s.ctx.config.limits.message_size,  # RFC 7889 §3: same for every mailbox
              "MAILBOXID": f"({st.mailbox.object_id})"}  # RFC 8474 §4.3
    if "DELETED" in items or "DELETED-STORAGE" in items:
        # RFC 9208 §4.2 (required with QUOTA=RES-MESSAGE / RES-STORAGE): what EXPUNGE would give back.
        idx = await s.store.message_index(mb.id)
        deleted = idx.with_flag("\\Deleted")
        values["DELETED"] = len(deleted)
        values["DELETED-STORAGE"] = quota.kib(sum(idx.size_of(u) or 0 for u in deleted))
    body = " ".join(f"{i} {values[i]}" for i in items).encode()
    out = enable_condstore(s, "HIGHESTMODSEQ" in items)  # a CONDSTORE enabling command (§3.1)
    out.append(untagged(b"STATUS " + mailbox_wire(name) + b" (" + body + b")"))
    return Reply("Status completed", untagged=out)


# APPEND is in handlers/append.py (with MULTIAPPEND and CATENATE).


async def namespace(s: Session, _: None) -> Reply:
    # RFC 2342: one personal namespace, no prefix.
    return Reply("Namespace completed", untagged=[untagged(b'NAMESPACE (("" "/")) NIL NIL')])

