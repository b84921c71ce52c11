"""The selected mailbox as one session sees it: seq↔UID map and pending updates.

RFC 3501 §2.3.1.2 / §7.4.1 / §5.5: sequence numbers only change when this session
is told (EXPUNGE), so other sessions' expunges are held back until a moment where
an EXPUNGE response is allowed: never during FETCH, STORE or SEARCH (their results
would otherwise refer to shifted numbers), but after NOOP, CHECK, IDLE, EXPUNGE,
SELECT-less commands and the like. New messages (EXISTS) and flag changes (FETCH
FLAGS) from other sessions may be sent after any command.

The view is a sorted list of UIDs; seq = index + 1. Nothing heavier is kept per
message, so SELECT of 100,000 messages costs one UID list.
"""

from __future__ import annotations

import asyncio
import weakref
from bisect import bisect_left
from typing import Any, Iterable, Sequence

from ..storage.models import Mailbox, MessageInfo
from .parser.seqset import compress
from .responses import flag_list_cached, untagged

# Reads of a mailbox's changes in flight, by (store, mailbox, MODSEQ, watch generation): a
# delivery to a user with a hundred idling sessions wakes them all at once, and they all ask
# for the changes since the same MODSEQ. One query answers them; a session woken later (a
# newer generation) makes its own, so a read never misses a change it was woken for.
_inflight: dict[tuple[int, int, int, int], asyncio.Future[Any]] = {}


async def _changes_since(store: Any, mailbox_id: int, since: int) -> Any:
    hub = getattr(store, "hub", None)
    generation = getattr(hub, "generation", None)
    if generation is None:
        return await store.changes_since(mailbox_id, since)
    key = (id(store), mailbox_id, since, generation)
    shared = _inflight.get(key)
    if shared is not None:
        try:
            return await asyncio.shield(shared)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not shared.cancelled() or task is None or task.cancelling():
                raise
        # The session that made the read went away in the middle of it: read for ourselves.
        return await store.changes_since(mailbox_id, since)
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    _inflight[key] = fut
    try:
        ch = await store.changes_since(mailbox_id, since)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            fut.cancel()
        else:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody shared it
        raise
    finally:
        del _inflight[key]
    fut.set_result(ch)
    return ch


# \Recent (RFC 3501 §2.3.2) goes to the first session to learn of a message, through a write
# (``Store.claim_recent``). When one delivery wakes a hundred sessions of this process, one claims
# and the rest would each write only to learn they lost: a claim known to have gone past ``upto``
# (made by a session of this process, or in flight) settles it without a write. Per store, and
# per mailbox incarnation (UIDVALIDITY), so a recreated mailbox starts afresh.
_claims: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], tuple[int, asyncio.Future[None] | None]]] = \
    weakref.WeakKeyDictionary()


async def _claim_recent(store: Any, mailbox: Mailbox, upto: int) -> int:
    """``store.claim_recent``, or ``upto + 1`` (nothing for us) when another session of this
    process has claimed, or is claiming, past ``upto``."""
    try:
        claims = _claims.setdefault(store, {})
    except TypeError:  # a store that cannot be weakly referenced: always ask it
        return int(await store.claim_recent(mailbox.id))
    key = (mailbox.id, mailbox.uidvalidity)
    past, pending = claims.get(key, (0, None))
    while past >= upto:
        if pending is None:
            return upto + 1
        await asyncio.shield(pending)  # the winner's claim first: if it failed, we claim
        past, pending = claims.get(key, (0, None))
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    claims[key] = (upto, fut)
    try:
        return int(await store.claim_recent(mailbox.id))
    except BaseException:
        if claims.get(key, (0, None))[1] is fut:
            claims[key] = (past, None)  # not claimed after all
        raise
    finally:
        fut.set_result(None)
        if claims.get(key, (0, None))[1] is fut:
            claims[key] = (upto, None)


def seq_numbers(view: Sequence[int], uids: Iterable[int]) -> list[int]:
    """The sequence number (RFC 3501 §2.3.1.2: from 1) of each of ``uids`` in ``view``, the
    ascending UIDs of a selected mailbox, or 0 for a UID not in it.

    A FETCH names a range of messages, so where one UID was found the next one is usually
    the next entry: that costs one comparison, and a bisection only when it is not (a gap,
    an expunged message, UIDs out of order). The equality check makes either way exact.
    """
    out: list[int] = []
    n = len(view)
    i = -1
    for uid in uids:
        i += 1
        if i >= n or view[i] != uid:
            i = bisect_left(view, uid)
            if i == n or view[i] != uid:
                out.append(0)
                i -= 1  # the next UID is looked for where this one would have been
                continue
        out.append(i + 1)
    return out


class SelectedMailbox:
    __slots__ = ("mailbox", "readonly", "uids", "recent", "modseq", "own", "held_expunges",
                 "keywords", "exists_sent", "_shared", "condstore", "qresync", "saved", "rev2",
                 "contexts")

    def __init__(self, mailbox: Mailbox, uids: Sequence[int], readonly: bool, recent_from: int | None) -> None:
        self.mailbox = mailbox
        self.readonly = readonly
        # Sorted. Usually the store's index list, shared (SELECT copies nothing, and
        # dropping the view frees nothing): copied before the first change of the view.
        self.uids: Sequence[int] = uids
        self._shared = True
        # UID ranges [lo, hi) that carry \Recent in this session (§2.3.2): the first
        # session to learn of a message claims it; usually one range.
        self.recent: list[tuple[int, int]] = []
        if recent_from is not None and uids and recent_from <= uids[-1]:
            self.recent.append((recent_from, uids[-1] + 1))
        self.modseq = mailbox.highestmodseq
        # uid → modseq of flag changes this session already reported itself (no echo).
        self.own: dict[int, int] = {}
        # Expunged by others, not yet announced (still occupying their seq numbers).
        self.held_expunges: set[int] = set()
        self.keywords: set[str] = set()
        self.exists_sent = len(uids)
        # RFC 7162 §3.1, §3.2.10: once enabled, unsolicited FETCH responses carry MODSEQ, and
        # VANISHED replaces EXPUNGE (set from the session by handlers/enabled.py).
        self.condstore = False
        self.qresync = False
        # RFC 9051 (ENABLE IMAP4rev2): no \Recent, no RECENT response, UID in unsolicited FETCH.
        self.rev2 = False
        # RFC 5182 §2.1: the search result variable, UIDs saved by SEARCH RETURN (SAVE); a new
        # SELECT/EXAMINE makes a new view, so it starts empty. Expunged UIDs stay here but are
        # no longer in ``uids``, so resolving "$" drops them (handlers/messages.resolve).
        self.saved: list[int] = []
        # RFC 5267 §4 CONTEXT=SEARCH/SORT: the live search results of this view, made by
        # handlers/context.py (``removing``/``changed`` below); they end with the view.
        self.contexts: Any = None

    # -- lookups ----------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.mailbox.id

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def seqs_of(self, uids: Iterable[int]) -> list[int]:
        """:func:`seq_numbers` of ``uids`` in this view."""
        return seq_numbers(self.uids, uids)

    def is_recent(self, uid: int) -> bool:
        for lo, hi in self.recent:
            if lo <= uid < hi:
                return True
        return False

    def recent_count(self) -> int:
        return sum(bisect_left(self.uids, hi) - bisect_left(self.uids, lo) for lo, hi in self.recent)

    def flags_of(self, msg: MessageInfo) -> frozenset[str]:
        return msg.flags | {"\\Recent"} if self.recent and self.is_recent(msg.uid) else msg.flags

    def flags_wire(self, msg: MessageInfo) -> bytes:
        """``flag_list(self.flags_of(msg))``, from a cache of formatted flag sets."""
        return flag_list_cached(msg.flags, bool(self.recent) and self.is_recent(msg.uid))

    def modseq_item(self, m: MessageInfo) -> bytes:
        """`` MODSEQ (n)`` for an unsolicited FETCH response once CONDSTORE is on (RFC 7162 §3.1.4.1)."""
        return b" MODSEQ (%d)" % m.modseq if self.condstore else b""

    def note_own(self, msgs: tuple[MessageInfo, ...] | list[MessageInfo]) -> None:
        for m in msgs:
            self.own[m.uid] = m.modseq

    # -- changes ----------------------------------------------------------------
    def _own_uids(self) -> list[int]:
        """The UID list, made this session's own (copied from the index) to be changed."""
        if self._shared or not isinstance(self.uids, list):
            self.uids = list(self.uids)
            self._shared = False
        return self.uids  # type: ignore[return-value]

    def remove(self, expunged: list[int]) -> list[bytes]:
        """Drop UIDs from the view; EXPUNGE lines in the order they apply (§7.4.1).

        Sent from the highest sequence number down, so each number is still valid
        when the client reads it and no renumbering is needed.
        """
        seqs = sorted(((u, n) for u in set(expunged) if (n := self.seq_of(u)) is not None), reverse=True)
        if not seqs:
            return []
        gone = [u for u, _ in seqs]
        # RFC 5267 §4.3.4: a context's REMOVEFROM comes before the EXPUNGE, numbers still valid.
        out = self.contexts.removing(gone) if self.contexts is not None else []
        if self.qresync:
            out.append(untagged(b"VANISHED " + compress(sorted(gone)).encode()))  # RFC 7162 §3.2.10
        else:
            out += [untagged(b"%d EXPUNGE" % n) for _, n in seqs]
        if len(gone) < 32:
            uids = self._own_uids()
            for u in gone:
                del uids[bisect_left(uids, u)]
        else:
            drop = set(gone)
            self.uids = [u for u in self.uids if u not in drop]
            self._shared = False
        for u in gone:
            self.own.pop(u, None)
            self.held_expunges.discard(u)
        self.exists_sent = len(self.uids)
        return out

    async def poll(self, store: Any, allow_expunge: bool, claim_recent: bool = True,
                   flags: bool = True) -> list[bytes]:
        """Untagged updates for what others changed since we last looked; ``flags=False``
        leaves out flag changes (RFC 5465 NOTIFY without FlagChange)."""
        since = self.modseq
        ch = await _changes_since(store, self.mailbox.id, since)
        self.modseq = ch.mailbox.highestmodseq
        self.mailbox = ch.mailbox
        out: list[bytes] = []
        if not ch.complete_since(since):
            # The expunge log was pruned past what we last saw: what went is what the
            # store's index no longer has.
            present = (await store.message_index(self.mailbox.id)).uid_set()
            self.held_expunges.update(u for u in self.uids if u not in present)
        elif ch.expunged:
            self.held_expunges.update(u for u in ch.expunged if self.seq_of(u) is not None)
        if allow_expunge and self.held_expunges:
            out += self.remove(list(self.held_expunges))
        last = self.uids[-1] if self.uids else 0
        new = [m for m in ch.changed if m.uid > last]
        if new:
            if claim_recent and not self.readonly and not self.rev2:  # rev2 leaves \Recent to rev1 sessions
                # New arrivals are \Recent for the first session to learn of them.
                first = max(await _claim_recent(store, self.mailbox, new[-1].uid), new[0].uid)
                if first <= new[-1].uid:
                    self.recent.append((first, new[-1].uid + 1))
            self._own_uids().extend(m.uid for m in new)
        if len(self.uids) != self.exists_sent:
            self.exists_sent = len(self.uids)
            out.append(untagged(b"%d EXISTS" % len(self.uids)))
            if not self.rev2:  # RFC 9051 Appendix E item 12: no RECENT response
                out.append(untagged(b"%d RECENT" % self.recent_count()))
        for m in ch.changed if flags else ():
            if m.uid > last or m.uid in self.held_expunges:
                continue
            if self.own.get(m.uid) == m.modseq:
                continue
            seq = self.seq_of(m.uid)
            if seq is not None:
                out.append(untagged(b"%d FETCH (UID %d FLAGS %s%s)" % (seq, m.uid, self.flags_wire(m),
                                                                      self.modseq_item(m))))
        self.own.clear()
        if self.contexts is not None:  # RFC 5267 §4.3.3: ADDTO after the EXISTS
            out += await self.contexts.changed(ch.changed)
        return out
