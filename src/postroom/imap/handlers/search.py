"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §7.2.5).

The records come from the store's cached message index. Keys answerable from the
records (flags, sequence numbers, UIDs, sizes, internal and save dates) are evaluated as set
operations over UIDs: a flag key is the index's set of UIDs with that flag, NOT is a
difference from the session's messages, AND an intersection started from the
smallest positive set, so ``UNSEEN FLAGGED`` costs about the number of flagged
messages, not the size of the mailbox. Header and text keys are compiled to closures
and run over decoded content (``mime.decoded_headers``, ``mime.body_text``), loaded in
batches only for the messages that pass the record keys of a top-level AND. Matching
is case-insensitive substring matching, as §6.4.4 asks.

ESEARCH (RFC 4731): ``RETURN (MIN MAX ALL COUNT)`` answers one ``* ESEARCH (TAG "t") [UID] …``
line instead of ``* SEARCH``; with a MODSEQ key it ends with RFC 7162's ``MODSEQ n``.
SEARCHRES (RFC 5182): ``RETURN (SAVE)`` keeps the result as UIDs on the selected view
(``SelectedMailbox.saved``), which ``$`` names in later commands. WITHIN (RFC 5032):
``OLDER n`` / ``YOUNGER n`` compare the internal date with now minus n seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from ... import mime
from ...storage.api import MessageIndex
from ...storage.models import MessageInfo
from ..parser.args import SearchArgs
from ..errors import Bad, No
from ..parser.search import Node, PartialRange
from ..parser.seqset import compress
from ..responses import Reply, untagged
from ..selected import SelectedMailbox
from ..session import Session
from . import context
from .fetch import read_messages
from .enabled import enable_condstore
from .messages import sel
from . import rev2


class Item:
    """What the predicates look at for one message."""

    __slots__ = ("m", "seq", "headers", "body", "sent")

    def __init__(self, m: MessageInfo, seq: int) -> None:
        self.m = m
        self.seq = seq
        self.headers: list[tuple[str, str]] = []
        self.body = ""
        self.sent: date | None = None


# RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 5032 WITHIN, RFC 8514 SAVEDATE (FETCH SAVEDATE in
# handlers/fetch.py; in CAPABILITY, handlers/anystate.py).
CAPS = ("ESEARCH", "SEARCHRES", "WITHIN", "SAVEDATE")

Pred = Callable[[Item], bool]
_EPOCH = date(1970, 1, 1)
_CONTENT_OPS = frozenset({"header", "body", "text", "sentbefore", "senton", "sentsince"})
_BODY_OPS = frozenset({"body", "text"})
_FLAG_OPS = frozenset({"flag", "new", "modseq"})  # what a flag change can turn (it raises MODSEQ)


def _uses(node: Node, ops: set[str] | frozenset[str]) -> bool:
    """Does any key in the tree have one of these ops?"""
    op = node[0]
    if op in ops:
        return True
    if op == "and":
        return any(_uses(n, ops) for n in node[1])
    if op in ("or", "not"):
        return any(_uses(n, ops) for n in node[1:])
    return False


def needs_content(node: Node) -> bool:
    return _uses(node, _CONTENT_OPS)


def needs_body(node: Node) -> bool:
    return _uses(node, _BODY_OPS)


def compile_node(node: Node, box: SelectedMailbox) -> Pred:
    op = node[0]
    if op == "all":
        return lambda it: True
    if op == "and":
        preds = [compile_node(n, box) for n in node[1]]
        return lambda it: all(p(it) for p in preds)
    if op == "or":
        a, b = compile_node(node[1], box), compile_node(node[2], box)
        return lambda it: a(it) or b(it)
    if op == "not":
        a = compile_node(node[1], box)
        return lambda it: not a(it)
    if op == "flag":
        name, present = node[1], node[2]
        if name == "\\Recent":
            return lambda it: box.is_recent(it.m.uid) == present
        return lambda it: (name in it.m.flags) == present
    if op == "recent":
        present = node[1]
        return lambda it: box.is_recent(it.m.uid) == present
    if op == "new":  # §6.4.4: NEW = RECENT UNSEEN
        return lambda it: box.is_recent(it.m.uid) and "\\Seen" not in it.m.flags
    if op in ("seq", "uid") and node[1].saved:  # RFC 5182 "$": the same messages either way
        saved = frozenset(box.saved)
        return lambda it: it.m.uid in saved
    if op in ("older", "younger"):
        return _within(op, node[1])
    if op == "seq":
        chosen = {i + 1 for i in node[1].seq_indexes(box.exists)}
        return lambda it: it.seq in chosen
    if op == "uid":
        s, last = node[1], (box.uids[-1] if box.uids else 0)
        return lambda it: s.contains_uid(it.m.uid, last)
    if op == "larger":
        n = node[1]
        return lambda it: it.m.size > n
    if op == "modseq":  # RFC 7162 §3.1.5: at or above
        n = node[1]
        return lambda it: it.m.modseq >= n
    if op == "smaller":
        n = node[1]
        return lambda it: it.m.size < n
    if op == "emailid":  # RFC 8474 §6
        want = node[1]
        return lambda it: it.m.email_id == want
    if op == "threadid":  # RFC 8474 §6: threads are not computed (FETCH THREADID is NIL): no match
        return lambda it: False
    if op in ("before", "on", "since"):
        # §6.4.4: internal date, disregarding time and timezone.
        d = node[1]
        return _date_pred(op, d, lambda it: it.m.internaldate.date())
    if op in ("sentbefore", "senton", "sentsince"):
        d = node[1]
        return _date_pred(op[4:], d, lambda it: it.sent)
    if op in ("savedbefore", "savedon", "savedsince"):
        # RFC 8514 §4.3: the save date, disregarding time and timezone (its UTC day, as
        # FETCH SAVEDATE shows it). A message stored before save dates were kept has none:
        # its internal date stands in, so a date range still finds it somewhere.
        d = node[1]
        return _date_pred(op[5:], d, lambda it: (it.m.savedate or it.m.internaldate).date())
    if op == "header":
        name, needle = node[1], node[2].casefold()
        # FROM/TO/CC/BCC/SUBJECT and HEADER: an empty string matches any message
        # that has the field (§6.4.4).
        return lambda it: any(n == name and needle in v.casefold() for n, v in it.headers)
    if op == "body":
        needle = node[1].casefold()
        return lambda it: needle in it.body
    if op == "text":
        needle = node[1].casefold()
        return lambda it: needle in it.body or any(needle in v.casefold() or needle in n for n, v in it.headers)
    raise AssertionError(op)


def _within(op: str, seconds: int) -> Pred:
    """RFC 5032 §3: YOUNGER n is an internal date within the last n seconds, OLDER n one
    before that (so the two are complements). Internal dates are aware datetimes."""
    try:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    except OverflowError:  # an interval reaching before year 1: everything is younger
        return (lambda it: False) if op == "older" else (lambda it: True)
    if op == "older":
        return lambda it: it.m.internaldate < cutoff
    return lambda it: it.m.internaldate >= cutoff


def _date_pred(op: str, d: date, get: Callable[[Item], date | None]) -> Pred:
    if op == "before":
        return lambda it: (x := get(it)) is not None and x < d
    if op == "on":
        return lambda it: get(it) == d
    return lambda it: (x := get(it)) is not None and x >= d


UidSet = set[int] | frozenset[int]


class _SetEval:
    """Record keys as sets of UIDs over the messages this session knows (see module doc)."""

    def __init__(self, idx: Any, box: SelectedMailbox) -> None:
        self.idx = idx
        self.box = box
        self.last = box.uids[-1] if box.uids else 0
        # The index's UIDs up to the last one announced: the messages the session knows
        # that still exist (UIDs only grow, so nothing below ``last`` is unknown to it).
        self.known = idx.uids[:bisect_right(idx.uids, self.last)]
        self._universe: frozenset[int] | None = None

    @property
    def universe(self) -> frozenset[int]:
        if self._universe is None:
            if len(self.known) == len(self.idx):
                self._universe = self.idx.uid_set()  # the usual case: made once per index
            else:
                self._universe = frozenset(self.known)
        return self._universe

    def eval(self, node: Node) -> UidSet | None:
        """The matching UIDs (possibly with some beyond ``last``: the caller clips),
        or None when a key needs message content."""
        op = node[0]
        if op in _CONTENT_OPS:
            return None
        if op == "all":
            return self.universe
        if op == "and":
            pos: list[UidSet] = []
            neg: list[UidSet] = []
            for child in node[1]:
                positive = _positive_of(child)
                r = self.eval(child if positive is None else positive)
                if r is None:
                    return None
                (pos if positive is None else neg).append(r)
            if not pos:
                pos.append(self.universe)
            pos.sort(key=len)
            out = set(pos[0])
            for r in pos[1:]:
                out &= r
            for r in neg:
                out -= r
            return out
        if op == "or":
            a, b = self.eval(node[1]), self.eval(node[2])
            return None if a is None or b is None else a | b
        if op == "not":
            a = self.eval(node[1])
            return None if a is None else self.universe - a
        if op == "flag" and node[1] != "\\Recent":
            got = self.idx.with_flag(node[1])
            return got if node[2] else self.universe - got
        if op in ("flag", "recent"):
            rec = self._recent()
            return rec if node[-1] else self.universe - rec
        if op == "new":  # §6.4.4: NEW = RECENT UNSEEN
            return self._recent() - self.idx.with_flag("\\Seen")
        if op in ("seq", "uid") and node[1].saved:  # RFC 5182 "$" (the caller clips)
            return set(self.box.saved)
        if op == "seq":
            uids = self.box.uids
            return {uids[i] for i in node[1].seq_indexes(self.box.exists)}
        if op == "uid":
            known = self.known
            out = set()
            for lo, hi in node[1].ranges:
                lo, hi = lo or self.last, hi or self.last  # STAR (0) is the last UID (§6.4.8)
                if lo > hi:
                    lo, hi = hi, lo
                out.update(known[bisect_left(known, lo):bisect_right(known, hi)])
            return out
        if op == "modseq":
            n = node[1]
            return {m.uid for m in self.idx.messages(self.known) if m.modseq >= n}
        if op == "threadid":  # RFC 8474 §6: no message has a THREADID here (FETCH gives NIL)
            return set()
        if op in ("larger", "smaller"):
            n, size = node[1], self.idx.size_of
            if op == "larger":
                return {u for u in self.known if size(u) > n}
            return {u for u in self.known if size(u) < n}
        # Internal and save dates: per record (made once per index, then kept).
        pred = compile_node(node, self.box)
        return {m.uid for m in self.idx.messages(self.known) if pred(Item(m, 0))}

    def _recent(self) -> set[int]:
        known = self.known
        out: set[int] = set()
        for lo, hi in self.box.recent:
            out.update(known[bisect_left(known, lo):bisect_left(known, hi)])
        return out


def _positive_of(node: Node) -> Node | None:
    """X for a key meaning NOT X (so an AND subtracts X instead of building the complement)."""
    if node[0] == "not":
        return node[1]  # type: ignore[no-any-return]
    if node[0] == "flag" and not node[2]:
        return ("flag", node[1], True)
    if node[0] == "recent" and not node[1]:
        return ("recent", True)
    return None


async def search(s: Session, a: SearchArgs, by_uid: bool = False) -> Reply:
    box = sel(s)
    if box.rev2:
        a = rev2.search_args(a)  # RFC 9051 §6.4.4: ESEARCH always; no RECENT/NEW/OLD
    return await saving(box, a.returns, a.refused, lambda: _search(s, box, a, by_uid))


async def saving(box: SelectedMailbox, returns: tuple[str, ...] | None, refused: No | None,
                 run: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run a SEARCH or SORT (RFC 5267 ESORT) with RFC 5182's rules for a failed SAVE."""
    if returns is None or "SAVE" not in returns:
        return await run()
    try:
        if refused is not None:
            raise refused
        return await run()
    except Bad:
        raise  # RFC 5182 §2.1: a BAD leaves the saved result as it was
    except Exception:
        box.saved = []  # §2.1: a NO empties it
        raise


async def matching_uids(s: Session, box: SelectedMailbox, idx: MessageIndex, tree: Node) -> list[int]:
    """The UIDs (ascending) of the messages ``tree`` matches: SEARCH's answer, also SORT's
    and THREAD's message set (handlers/sort.py, handlers/thread.py)."""
    sets = _SetEval(idx, box)
    # Split a top-level AND into keys answerable from records and keys that need content.
    parts = tree[1] if tree[0] == "and" else [tree]
    cheap = [n for n in parts if not needs_content(n)]
    costly = [n for n in parts if needs_content(n)]
    found = sets.eval(("and", cheap)) if cheap else sets.universe
    assert found is not None
    uids = sorted(u for u in found if u <= sets.last and u in idx)
    if costly:
        uids = await _content_filter(s, idx, box, uids, costly)
    return uids


async def matches_among(s: Session, box: SelectedMailbox, tree: Node, msgs: list[MessageInfo],
                        matched_before: Callable[[int], bool]) -> set[int]:
    """Which of ``msgs`` (records as they are now) ``tree`` matches, judged one by one: what a
    CONTEXT update re-checks (handlers/context.py) instead of searching the whole mailbox.
    Content never changes, so a message ``matched_before`` passed the top-level keys that need
    content then and passes them now, unless one of them also has a key a flag change can turn
    (``OR FLAGGED BODY x``): only its record keys are checked again."""
    parts = tree[1] if tree[0] == "and" else [tree]
    cheap = compile_node(("and", [n for n in parts if not needs_content(n)]), box)
    costly = [n for n in parts if needs_content(n)]
    found = [m.uid for m in msgs if (seq := box.seq_of(m.uid)) is not None and cheap(Item(m, seq))]
    if not costly:
        return set(found)
    stable = not any(_uses(n, _FLAG_OPS) for n in costly)
    out = {u for u in found if stable and matched_before(u)}
    todo = [u for u in found if u not in out]
    if todo:
        out.update(await _content_filter(s, await s.store.message_index(box.id), box, todo, costly))
    return out


async def _search(s: Session, box: SelectedMailbox, a: SearchArgs, by_uid: bool) -> Reply:
    tree = a.criteria
    # RFC 5267 §4.3: a tag in use is BAD before anything runs; a refused UPDATE is a NO line.
    update = context.wants_update(a.returns)
    refusal = context.admit(s, box, tree) if update else None
    idx = await s.store.message_index(box.id)
    uids = await matching_uids(s, box, idx, tree)
    hits: list[int] = []
    for uid in uids:
        seq = box.seq_of(uid)
        if seq is not None:
            hits.append(uid if by_uid else seq)
    found_uids = hits if by_uid else [u for u in uids if box.seq_of(u) is not None]
    with_modseq = uses_modseq(tree)
    head: list[bytes] = enable_condstore(s) if with_modseq else []
    if update and refusal is None:
        refusal = context.keep(s, box, by_uid, tree, found_uids, matches_among)
    if refusal is not None:
        head.append(refusal)

    def top_modseq(chosen: list[int]) -> int:
        return max(m.modseq for m in idx.messages(chosen))

    if a.returns is None:
        line = b"SEARCH" + b"".join(b" %d" % n for n in hits)
        if with_modseq and hits:
            # RFC 7162 §3.1.5: the highest MODSEQ of the messages found.
            line += b" (MODSEQ %d)" % top_modseq(found_uids)
        return Reply("Search completed", untagged=head + [untagged(line)])
    return returned(s, box, a.returns, by_uid, found_uids, hits, head,
                    top_modseq if with_modseq else None, "Search completed")


def uses_modseq(tree: Node) -> bool:
    return _uses(tree, {"modseq"})


def returned(s: Session, box: SelectedMailbox, opts: tuple[str, ...], by_uid: bool, found_uids: list[int],
             hits: list[int], head: list[bytes], top_modseq: Callable[[list[int]], int] | None,
             done: str) -> Reply:
    """The RETURN options' answer, for SEARCH (RFC 4731) and SORT (RFC 5267 §3). ``found_uids``
    and ``hits`` (UIDs or sequence numbers, as sent) are in the command's order: ascending for
    SEARCH, the sort order for SORT, so MIN/MAX are the first/last in that order and ALL keeps it.
    PARTIAL (RFC 5267 §4.4) is a window of that order."""
    partial: PartialRange | None = getattr(opts, "partial", None)
    opts = context.data_options(opts)
    window = partial.window(len(hits)) if partial is not None else None
    # The messages MIN/MAX/PARTIAL alone stand for (RFC 5182 §2.4 for SAVE, RFC 4731 §3.2 for
    # MODSEQ); with ALL or COUNT, every message found.
    chosen = sorted(found_uids)
    if "ALL" not in opts and "COUNT" not in opts and {"MIN", "MAX", "PARTIAL"} & set(opts):
        pick = set(found_uids[window]) if window is not None else set()
        if found_uids and "MIN" in opts:
            pick.add(found_uids[0])
        if found_uids and "MAX" in opts:
            pick.add(found_uids[-1])
        chosen = sorted(pick)
    if "SAVE" in opts:
        box.saved = list(chosen)
        if len(opts) == 1:
            return Reply(done, untagged=head)  # RFC 5182 §2.4: no ESEARCH
    modseq = top_modseq(chosen) if top_modseq is not None and chosen else None
    line = _esearch(s.command_tag, by_uid, opts, hits, modseq, partial, window)
    return Reply(done, untagged=head + [untagged(line)])


def _esearch(tag: bytes, by_uid: bool, opts: tuple[str, ...], hits: list[int], modseq: int | None,
             partial: PartialRange | None = None, window: slice | None = None) -> bytes:
    """RFC 4731 §3.1: ``ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n]``; MIN,
    MAX and ALL are left out when nothing matched, COUNT is 0 then. MIN/MAX are the first and
    last of ``hits`` and ALL keeps their order, joining only ascending runs (``compress``):
    for SORT that is RFC 5267 §3's "in the requested sort order" (``5,1:3,9,8``). With a MODSEQ key,
    ``MODSEQ n`` ends it (RFC 4731 §3.2, RFC 7162 §3.1.5). ``PARTIAL (range set)`` (RFC 5267
    §4.4) echoes the range and gives that window of ``hits``, NIL when it is empty. A tag has no
    quote or backslash (§9 ``tag``), so it is quoted as it is."""
    line = b'ESEARCH (TAG "%s")' % tag
    if by_uid:
        line += b" UID"
    if hits:
        if "MIN" in opts:
            line += b" MIN %d" % hits[0]
        if "MAX" in opts:
            line += b" MAX %d" % hits[-1]
        if "ALL" in opts:
            line += b" ALL " + compress(hits).encode()
    if partial is not None and window is not None:
        part = hits[window]
        line += b" PARTIAL (%s %s)" % (partial.text, compress(part).encode() if part else b"NIL")
    if "COUNT" in opts:
        line += b" COUNT %d" % len(hits)
    if modseq is not None:
        line += b" MODSEQ %d" % modseq
    return line


async def _content_filter(s: Session, idx: Any, box: SelectedMailbox, uids: list[int],
                          costly: list[Node]) -> list[int]:
    store = s.store
    pred = compile_node(("and", costly), box)
    with_body = any(needs_body(n) for n in costly)
    out: list[int] = []
    batch = s.settings.batch
    for i in range(0, len(uids), batch):
        msgs = idx.messages(uids[i:i + batch])
        # A damaged message (logged) cannot match, as one that vanished meanwhile: the
        # search still answers for the others.
        raws = await read_messages(s, msgs, set())
        structures = await store.read_structures(msgs)
        for m, raw, parsed in zip(msgs, raws, structures):
            if raw is None or parsed is None:  # vanished meanwhile: it cannot match
                s.ctx.log.debug("imap search: message %d vanished", m.uid)
                continue
            seq = box.seq_of(m.uid)
            if seq is None:
                continue
            it = Item(m, seq)
            _load(it, raw, parsed, with_body)
            if pred(it):
                out.append(m.uid)
    return out


def _load(it: Item, raw: bytes, parsed: Any, with_body: bool) -> None:
    it.headers = mime.decoded_headers(raw, parsed)
    sent = mime.header_date(parsed)
    # A missing or unparsable Date counts as 1 Jan 1970, as Dovecot does, so SENTBEFORE
    # finds such messages and SENTSINCE does not.
    it.sent = sent.date() if sent is not None else _EPOCH
    if with_body:
        it.body = mime.body_text(raw, parsed).casefold()


async def uid_search(s: Session, a: SearchArgs) -> Reply:
    return await search(s, a, by_uid=True)
