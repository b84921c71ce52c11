"""Mailbox change notifications for IDLE and NOOP, across processes.

Writes made by this process wake the watchers of the mailboxes they touched as soon
as they commit. Writes made by other processes (other workers, the CLI, an import)
are noticed by polling: a cheap check (SQLite's ``PRAGMA data_version``) runs a few
times a second only while someone watches, and when it moved, the watched
mailboxes' HIGHESTMODSEQ values are compared with the last ones seen. Every change to
a mailbox (new message, flags, expunge) raises its HIGHESTMODSEQ, so nothing is missed.

An account watch (IMAP NOTIFY, RFC 5465) wakes on any change in one account: a message in
any of its mailboxes, a mailbox created, deleted or renamed, a subscription, a metadata
entry (RFC 5464). One watch per session however many mailboxes the account has: a session
watching thousands of mailboxes costs one watcher, and the poll compares one fingerprint per
watched account (its mailboxes' ids, names, UIDVALIDITY and HIGHESTMODSEQ, its subscriptions
and its metadata change number). The watcher then works out what changed itself
(``Store.list_mailboxes``, ``Store.metadata_changes``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Awaitable, Callable, Iterable

POLL_INTERVAL = 0.25
log = logging.getLogger("postroom.storage")

#: ``account ids → {account id: (fingerprint, its mailbox ids)}``: a fingerprint changes when
#: anything :meth:`WatchHub.watch_account` promises to report changes.
AccountMarks = Callable[[list[int]], Awaitable[dict[int, tuple[int, tuple[int, ...]]]]]


class Watch:
    """One session's subscription. Small on purpose: an IMAP server keeps one per idle client,
    and ten thousand of them must cost little (docs/imap.md, "10,000 idle clients"). A flag,
    and a future only while someone awaits :meth:`wait` (an ``asyncio.Event`` would bring a
    deque of about 600 bytes per watch); or a plain callback (``on_change``) for a waiter that
    needs no task of its own (IDLE)."""

    __slots__ = ("_set", "_waiter", "account_id", "closed", "hub", "mailbox_id", "on_change")

    def __init__(self, hub: WatchHub, mailbox_id: int, account_id: int | None = None) -> None:
        self.hub = hub
        self.mailbox_id = mailbox_id  # 0 for an account watch
        self.account_id = account_id  # set for an account watch
        self.closed = False
        # Called (synchronously, from whatever commits or polls) after each change is flagged.
        self.on_change: Callable[[], None] | None = None
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        self._set = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        if self.on_change is not None:
            self.on_change()

    def pending(self) -> bool:
        """Like ``wait(0)`` without an await: True (and reset) if a change was signalled."""
        if self.closed:
            raise RuntimeError("watch closed")
        if self._set:
            self._set = False
            return True
        return False

    async def wait(self, timeout: float | None = None) -> bool:
        if self.pending():
            return True
        if timeout is not None and timeout <= 0:
            return False  # no timer, no trip through the event loop
        while True:
            w = self._waiter
            if w is None or w.done():  # several waiters share one future
                w = self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await w
                break
            except TimeoutError:
                return False
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Not us: another waiter of this watch was cancelled, and the shared future
                # with it. Wait on a new one.
            finally:
                if self._waiter is w and w.done():
                    self._waiter = None
        self._set = False
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)


class WatchHub:
    """Keeps the watchers of one process and the poller that sees other processes' writes."""

    def __init__(self, data_version: Callable[[], Awaitable[int]],
                 modseqs: Callable[[list[int]], Awaitable[dict[int, int]]],
                 account_marks: AccountMarks | None = None) -> None:
        self._data_version = data_version
        self._modseqs = modseqs
        self._account_marks = account_marks
        self._watches: dict[int, set[Watch]] = defaultdict(set)
        self._known: dict[int, int] = {}
        self._accounts: dict[int, set[Watch]] = defaultdict(set)
        self._account_known: dict[int, int] = {}  # account id → fingerprint last seen
        self._account_of: dict[int, int] = {}  # mailbox id → account id, for watched accounts
        self._poller: asyncio.Task[None] | None = None
        # Raised before the watchers of any mailbox are woken: a read of a mailbox's changes
        # made at one generation has seen every change woken about up to it, so watchers woken
        # at that generation can share the read (imap/selected.py: one query for the hundred
        # sessions idling on a mailbox that got new mail).
        self.generation = 0

    def watch(self, mailbox_id: int) -> Watch:
        w = Watch(self, mailbox_id)
        self._watches[mailbox_id].add(w)
        self._start_poller()
        return w

    def watch_account(self, account_id: int) -> Watch:
        w = Watch(self, 0, account_id)
        self._accounts[account_id].add(w)
        self._start_poller()
        return w

    def _start_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="postroom-watch-poll")

    def _remove(self, w: Watch) -> None:
        if w.account_id is not None:
            a = self._accounts.get(w.account_id)
            if a is not None:
                a.discard(w)
                if not a:
                    del self._accounts[w.account_id]
                    self._account_known.pop(w.account_id, None)
                    self._forget_mailboxes(w.account_id)
            return
        s = self._watches.get(w.mailbox_id)
        if s is not None:
            s.discard(w)
            if not s:
                del self._watches[w.mailbox_id]
                self._known.pop(w.mailbox_id, None)

    def changed(self, mailbox_ids: Iterable[int]) -> None:
        """Called after this process committed changes to these mailboxes."""
        accounts = set()
        self.generation += 1
        for mid in mailbox_ids:
            for w in self._watches.get(mid, ()):
                w.notify()
            aid = self._account_of.get(mid)
            if aid is not None:
                accounts.add(aid)
        if accounts:
            self.account_changed(accounts)

    def account_changed(self, account_ids: Iterable[int]) -> None:
        """Called after this process committed a change to these accounts' mailbox list,
        subscriptions or metadata (message changes come through :meth:`changed`)."""
        for aid in account_ids:
            for w in self._accounts.get(aid, ()):
                w.notify()

    async def _poll(self) -> None:
        last = -1
        while self._watches or self._accounts:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                current = await self._data_version()
                ids = list(self._watches)
                accounts = list(self._accounts)
                if current == last and all(mid in self._known for mid in ids) and \
                        all(aid in self._account_known for aid in accounts):
                    continue
                last = current
                if accounts and self._account_marks is not None:
                    await self._poll_accounts(accounts)
                if not ids:
                    continue
                seqs = await self._modseqs(ids)
                for mid in ids:
                    seq = seqs.get(mid)
                    if seq is not None and seq != self._known.get(mid):
                        # A first sighting wakes too: a spurious wake costs one
                        # changes_since() query, a missed one a stale client.
                        self._known[mid] = seq
                        self.changed([mid])
            except RuntimeError:  # store shutting down
                return
            except Exception:  # a failed look (a busy or broken database) must not end
                # the poll for every watcher of the process: say so, and look again next time.
                log.exception("change poll failed")
                last = -1

    async def _poll_accounts(self, accounts: list[int]) -> None:
        assert self._account_marks is not None
        marks = await self._account_marks(accounts)
        for aid in accounts:
            mark, mailbox_ids = marks.get(aid, (0, ()))
            if aid not in self._accounts or mark == self._account_known.get(aid):
                continue
            self._account_known[aid] = mark  # a first sighting wakes too (see _poll)
            self._forget_mailboxes(aid)
            for mid in mailbox_ids:
                self._account_of[mid] = aid
            self.account_changed([aid])

    def _forget_mailboxes(self, account_id: int) -> None:
        for mid in [m for m, aid in self._account_of.items() if aid == account_id]:
            del self._account_of[mid]

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except (asyncio.CancelledError, Exception):
                pass
