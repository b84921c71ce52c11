"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): search and sort results kept up to date.

``SEARCH``/``SORT`` ``RETURN (UPDATE …)`` leaves a *context* named by the command's tag on the
selected view (``SelectedMailbox.contexts``): the result as UIDs in its order (mailbox order for
SEARCH, §4.4; the sort order for SORT, §4.3.2) and, for SORT, each member's sort key. As the
mailbox changes the session is told ``* ESEARCH (TAG "t") [UID] REMOVEFROM (pos set …) ADDTO
(pos set …)``; positions are 1-based places in the result, each pair applying to the list as the
pairs before it left it (§4.3.2). Sets are UIDs for UID SEARCH/SORT, sequence numbers otherwise.

When they are sent (§4.3.2–§4.3.4): a message leaving because it was expunged is reported by
``removing``, which ``SelectedMailbox.remove`` calls just before its EXPUNGE (or VANISHED) lines,
so the numbers are still valid; that only happens where EXPUNGE may be sent (never during FETCH,
STORE, SEARCH, SORT; RFC 3501 §7.4.1). New messages and flag changes that change a match are
reported by ``changed`` at the end of ``SelectedMailbox.poll``: after the EXISTS and FETCH lines,
after any command and during IDLE, as those are.

Cost: an update re-checks only the messages the change records name, and of those only new
ones when the criteria have no key a flag change can turn (``_FLAG_OPS``): record keys on the
records, content keys by reading just those messages, skipped for members whose content keys
held before (``handlers/search.matches_among``). Positions come by bisection (SEARCH: the UID
list; SORT: the sorted list of sort keys, which end with the UID) and items are inserted in place
(past ``_REBUILD_AT`` changes at once the lists are rebuilt in one pass). One new message in a
100,000-message context costs microseconds here, plus reading its structure for a SORT context
or its text for a content key; no update searches the mailbox again. A session keeps at most
``MAX_CONTEXTS`` contexts holding together at most ``MAX_KEPT`` results (its first context
whatever its size: §4.3.1 asks for at least one); past either, and for criteria whose matches
change with the clock alone (WITHIN's OLDER/YOUNGER), the UPDATE is refused with ``* NO
[NOUPDATE "t"]`` and the command's other return options are still answered (§4.3.1).

Sequence numbers and ``$`` in the criteria are fixed when the context is made: ``SEARCH RETURN
(UPDATE) 1:10`` follows those ten messages, not whichever are numbered 1 to 10 later. UID sets are
live (``UID 100:*`` takes in new mail). The CONTEXT hint (§4.2) is accepted and changes nothing:
nothing is cached between commands. Contexts end with the selection (SELECT, EXAMINE, CLOSE,
UNSELECT make a new view or none) or with ``CANCELUPDATE "t" …`` (§4.3.5).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ...storage.models import MessageInfo
from ..errors import Bad
from ..parser.search import Node
from ..parser.seqset import SequenceSet, compress
from ..responses import Reply, untagged
from ..selected import SelectedMailbox
from ..session import Session
from .messages import sel

CAPS = ("CONTEXT=SEARCH", "CONTEXT=SORT")  # RFC 5267 §4.1

# Per session (contexts belong to the one selected view). RFC 5267 §4.3.1: at least one.
MAX_CONTEXTS = 10
# Results kept in all of a session's contexts together: a SORT context holds a key per result.
MAX_KEPT = 500_000
_TIMED = frozenset({"older", "younger"})  # RFC 5032: matches change with the clock alone
# The keys a flag change can turn (a flag change raises MODSEQ; NEW is RECENT UNSEEN). Nothing else
# of a message ever changes, so criteria without them only need new messages checked.
_FLAG_OPS = frozenset({"flag", "new", "modseq"})
_REBUILD_AT = 32  # more changes than this at once: rebuild the lists instead of moving items

#: ``(session, view, criteria, records, matched before?) -> UIDs of those records that match``
Matcher = Callable[[Session, SelectedMailbox, Node, list[MessageInfo], Callable[[int], bool]],
                   Awaitable[set[int]]]
#: ``(session, view, records) -> uid -> sort key`` (records whose structure is gone are left out)
Keyer = Callable[[Session, SelectedMailbox, list[MessageInfo]], Awaitable[dict[int, Any]]]


class LiveResult:
    """One context: its result in order and what is needed to keep it so."""

    __slots__ = ("by_uid", "flags", "key_of", "keyer", "keys", "last", "match", "modseq", "tag", "tree", "uids")

    def __init__(self, tag: bytes, by_uid: bool, tree: Node, uids: list[int], match: Matcher,
                 keys: list[Any] | None, keyer: Keyer | None, last: int) -> None:
        self.tag = tag
        self.by_uid = by_uid
        self.tree = tree
        self.uids = uids  # SEARCH: ascending; SORT: in sort order
        self.keys = keys  # SORT only: the sort key of each of ``uids``, ascending (unique: it ends with the UID)
        self.key_of: dict[int, Any] = dict(zip(uids, keys)) if keys is not None else {}
        self.match = match
        self.keyer = keyer
        ops = set(_ops(tree))
        self.modseq = "modseq" in ops  # ADDTO also says the highest MODSEQ added
        self.flags = bool(_FLAG_OPS & ops)  # flag changes of known messages can change the result
        self.last = last  # the highest UID checked so far: above it, messages are new to the context

    def __len__(self) -> int:
        return len(self.uids)

    def has(self, uid: int) -> bool:
        if self.keys is not None:
            return uid in self.key_of
        i = bisect_left(self.uids, uid)
        return i < len(self.uids) and self.uids[i] == uid

    def _index(self, uid: int) -> int:
        if self.keys is None:
            return bisect_left(self.uids, uid)
        return bisect_left(self.keys, self.key_of[uid])

    def drop(self, gone: Iterable[int]) -> list[tuple[int, int]]:
        """Remove members; their (1-based position before any removal, UID), ascending."""
        at = sorted((self._index(u) + 1, u) for u in gone)
        if len(at) <= _REBUILD_AT:
            for pos, _ in reversed(at):
                del self.uids[pos - 1]
                if self.keys is not None:
                    del self.keys[pos - 1]
        else:
            drop = {u for _, u in at}
            self.uids = [u for u in self.uids if u not in drop]
            if self.keys is not None:
                self.keys = [self.key_of[u] for u in self.uids]
        for _, u in at:
            self.key_of.pop(u, None)
        return at

    def add(self, new: Sequence[int], keys: dict[int, Any] | None) -> list[tuple[int, int]]:
        """Insert non-members; their (1-based position after all the insertions, UID), ascending."""
        if self.keys is None:
            if len(new) <= _REBUILD_AT:
                for u in new:
                    self.uids.insert(bisect_left(self.uids, u), u)
            else:
                self.uids = sorted(self.uids + list(new))
        else:
            assert keys is not None
            if len(new) <= _REBUILD_AT:
                for u in new:
                    i = bisect_left(self.keys, keys[u])
                    self.keys.insert(i, keys[u])
                    self.uids.insert(i, u)
            else:
                self.keys = sorted(self.keys + [keys[u] for u in new])
            for u in new:
                self.key_of[u] = keys[u]
            if len(new) > _REBUILD_AT:
                self.uids = [k[-1] for k in self.keys]  # a sort key ends with its UID
        return sorted((self._index(u) + 1, u) for u in new)


class Contexts:
    """A session's live contexts on its selected view, by tag; the view calls ``removing``
    and ``changed`` (see the module doc)."""

    __slots__ = ("box", "results", "s")

    def __init__(self, s: Session, box: SelectedMailbox) -> None:
        self.s = s
        self.box = box
        self.results: dict[bytes, LiveResult] = {}

    def kept(self) -> int:
        return sum(len(r) for r in self.results.values())

    def removing(self, gone: list[int]) -> list[bytes]:
        """REMOVEFROM for expunged members, sent before the EXPUNGE lines (§4.3.4): called
        while ``gone`` still have their sequence numbers."""
        out: list[bytes] = []
        for ctx in self.results.values():
            leaving = [u for u in gone if ctx.has(u)]
            if leaving:
                out.append(self._line(ctx, [self._removefrom(ctx, ctx.drop(leaving))]))
        return out

    async def changed(self, msgs: Sequence[MessageInfo]) -> list[bytes]:
        """REMOVEFROM/ADDTO for new messages and flag changes (after EXISTS, §4.3.3): each
        context re-checks only ``msgs``. Messages expunged but not yet announced stay as
        they are until ``removing``."""
        box = self.box
        if not self.results:
            return []
        cands = [m for m in msgs if m.uid not in box.held_expunges and box.seq_of(m.uid) is not None]
        if not cands:
            return []
        out: list[bytes] = []
        last = box.uids[-1] if box.uids else 0
        for ctx in list(self.results.values()):
            check = cands if ctx.flags else [m for m in cands if m.uid > ctx.last]
            ctx.last = max(ctx.last, last)
            if not check:
                continue
            found = await ctx.match(self.s, box, ctx.tree, check, ctx.has)
            leaving = [m.uid for m in check if m.uid not in found and ctx.has(m.uid)]
            entering = [m for m in check if m.uid in found and not ctx.has(m.uid)]
            parts: list[bytes] = []
            if leaving:
                parts.append(self._removefrom(ctx, ctx.drop(leaving)))
            keys = None
            if entering and ctx.keyer is not None:
                keys = await ctx.keyer(self.s, box, entering)
                entering = [m for m in entering if m.uid in keys]  # vanished meanwhile
            if entering:
                at = ctx.add([m.uid for m in entering], keys)
                parts.append(b"ADDTO (" + self._pairs(ctx, at) + b")")
                if ctx.modseq:  # RFC 7162 §3.1.5: the highest MODSEQ of the messages reported
                    parts.append(b"MODSEQ %d" % max(m.modseq for m in entering))
            if parts:
                out.append(self._line(ctx, parts))
        return out

    # -- wire ---------------------------------------------------------------------
    def _line(self, ctx: LiveResult, parts: list[bytes]) -> bytes:
        # A tag has no quote or backslash (RFC 3501 §9 ``tag``): quoted as it is.
        return untagged(b'ESEARCH (TAG "%s")%s %s' % (ctx.tag, b" UID" if ctx.by_uid else b"", b" ".join(parts)))

    def _removefrom(self, ctx: LiveResult, at: list[tuple[int, int]]) -> bytes:
        # Runs from the last one back: each pair's position is then the one it had before
        # anything was removed, whatever the client removed before it.
        return b"REMOVEFROM (" + self._pairs(ctx, at, backwards=True) + b")"

    def _pairs(self, ctx: LiveResult, at: list[tuple[int, int]], backwards: bool = False) -> bytes:
        """``pos set`` pairs (§5 ``context-position SP sequence-set``), one per run of
        consecutive positions; sets keep the result's order (ranges only for ascending runs)."""
        runs: list[tuple[int, list[int]]] = []
        for pos, uid in at:
            if runs and runs[-1][0] + len(runs[-1][1]) == pos:
                runs[-1][1].append(uid)
            else:
                runs.append((pos, [uid]))
        if backwards:
            runs.reverse()
        box = self.box
        out = []
        for pos, uids in runs:
            nums = uids if ctx.by_uid else [box.seq_of(u) or 0 for u in uids]
            out.append(b"%d %s" % (pos, compress(nums).encode()))
        return b" ".join(out)


def wants_update(opts: tuple[str, ...] | None) -> bool:
    return opts is not None and "UPDATE" in opts


def data_options(opts: tuple[str, ...]) -> tuple[str, ...]:
    """The options that ask for result data: without CONTEXT (a hint, §4.2) and UPDATE (§4.3:
    no interaction with the others). With only those, the answer is as for ``RETURN ()``: ALL
    (RFC 4731 §3.1), the starting point the updates apply to."""
    out = tuple(o for o in opts if o not in ("CONTEXT", "UPDATE"))
    return out if out else ("ALL",)


def _ops(node: Node) -> Iterable[str]:
    yield node[0]
    if node[0] == "and":
        for n in node[1]:
            yield from _ops(n)
    elif node[0] in ("or", "not"):
        for n in node[1:]:
            yield from _ops(n)


def admit(s: Session, box: SelectedMailbox, tree: Node) -> bytes | None:
    """Before a searching command with UPDATE runs: BAD when its tag already names a context
    (§4.3: "SHALL result in the server rejecting the searching command with a BAD response");
    else None, or the untagged ``NO [NOUPDATE "t"]`` when no context will be kept (§4.3.1)."""
    tag = s.command_tag
    live = box.contexts
    if live is not None and tag in live.results:
        raise Bad("Tag reuse: a context already has this tag")
    if _TIMED & set(_ops(tree)):
        return _refusal(tag, "OLDER and YOUNGER results change with time alone; no updates")
    if live is not None and len(live.results) >= MAX_CONTEXTS:
        return _refusal(tag, "Too many contexts")
    return None


def keep(s: Session, box: SelectedMailbox, by_uid: bool, tree: Node, uids: list[int], match: Matcher,
         keys: list[Any] | None = None, keyer: Keyer | None = None) -> bytes | None:
    """Make the context of the command being run from its result ``uids`` (in order; for SORT
    with ``keys``, the sort key of each). None, or the NOUPDATE refusal when the session would
    keep more than ``MAX_KEPT`` results (a session's first context is always kept)."""
    live = box.contexts
    if live is None:
        live = box.contexts = Contexts(s, box)
    if live.results and live.kept() + len(uids) > MAX_KEPT:  # §4.3.1: at least one is always kept
        return _refusal(s.command_tag, "Too many results to keep up to date")
    live.results[s.command_tag] = LiveResult(s.command_tag, by_uid, _freeze(tree, box), list(uids), match,
                                             list(keys) if keys is not None else None, keyer,
                                             box.uids[-1] if box.uids else 0)
    return None


def _refusal(tag: bytes, text: str) -> bytes:
    return untagged(b'NO [NOUPDATE "%s"] %s' % (tag, text.encode()))


def _freeze(node: Node, box: SelectedMailbox) -> Node:
    """The criteria with sequence numbers and ``$`` replaced by the UIDs they name now (see
    the module doc): later expunges renumber messages, but a context follows messages."""
    op = node[0]
    if op == "and":
        return ("and", [_freeze(n, box) for n in node[1]])
    if op == "or":
        return ("or", _freeze(node[1], box), _freeze(node[2], box))
    if op == "not":
        return ("not", _freeze(node[1], box))
    if op in ("seq", "uid") and node[1].saved:
        return _uid_node(box, sorted(u for u in box.saved if box.seq_of(u) is not None))
    if op == "seq":
        return _uid_node(box, [box.uids[i] for i in sorted(node[1].seq_indexes(box.exists))])
    return node


def _uid_node(box: SelectedMailbox, uids: list[int]) -> Node:
    """A UID key for exactly ``uids`` (ascending, all in the view). Messages next to each other
    in the view make one UID range: no message can appear between them later (new UIDs are
    higher), so ranges stay as few as the runs of sequence numbers."""
    if not uids:
        return ("not", ("all",))
    ranges: list[tuple[int, int]] = []
    prev_seq = -1
    for u in uids:
        seq = box.seq_of(u) or 0
        if ranges and seq == prev_seq + 1:
            ranges[-1] = (ranges[-1][0], u)
        else:
            ranges.append((u, u))
        prev_seq = seq
    return ("uid", SequenceSet(tuple(ranges)))


async def cancelupdate(s: Session, tags: list[bytes]) -> Reply:
    """RFC 5267 §4.3.5: stop the contexts named by their tags. A tag naming no context is
    BAD and cancels nothing (the client's own tags: a typo should not pass silently)."""
    box = sel(s)
    live = box.contexts
    for tag in tags:
        if live is None or tag not in live.results:
            raise Bad("No context has that tag")
    assert live is not None
    for tag in tags:
        live.results.pop(tag, None)
    return Reply("CANCELUPDATE completed")
