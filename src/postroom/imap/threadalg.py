"""RFC 5256 base subjects and threading, pure: no I/O, no store, no asyncio.

``base_subject`` is §2.1; ``ordered_subject`` and ``references`` are the THREAD
algorithms of §3 and §4; ``format_threads`` writes the ``thread-list`` of §5.
Messages are identified by an opaque int (the handler passes sequence numbers or
UIDs) and carry a sort ``date`` (the sent date, internal date when there is none)
and a ``pos`` (sequence number) that breaks ties, as §2.2 and §3 ask.

Everything is iterative: References chains of any length and cyclic or
self-referencing References cannot recurse without bound or loop, and each
message contributes at most ``MAX_REFS`` message-ids (the last ones, nearest to it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

MAX_REFS = 256  # message-ids taken from one References field (the last ones)

_WSP = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:[ \t]|\(fwd\))+$", re.IGNORECASE)  # §5 subj-trailer, repeated
_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = re.compile(r"(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:", re.IGNORECASE)
_LEADER = re.compile(r"(?:(?:" + _BLOB + r")*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:|[ \t])", re.IGNORECASE)
_BLOB_RE = re.compile(_BLOB)


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 §2.1 on an already decoded subject (step 1's RFC 2047 decoding is the
    caller's): (base subject, whether it looked like a reply or forward, for §4 step 5).
    Case is kept: comparisons go through ``subject_key``."""
    s = _WSP.sub(" ", subject)  # (1) tabs and line breaks to SP, runs collapsed
    reply = False
    while True:
        # (2) trailing "(fwd)" and WSP
        t = _TRAILER.sub("", s)
        if t != s:
            if "(" in s[len(t):]:
                reply = True
            s = t
        while True:  # (5) repeat (3) and (4) until nothing changes
            before = s
            while (m := _LEADER.match(s)) and m.end() > 0:  # (3) subj-leader
                if _REFWD.search(m.group(0)):
                    reply = True
                s = s[m.end():]
            m = _BLOB_RE.match(s)
            if m and s[m.end():].strip(" \t"):  # (4) a blob, unless it is all that is left
                s = s[m.end():]
            if s == before:
                break
        # (6) "[fwd:" ... "]": remove both and start again at (2)
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        return s, reply


def subject_key(subject: str) -> str:
    """i;unicode-casemap (RFC 5051: titlecase each character, then NFKD), as Dovecot
    compares base subjects and RFC 5957 display names. On ASCII it is exactly the
    i;ascii-casemap §2.1 names; beyond ASCII "Ç" sorts with "C" instead of after "z"."""
    if subject.isascii():
        return subject.upper()
    return unicodedata.normalize("NFKD", "".join(c.title() if len(c.title()) == 1 else c.upper()
                                                 for c in subject))


@dataclass(slots=True)
class Msg:
    """One message as the threading algorithms see it."""

    id: int  # what the output names (sequence number or UID)
    pos: int  # sequence number: ties (§2.2, §3)
    date: float  # sent date as a UTC timestamp, internal date when missing
    subject: str  # decoded Subject (RFC 2047), base subject taken here
    message_id: str = ""
    refs: list[str] = field(default_factory=list)  # References, else first In-Reply-To id


# A thread node: (message or None for a dummy, children).
@dataclass(slots=True, eq=False)
class Node:
    msg: Msg | None = None
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = None


def _sort_key(n: Node) -> tuple[float, int]:
    m = n.msg if n.msg is not None else (n.children[0].msg if n.children else None)
    return (m.date, m.pos) if m is not None else (0.0, 0)


def ordered_subject(msgs: Iterable[Msg]) -> list[Node]:
    """§3 ORDEREDSUBJECT: group by base subject; in each group, sorted by sent date,
    the first message is the parent of all the others; threads by their first date."""
    groups: dict[str, list[Msg]] = {}
    for m in msgs:
        groups.setdefault(subject_key(base_subject(m.subject)[0]), []).append(m)
    roots: list[Node] = []
    for group in groups.values():
        group.sort(key=lambda m: (m.date, m.pos))
        root = Node(group[0])
        root.children = [Node(m, parent=root) for m in group[1:]]
        roots.append(root)
    roots.sort(key=_sort_key)
    return roots


def _ancestor(a: Node, b: Node) -> bool:
    """Is ``a`` ``b`` or one of its ancestors? Iterative, bounded by the tree's height;
    the links are made only when this says no, so the walk always ends."""
    n: Node | None = b
    while n is not None:
        if n is a:
            return True
        n = n.parent
    return False


def _unlink(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def references(msgs: Iterable[Msg]) -> list[Node]:
    """§4 REFERENCES, step by step. Returns the root set, siblings sorted (step 6, 7)."""
    table: dict[str, Node] = {}
    unique = 0
    # (1) link messages by their references
    for m in msgs:
        mid = m.message_id
        node = table.get(mid) if mid else None
        if node is None or node.msg is not None:  # (1A) missing or duplicate Message-ID
            if not mid or node is not None:
                unique += 1
                mid = "\0dup%d" % unique  # not a valid msg-id, so never referenced
            node = table[mid] = Node(m)
        else:
            node.msg = m
        refs = [r for r in m.refs[-MAX_REFS:] if r]
        prev: Node | None = None
        for r in refs:  # (1B) each reference the child of the one before, unless linked
            cur = table.get(r)
            if cur is None:
                cur = table[r] = Node()
            if prev is not None and cur.parent is None and not _ancestor(cur, prev):
                _link(prev, cur)
            prev = cur
        # (1C) the last reference becomes this message's parent (replacing any), no loops
        if prev is not None and prev is not node and not _ancestor(node, prev):
            _unlink(node)
            _link(prev, node)
        elif prev is None:
            _unlink(node)
    # (2) the root set; (3) the table is dropped
    roots = [n for n in table.values() if n.parent is None]
    del table
    # (4) prune dummies, iteratively (post-order over an explicit stack)
    roots = _prune(roots)
    # (5) gather the root set by base subject
    roots = _gather(roots)
    # (6) sort every sibling list by date (dummies by their first child), (7) the roots
    order: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    for n in reversed(order):  # children before parents, so a dummy's first child is sorted
        n.children.sort(key=_sort_key)
    roots.sort(key=_sort_key)
    return roots


def _prune(roots: list[Node]) -> list[Node]:
    """§4 step 4 over the whole forest, without recursion."""
    # Post-order: a node's children are pruned before the node itself.
    order: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    root_set = set(map(id, roots))
    for n in reversed(order):
        if n.msg is not None:
            continue
        if not n.children:  # (4A) an empty dummy: gone
            if n.parent is not None:
                _unlink(n)
            continue
        if n.parent is None:  # (4B) a dummy at the root: kept with several children
            if len(n.children) > 1:
                continue
        # (4B) otherwise its children take its place
        parent = n.parent
        kids = n.children
        n.children = []
        if parent is not None:
            i = parent.children.index(n)
            parent.children[i:i + 1] = kids
            for k in kids:
                k.parent = parent
            n.parent = None
        else:
            for k in kids:
                k.parent = None
            root_set.discard(id(n))
            roots.extend(kids)
            root_set.update(map(id, kids))
    return [n for n in roots if id(n) in root_set and (n.msg is not None or n.children) and n.parent is None]


def _subject_of(n: Node) -> tuple[str, bool]:
    m = n.msg if n.msg is not None else n.children[0].msg
    assert m is not None  # pruning left no dummy child under a dummy root
    base, reply = base_subject(m.subject)
    return subject_key(base), reply


def _gather(roots: list[Node]) -> list[Node]:
    """§4 step 5."""
    subjects: dict[str, Node] = {}
    info: dict[int, tuple[str, bool]] = {}
    for n in roots:  # (5B)-(5C) the subject table
        subj, reply = info[id(n)] = _subject_of(n)
        if not subj:
            continue
        old = subjects.get(subj)
        if old is None:
            subjects[subj] = n
        elif (n.msg is None and old.msg is not None) or (info[id(old)][1] and not reply and n.msg is not None
                                                          and old.msg is not None):
            subjects[subj] = n
    out: list[Node] = []
    gone: set[int] = set()
    for n in roots:  # (5E) merge
        subj, reply = info[id(n)]
        other = subjects.get(subj) if subj else None
        if other is None or other is n:
            out.append(n)
            continue
        gone.add(id(n))
        if n.msg is None and other.msg is None:  # both dummies: n's children join other
            for k in n.children:
                _link(other, k)
            n.children = []
        elif n.msg is None or other.msg is None:  # the message goes under the dummy
            dummy, child = (n, other) if n.msg is None else (other, n)
            if dummy is n:  # the dummy takes other's place in the table and the root set
                gone.discard(id(n))
                gone.add(id(other))
                subjects[subj] = n
            _link(dummy, child)
        elif not info[id(other)][1] and reply:  # n is a reply to other
            _link(other, n)
        else:  # neither: siblings under a new dummy, in other's place
            dummy = Node()
            gone.add(id(other))
            gone.discard(id(n))
            _link(dummy, other)
            _link(dummy, n)
            subjects[subj] = dummy
            info[id(dummy)] = (subj, False)
            out.append(dummy)
            continue
        if id(n) not in gone:
            out.append(n)
    return [n for n in out if id(n) not in gone and n.parent is None]


def format_threads(roots: list[Node]) -> bytes:
    """§5 ``thread-list`` for each root, without recursion: a node with one child
    continues the list (``(1 2 3)``), several children are nested lists (``(1 (2)(3))``),
    a dummy is a list without a number of its own (``((2)(3))``)."""
    out: list[bytes] = []
    for root in roots:
        # Stack of items: a Node to open, or bytes to write.
        stack: list[Node | bytes] = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, bytes):
                out.append(item)
                continue
            out.append(b"(")
            n: Node | None = item
            first = True
            while n is not None:
                if n.msg is not None:
                    out.append((b"" if first else b" ") + b"%d" % n.msg.id)
                    first = False
                if len(n.children) == 1:
                    n = n.children[0]
                    continue
                if n.children:
                    if not first:
                        out.append(b" ")
                    stack.append(b")")
                    stack.extend(reversed(n.children))
                    break
                out.append(b")")
                n = None
    return b"".join(out)
