"""SORT and UID SORT (RFC 5256 §3, with RFC 5957 DISPLAYFROM/DISPLAYTO).

The messages are those SEARCH would find (the same set evaluation and content
filter, ``handlers/search.py``); their sort keys come from the stored structure
(envelope) and the index record (internal date, size), read in batches. Ties go by
sequence number (§3: "in the order given by sequence number").

Keys, as §3 defines them: ARRIVAL the internal date; CC, FROM, TO the mailbox
(local part) of the first address, missing = ""; DATE the Date header in UTC, the
internal date when it is missing or unparsable; SIZE RFC822.SIZE; SUBJECT the base
subject (§2.1, ``imap.threadalg``). DISPLAYFROM/DISPLAYTO (RFC 5957 §3) are the
RFC 2047-decoded display name of the first address, else its addr-spec. Strings
compare with i;unicode-casemap (``threadalg.subject_key``), as Dovecot: the same as
§2.1's i;ascii-casemap on ASCII.

ESORT (RFC 5267 §3): ``SORT RETURN (MIN MAX ALL COUNT SAVE) …`` answers with SEARCH's
ESEARCH writer (``handlers/search.py`` ``returned``): MIN/MAX the first/last message in
sort order, ALL the sorted list (ranges only for ascending runs in that order); SAVE
(RFC 5182) keeps the found set, as for SEARCH. Without MIN, MAX, ALL, PARTIAL or UPDATE nothing
is sorted. CONTEXT=SORT (RFC 5267 §4, ``handlers/context.py``): PARTIAL is a window of the sort
order; UPDATE keeps the result with each message's sort key (``full_key``), so a new message
finds its place by bisection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ... import mime
from ...mime.decode import decode_header_value
from ...mime.model import Address, ParsedMessage
from ...storage.models import MessageInfo
from ..parser.search import Node
from ..parser.sort import SortArgs
from ..responses import Reply, untagged
from ..session import Session
from ..threadalg import base_subject, subject_key
from .messages import sel
from .enabled import enable_condstore
from .search import matching_uids  # the SEARCH engine, reused
from .search import matches_among, returned, saving, uses_modseq
from . import context

CAPS = ("SORT", "SORT=DISPLAY", "ESORT")  # RFC 5256, RFC 5957, RFC 5267 §3 (§4: context.CAPS)

_MSGID = re.compile(r"<[^<>]*>")


def _str(v: str | None) -> bytes:
    return (v or "").encode("utf-8", "surrogateescape")


def decoded(v: str | None) -> str:
    """A stored raw header string, unfolded and RFC 2047-decoded."""
    return decode_header_value(_str(v)) if v else ""


def msg_ids(v: str | bytes | None) -> list[str]:
    """The ``<…>`` message-ids of a Message-ID / In-Reply-To / References value."""
    if not v:
        return []
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return ["".join(m.split()) for m in _MSGID.findall(text)]


@dataclass(slots=True)
class Loaded:
    """What SORT and THREAD know of one found message."""

    info: MessageInfo
    seq: int
    parsed: ParsedMessage

    def sent(self) -> float:
        """§2.2 sent date in UTC; the internal date when there is none."""
        d = mime.header_date(self.parsed)
        try:
            return (d or self.info.internaldate).timestamp()
        except (OverflowError, ValueError, OSError):
            return self.info.internaldate.timestamp()

    def subject(self) -> str:
        return decoded(self.parsed.envelope.subject)


async def matching(s: Session, criteria: Node) -> list[MessageInfo]:
    """The messages SEARCH would find, ascending by UID (= by sequence number)."""
    box = sel(s)
    idx = await s.store.message_index(box.id)
    uids = await matching_uids(s, box, idx, criteria)
    return [m for m in idx.messages(uids) if box.seq_of(m.uid) is not None]


async def load(s: Session, criteria: Node) -> list[Loaded]:
    box = sel(s)
    infos = await matching(s, criteria)
    out: list[Loaded] = []
    batch = s.settings.batch
    for i in range(0, len(infos), batch):
        chunk = infos[i:i + batch]
        for m, parsed in zip(chunk, await s.store.read_structures(chunk)):
            seq = box.seq_of(m.uid)
            if parsed is None or seq is None:  # vanished meanwhile
                continue
            out.append(Loaded(m, seq, parsed))
    return out


def _first(addrs: tuple[Address, ...] | None) -> Address | None:
    return addrs[0] if addrs else None


def _mailbox_key(addrs: tuple[Address, ...] | None) -> str:
    a = _first(addrs)
    return subject_key(_str(a.mailbox).decode("utf-8", "replace")) if a is not None else ""


def _display_key(addrs: tuple[Address, ...] | None) -> str:
    # RFC 5957 §3: the display name if there is a non-empty one, else the addr-spec.
    a = _first(addrs)
    if a is None:
        return ""
    name = decoded(a.name).strip()
    if name:
        return subject_key(name)
    spec = _str(a.mailbox).decode("utf-8", "replace")
    if a.host:
        spec += "@" + _str(a.host).decode("utf-8", "replace")
    return subject_key(spec)


def sort_key(item: Loaded, key: str) -> Any:
    env = item.parsed.envelope
    if key == "ARRIVAL":
        return item.info.internaldate.timestamp()
    if key == "DATE":
        return item.sent()
    if key == "SIZE":
        return item.info.size
    if key == "SUBJECT":
        return subject_key(base_subject(item.subject())[0])
    if key in ("FROM", "TO", "CC"):
        return _mailbox_key({"FROM": env.from_, "TO": env.to, "CC": env.cc}[key])
    if key == "DISPLAYFROM":
        return _display_key(env.from_)
    if key == "DISPLAYTO":
        return _display_key(env.to)
    raise AssertionError(key)


def sorted_items(items: list[Loaded], keys: tuple[tuple[str, bool], ...]) -> list[Loaded]:
    """Stable sorts from the last key to the first, on top of sequence order: the
    first key decides, REVERSE flips only its own key, ties stay in sequence order."""
    out = sorted(items, key=lambda it: it.seq)
    for key, reverse in reversed(keys):
        values = {id(it): sort_key(it, key) for it in out}
        if reverse:
            # A stable descending sort that keeps equal keys in sequence order.
            out.sort(key=lambda it: values[id(it)], reverse=True)
        else:
            out.sort(key=lambda it: values[id(it)])
    return out


class _Reversed:
    """A sort value that compares the other way round: REVERSE flips only its own key (§3)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.v < self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.v == other.v)

    __hash__ = None  # type: ignore[assignment]


def full_key(item: Loaded, keys: tuple[tuple[str, bool], ...]) -> tuple[Any, ...]:
    """One comparable key for the whole sort: the keys in turn, then the UID (ties go by
    sequence number, which UIDs follow). Ordering by it is ``sorted_items``'s order."""
    return tuple(_Reversed(sort_key(item, k)) if rev else sort_key(item, k) for k, rev in keys) + (item.info.uid,)


async def key_tuples(s: Session, keys: tuple[tuple[str, bool], ...], msgs: list[MessageInfo]) -> dict[int, Any]:
    """``full_key`` of each of ``msgs`` that still has its structure (a CONTEXT=SORT update)."""
    box = sel(s)
    out: dict[int, Any] = {}
    for m, parsed in zip(msgs, await s.store.read_structures(msgs)):
        seq = box.seq_of(m.uid)
        if parsed is not None and seq is not None:
            out[m.uid] = full_key(Loaded(m, seq, parsed), keys)
    return out


async def sort(s: Session, a: SortArgs, by_uid: bool = False) -> Reply:
    if a.returns is not None:
        box = sel(s)
        return await saving(box, a.returns, a.refused, lambda: _esort(s, a, by_uid))
    items = sorted_items(await load(s, a.criteria), a.keys)
    line = b"SORT" + b"".join(b" %d" % (it.info.uid if by_uid else it.seq) for it in items)
    return Reply("Sort completed", untagged=[untagged(line)])


async def _esort(s: Session, a: SortArgs, by_uid: bool) -> Reply:
    """RFC 5267 §3: the RETURN options over the sorted result, as one ESEARCH line."""
    box = sel(s)
    opts = a.returns
    assert opts is not None
    # RFC 5267 §4.3: a tag in use is BAD before anything runs; a refused UPDATE is a NO line.
    update = context.wants_update(opts)
    refusal = context.admit(s, box, a.criteria) if update else None
    infos: list[MessageInfo]
    keyed: dict[int, Any] | None = None
    if update and refusal is None:
        items = await load(s, a.criteria)
        keyed = {it.info.uid: full_key(it, a.keys) for it in items}
        items.sort(key=lambda it: keyed[it.info.uid])  # type: ignore[index]
        infos = [it.info for it in items]
    elif {"MIN", "MAX", "ALL", "PARTIAL"} & set(context.data_options(opts)):
        infos = [it.info for it in sorted_items(await load(s, a.criteria), a.keys)]
    else:  # COUNT and/or SAVE: the order does not matter, so no sort keys are read
        infos = await matching(s, a.criteria)
    found: list[MessageInfo] = []
    hits: list[int] = []
    for m in infos:
        seq = box.seq_of(m.uid)
        if seq is not None:
            found.append(m)
            hits.append(m.uid if by_uid else seq)
    with_modseq = uses_modseq(a.criteria)
    head = enable_condstore(s) if with_modseq else []
    if keyed is not None:
        uids = [m.uid for m in found]
        refusal = context.keep(s, box, by_uid, a.criteria, uids, matches_among, [keyed[u] for u in uids],
                               lambda s, _box, msgs: key_tuples(s, a.keys, msgs))
    if refusal is not None:
        head.append(refusal)
    modseqs = {m.uid: m.modseq for m in found}

    def top_modseq(chosen: list[int]) -> int:
        return max(modseqs[u] for u in chosen)

    return returned(s, box, opts, by_uid, [m.uid for m in found], hits, head,
                    top_modseq if with_modseq else None, "Sort completed")


async def uid_sort(s: Session, a: SortArgs) -> Reply:
    return await sort(s, a, by_uid=True)
