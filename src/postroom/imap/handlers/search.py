"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §7.2.5).

The criteria tree is compiled to closures once, then run over the messages: flag,
size, date and number keys over the stored records alone; header and text keys
over decoded content (``mime.decoded_headers``, ``mime.body_text``), loaded only for
messages that pass the cheap keys of a top-level AND. Matching is case-insensitive
substring matching, as §6.4.4 asks.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from ... import mime
from ...storage.models import MessageInfo
from ..parser.args import SearchArgs
from ..parser.search import Node
from ..responses import Reply, untagged
from ..selected import SelectedMailbox
from ..session import Session
from .messages import sel


class Item:
    """What the predicates look at for one message."""

    __slots__ = ("m", "seq", "headers", "body", "sent")

    def __init__(self, m: MessageInfo, seq: int) -> None:
        self.m = m
        self.seq = seq
        self.headers: list[tuple[str, str]] = []
        self.body = ""
        self.sent: date | None = None


Pred = Callable[[Item], bool]
_EPOCH = date(1970, 1, 1)
_CONTENT_OPS = frozenset({"header", "body", "text", "sentbefore", "senton", "sentsince"})
_BODY_OPS = frozenset({"body", "text"})


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
    if op == "seq":
        chosen = {i + 1 for i in node[1].seq_indexes(box.exists)}
        return lambda it: it.seq in chosen
    if op == "uid":
        s, last = node[1], (box.uids[-1] if box.uids else 0)
        return lambda it: s.contains_uid(it.m.uid, last)
    if op == "larger":
        n = node[1]
        return lambda it: it.m.size > n
    if op == "smaller":
        n = node[1]
        return lambda it: it.m.size < n
    if op in ("before", "on", "since"):
        # §6.4.4: internal date, disregarding time and timezone.
        d = node[1]
        return _date_pred(op, d, lambda it: it.m.internaldate.date())
    if op in ("sentbefore", "senton", "sentsince"):
        d = node[1]
        return _date_pred(op[4:], d, lambda it: it.sent)
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


def _date_pred(op: str, d: date, get: Callable[[Item], date | None]) -> Pred:
    if op == "before":
        return lambda it: (x := get(it)) is not None and x < d
    if op == "on":
        return lambda it: get(it) == d
    return lambda it: (x := get(it)) is not None and x >= d


async def search(s: Session, a: SearchArgs, by_uid: bool = False) -> Reply:
    box = sel(s)
    store = s.store
    tree = a.criteria
    # Split a top-level AND into keys answerable from records and keys that need content.
    parts = tree[1] if tree[0] == "and" else [tree]
    cheap = [n for n in parts if not needs_content(n)]
    costly = [n for n in parts if needs_content(n)]
    cheap_pred = compile_node(("and", cheap), box) if cheap else None
    costly_pred = compile_node(("and", costly), box) if costly else None
    with_body = any(needs_body(n) for n in costly)
    infos = await store.list_messages(box.id)
    hits: list[int] = []
    for m in infos:
        seq = box.seq_of(m.uid)
        if seq is None:
            continue  # not yet announced to this session
        it = Item(m, seq)
        if cheap_pred is not None and not cheap_pred(it):
            continue
        if costly_pred is not None:
            try:
                await _load(store, it, with_body)
            except Exception:  # vanished meanwhile: it cannot match
                s.ctx.log.debug("imap search: message %d vanished", m.uid, exc_info=True)
                continue
            if not costly_pred(it):
                continue
        hits.append(m.uid if by_uid else seq)
    line = b"SEARCH" + b"".join(b" %d" % n for n in hits)
    return Reply("Search completed", untagged=[untagged(line)])


async def _load(store: Any, it: Item, with_body: bool) -> None:
    raw = await store.read_message(it.m)
    parsed = await store.read_structure(it.m)
    it.headers = mime.decoded_headers(raw, parsed)
    sent = mime.header_date(parsed)
    # A missing or unparsable Date counts as 1 Jan 1970, as Dovecot does, so SENTBEFORE
    # finds such messages and SENTSINCE does not.
    it.sent = sent.date() if sent is not None else _EPOCH
    if with_body:
        it.body = mime.body_text(raw, parsed).casefold()


async def uid_search(s: Session, a: SearchArgs) -> Reply:
    return await search(s, a, by_uid=True)
