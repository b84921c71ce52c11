"""NOTIFY (RFC 5465): events from several mailboxes, pushed at any time.

A session's NOTIFY SET becomes a :class:`Notifier`. It uses two store watches, never one
per mailbox: the session's watch on the selected mailbox (the one NOOP and IDLE use) and
one account watch (``Store.watch_account``), woken by any change in the account from any
process. On a wake it lists the account's mailboxes (one query) and compares them with
what it last saw: ids gone, new or renamed give MailboxName's LIST responses (§5.4); a
HIGHESTMODSEQ, UIDNEXT or UIDVALIDITY that moved in a watched mailbox gives a STATUS
(§5.1-§5.3, one ``mailbox_status`` query for that mailbox); the subscription list is
compared the same way (§5.5); metadata entries changed since the last change number seen
(``Store.metadata_changes``) give METADATA responses naming them (§5.6 MailboxMetadataChange
for a mailbox the filters take, the selected one included, as for MailboxName; §5.7
ServerMetadataChange, whatever the group's filter, for the server's). The selected mailbox gets EXISTS, EXPUNGE (or VANISHED) and
FETCH FLAGS from its view (``SelectedMailbox.poll``), plus the FETCH of MessageNew's
attributes (§5.2); ``selected-delayed`` holds EXPUNGEs back until a command that allows
them (§6.1.2).

When events go out (§3: "at any time"; §4): while the client is between commands (the
glue waits for the next command line through :meth:`Notifier.serve`), during IDLE (the same
wait, with EXPUNGEs always allowed), and after a command's own responses (the glue's next
wait starts by sending what is pending, in the same flush as the tagged reply).

Bounds (§5.8): at most ``MAX_WATCHED`` mailboxes with message events (NOTIFY SET over it
is refused ``NO [NOTIFICATIONOVERFLOW]``; past it later, or when more than ``MAX_LINES``
responses or ``MAX_NEW_FETCH`` new messages pile up at once, or when the client stops
reading, the session gets ``* OK [NOTIFICATIONOVERFLOW]`` and behaves as after NOTIFY
NONE). NOTIFY NONE, LOGOUT, UNAUTHENTICATE and the connection's end close the account
watch; there is no task of its own to leak: waits are futures of the connection's task.

Own changes (§5: SHOULD omit): CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE of this
session update the notifier's picture instead of coming back as LIST responses
(:func:`own`); its own SETMETADATA (and RENAME INBOX's copy of INBOX's entries) gives
the notifier that write's change number (:meth:`Notifier.own_metadata`), skipped when read
back; STATUS of another mailbox after this session's own APPEND or COPY is still sent (a
STATUS too many is harmless, one too few leaves the client stale).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...errors import MailboxNotFound, StoreError
from ...storage.models import HIERARCHY_SEPARATOR as SEP
from ...storage.models import Mailbox
from ..errors import Bye, No
from ..parser.notify import MESSAGE_EVENTS, EventGroup, NotifyArgs
from ..responses import Reply, mailbox_wire, untagged
from ..session import Session, State
from .fetch import fetch_uids
from .metadata import changed_lines

log = logging.getLogger("postroom.imap")

CAPS = ("NOTIFY",)
# §3.1: a BADEVENT code lists every event the server supports. AnnotationChange needs
# ANNOTATE (RFC 5257), which Postroom does not have; the metadata events are REQUIRED with
# METADATA (RFC 5464), which it always offers (§5.6, §5.7).
METADATA_EVENTS = frozenset({"MailboxMetadataChange", "ServerMetadataChange"})
SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange",
             "MailboxMetadataChange", "ServerMetadataChange")
_BADEVENT = b"BADEVENT (" + " ".join(SUPPORTED).encode() + b")"

MAX_WATCHED = 1000  # mailboxes with message events, besides the selected one
MAX_LINES = 2000  # responses of one batch of events
MAX_NEW_FETCH = 500  # MessageNew FETCH responses of one batch
MAX_BACKLOG = 256 * 1024  # bytes the client has not read yet: past this, overflow
_MESSAGE = frozenset(MESSAGE_EVENTS)
_OVERFLOW = untagged(b"OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off")

Send = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class _Seen:
    """A mailbox as last reported (or taken as known) to the client."""

    name: str
    uidvalidity: int
    uidnext: int
    modseq: int
    messages: int | None  # None: not counted (no STATUS was needed yet)


def _seen(m: Mailbox) -> _Seen:
    return _Seen(m.name, m.uidvalidity, m.uidnext, m.highestmodseq, None)


class Notifier:
    """One session's NOTIFY SET: what to report, and what was last reported."""

    def __init__(self, s: Session, a: NotifyArgs) -> None:
        self.s = s
        self.selected_group: EventGroup | None = next((g for g in a.groups if g.selected), None)
        self.groups = [g for g in a.groups if not g.selected and g.events]
        events = frozenset().union(*(g.events for g in self.groups))
        self.subs_needed = bool(events & {"SubscriptionChange", "MailboxName"}) or \
            any(g.filter == "SUBSCRIBED" for g in self.groups)
        self.watch: Any = None  # the account watch, when any other mailbox is of interest
        self.boxes: dict[int, _Seen] = {}
        self.subs: set[str] = set()
        self.metadata_events = events & METADATA_EVENTS
        self.metadata_mark = 0  # the account's metadata change number last looked at
        self.metadata_own: set[int] = set()  # change numbers of this session's own writes after it
        self.account_dirty = False
        self.selected_dirty = False
        self.closed = False

    # -- which events for which mailbox (§6) ---------------------------------------------
    def _matches(self, g: EventGroup, name: str, subs: set[str]) -> bool:
        f = g.filter
        if f in ("PERSONAL", "INBOXES"):
            # §6.3: "inboxes" is every mailbox delivery may file into; with Sieve's fileinto
            # that is any of them, so it is "personal" (which §6.3 asks for when unsure).
            return True
        if f == "SUBSCRIBED":
            return name in subs  # §6.4: follows the subscription list as it changes
        if f == "MAILBOXES":
            return name in g.mailboxes  # §6.6
        return any(name == m or name.startswith(m + SEP) for m in g.mailboxes)  # §6.5 SUBTREE

    def events_for(self, name: str, subs: set[str] | None = None) -> frozenset[str]:
        """The events of every group whose filter takes ``name`` (a mailbox other than the
        selected one)."""
        subs = self.subs if subs is None else subs
        out: frozenset[str] = frozenset()
        for g in self.groups:
            if self._matches(g, name, subs):
                out |= g.events
        return out

    # -- start and stop ---------------------------------------------------------------------
    async def start(self, with_status: bool) -> list[bytes]:
        """Take the account's picture; with STATUS, the initial STATUS responses (§3.1)."""
        s = self.s
        if not self.groups:
            return []
        # The watch first: a change made while the picture is taken wakes it.
        self.watch = s.store.watch_account(s.account_id)
        boxes = await s.store.list_mailboxes(s.account_id)
        if self.subs_needed:
            self.subs = set(await s.store.list_subscriptions(s.account_id))
        if self.metadata_events:
            self.metadata_mark = (await s.store.metadata_changes(s.account_id, None)).last
        self.boxes = {m.id: _seen(m) for m in boxes}
        watched = [m for m in boxes if self.events_for(m.name) & _MESSAGE]
        if len(watched) > MAX_WATCHED:
            self.close()
            raise No("Too many mailboxes to watch", b"NOTIFICATIONOVERFLOW")  # §3.1
        out: list[bytes] = []
        if with_status:
            selected = s.selected.id if s.selected is not None else None
            for m in watched:
                if m.id == selected:
                    continue  # the selected mailbox's news come as EXISTS/FETCH
                line = await self._status(m.id)
                if line:
                    out.append(line)
        return out

    def close(self) -> None:
        self.closed = True
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    # -- own changes -------------------------------------------------------------------------
    def own_metadata(self, change: int) -> None:
        """This session's own metadata write, numbered ``change``: left out when read back."""
        if self.watch is not None and self.metadata_events and change > self.metadata_mark:
            self.metadata_own.add(change)

    async def absorb(self, verb: str, args: Any) -> None:
        """This session's own mailbox-list change: into the picture, not back to the client."""
        s = self.s
        if verb in ("SUBSCRIBE", "UNSUBSCRIBE"):
            (self.subs.add if verb == "SUBSCRIBE" else self.subs.discard)(args)
            return
        if self.watch is None:
            return
        if verb == "DELETE":
            for mid, seen in list(self.boxes.items()):
                if seen.name == args:
                    del self.boxes[mid]
            return
        now = {m.id: m for m in await s.store.list_mailboxes(s.account_id)}
        if verb == "CREATE":
            name = getattr(args, "name", args).rstrip(SEP)
            made = {name, *_parents(name)}
        else:  # RENAME: the renamed names, and the parents (or INBOX's new mailbox) it made
            old, new = args
            made = {new, *_parents(new)}
            for mid, seen in self.boxes.items():
                if (seen.name == old or seen.name.startswith(old + SEP)) and mid in now:
                    seen.name = now[mid].name
        for mid, m in now.items():
            if mid not in self.boxes and m.name in made:
                self.boxes[mid] = _seen(m)

    # -- waiting -----------------------------------------------------------------------------
    def _selected_watch(self) -> Any:
        s, g = self.s, self.selected_group
        if g is None or not g.events or s.selected is None or s.state is not State.SELECTED:
            return None
        if s.watched_id != s.selected.id and s.changed():  # makes the session's watch
            self.selected_dirty = True
        return s.watch

    async def wait(self) -> None:
        """Until the store says something of interest may have changed (sets the dirty flags)."""
        waiters: dict[asyncio.Future[bool], str] = {}
        if self.watch is not None:
            waiters[asyncio.ensure_future(self.watch.wait())] = "account"
        sel = self._selected_watch()
        if sel is not None:
            waiters[asyncio.ensure_future(sel.wait())] = "selected"
        if not waiters:
            await asyncio.get_running_loop().create_future()  # nothing to wait for: the caller cancels
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in waiters:
                if not f.done():
                    f.cancel()
        for f in done:
            if f.result():
                if waiters[f] == "account":
                    self.account_dirty = True
                else:
                    self.selected_dirty = True

    async def serve(self, line: Awaitable[bytes], send: Send, backlog: Callable[[], int],
                    idle: bool = False) -> bytes:
        """Wait for ``line`` (the next command, or IDLE's DONE), sending events as they come."""
        reader = asyncio.ensure_future(line)
        waiter: asyncio.Future[None] | None = None
        if idle:
            self.selected_dirty = True  # §4: what was held back goes out as IDLE starts
        try:
            while not self.closed:
                await self.emit(send, backlog, allow_expunge=idle or self._immediate_expunge())
                if self.closed:
                    break
                waiter = asyncio.ensure_future(self.wait())
                await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if reader.done():
                    break
                try:
                    waiter.result()
                except RuntimeError:  # a watch closed under us (the store is shutting down)
                    self._stop()
            return await reader
        finally:
            for f in (reader, waiter):
                if f is None:
                    continue
                if not f.done():
                    f.cancel()
                elif not f.cancelled():
                    f.exception()  # retrieved: an error that lost the race is not logged as lost

    def _immediate_expunge(self) -> bool:
        g = self.selected_group
        return g is not None and g.filter == "SELECTED"  # §6.1.1; SELECTED-DELAYED holds them

    # -- sending -----------------------------------------------------------------------------
    async def emit(self, send: Send, backlog: Callable[[], int], allow_expunge: bool) -> None:
        if not (self.account_dirty or self.selected_dirty):
            return
        if backlog() > MAX_BACKLOG:
            # §5.8: the client does not read what we send; stop rather than pile up more.
            await self._overflow(send)
            return
        try:
            lines = await self.collect(allow_expunge)
        except StoreError:
            log.exception("imap %s: NOTIFY update failed", self.s.peer_ip)
            return
        if self.closed:  # overflowed while collecting
            await send(b"".join(lines) + _OVERFLOW)
        elif lines:
            await send(b"".join(lines))

    async def _overflow(self, send: Send) -> None:
        self._stop()
        await send(_OVERFLOW)

    def _stop(self) -> None:
        """§5.8: as if the client had sent NOTIFY NONE."""
        self.close()
        if self.s.notify is self:
            self.s.notify = None

    async def collect(self, allow_expunge: bool) -> list[bytes]:
        """The responses for everything that changed since the last call."""
        out: list[bytes] = []
        if self.selected_dirty:
            self.selected_dirty = False
            # Never dropped: the selected mailbox's view has already moved on (EXPUNGE, EXISTS).
            out += await self._selected_updates(allow_expunge)
        if self.account_dirty and not self.closed:
            self.account_dirty = False
            others = await self._account_updates()
            if len(others) > MAX_LINES:
                self._stop()
            else:
                out += others
        return out

    async def _selected_updates(self, allow_expunge: bool) -> list[bytes]:
        s, g, box = self.s, self.selected_group, self.s.selected
        if g is None or not g.events or box is None or s.state is not State.SELECTED:
            return []
        last = box.uids[-1] if box.uids else 0
        try:
            out = await box.poll(s.store, allow_expunge=allow_expunge, flags="FlagChange" in g.events)
        except MailboxNotFound:
            raise Bye("Selected mailbox was deleted, have to disconnect") from None
        if g.fetch_atts:
            new = list(box.uids[bisect_right(box.uids, last):])
            if len(new) > MAX_NEW_FETCH:
                self._stop()
                return out
            if new:
                # §5.2: EXISTS, then a FETCH of what MessageNew asked for; with QRESYNC (RFC 7162
                # §3.2.4) or IMAP4rev2 (RFC 9051 §7.5.2) every unsolicited FETCH carries the UID.
                with_uid = box.qresync or getattr(box, "rev2", False)
                reply = fetch_uids(s, box, new, list(g.fetch_atts), by_uid=with_uid)
                out += reply.untagged
                if reply.stream is not None:
                    async for chunk in reply.stream:
                        out.append(chunk)
        return out

    async def _account_updates(self) -> list[bytes]:
        s = self.s
        if self.watch is None:
            return []
        now = {m.id: m for m in await s.store.list_mailboxes(s.account_id)}
        old_subs = self.subs
        if self.subs_needed:
            self.subs = set(await s.store.list_subscriptions(s.account_id))
        either_subs = old_subs | self.subs
        names = {m.name for m in now.values()}
        out: list[bytes] = []
        # §5.4 MailboxName: deleted, renamed, created (ids tell a rename from a delete+create).
        for mid, seen in list(self.boxes.items()):
            m = now.get(mid)
            if m is None:
                if "MailboxName" in self.events_for(seen.name, either_subs):
                    out.append(self._list_line(seen.name, names))
                del self.boxes[mid]
            elif m.name != seen.name:
                if "MailboxName" in (self.events_for(m.name, either_subs) | self.events_for(seen.name, either_subs)):
                    out.append(self._list_line(m.name, names, oldname=seen.name))
                seen.name = m.name
        for mid, m in now.items():
            if mid not in self.boxes:
                if "MailboxName" in self.events_for(m.name, either_subs):
                    out.append(self._list_line(m.name, names))
                # Taken as empty: mail that reached it before we looked is reported below.
                self.boxes[mid] = _Seen(m.name, m.uidvalidity, 1, 1, 0)
        # §5.5 SubscriptionChange.
        for name in sorted(old_subs ^ self.subs):
            if "SubscriptionChange" in self.events_for(name, either_subs):
                out.append(self._list_line(name, names))
        # §5.1-§5.3 in the other watched mailboxes: one STATUS each.
        selected = s.selected.id if s.selected is not None else None
        watched = 0
        for mid, m in now.items():
            seen = self.boxes[mid]
            events = self.events_for(m.name) & _MESSAGE
            if not events or mid == selected:
                # Not reported (or reported as EXISTS/FETCH): only keep up with it, so that
                # a later STATUS reports what happens from then on.
                self.boxes[mid] = _seen(m)
                continue
            watched += 1
            if (m.uidvalidity, m.uidnext, m.highestmodseq) == (seen.uidvalidity, seen.uidnext, seen.modseq):
                continue
            line = await self._status(mid, seen, events)
            if line:
                out.append(line)
        out += await self._metadata_updates(now)
        if watched > MAX_WATCHED:
            out.clear()
            self._stop()
        return out

    async def _metadata_updates(self, now: dict[int, Mailbox]) -> list[bytes]:
        """§5.6, §5.7: one METADATA response per mailbox (and for the server) naming the
        entries other sessions set or removed since the last look (§5.6: a removed entry MUST
        be named). More writes than the store's log keeps: overflow (§5.8)."""
        if not self.metadata_events:
            return []
        got = await self.s.store.metadata_changes(self.s.account_id, self.metadata_mark)
        if got.last <= self.metadata_mark:
            return []
        self.metadata_mark = got.last
        own, self.metadata_own = self.metadata_own, set()
        if not got.complete:
            self._stop()
            return []
        changed: dict[int | None, dict[str, None]] = {}
        for number, mid, name in got.changes:
            if number not in own:
                changed.setdefault(mid, {})[name] = None  # each name once, in the order changed
        out: list[bytes] = []
        for mid, names in changed.items():
            if mid is None:
                if "ServerMetadataChange" in self.metadata_events:
                    out += changed_lines("", list(names))
            elif mid in now and "MailboxMetadataChange" in self.events_for(now[mid].name):
                out += changed_lines(now[mid].name, list(names))
        return out

    async def _status(self, mid: int, seen: _Seen | None = None, events: frozenset[str] = _MESSAGE) -> bytes:
        """``* STATUS`` of a watched mailbox when the change is one ``events`` asks for (§5.1:
        a new UIDVALIDITY always is); updates the picture either way."""
        s = self.s
        try:
            st = await s.store.mailbox_status(mid)
        except MailboxNotFound:
            return b""  # deleted meanwhile: the next wake reports that
        mb = st.mailbox
        if seen is None:
            seen = self.boxes.setdefault(mid, _seen(mb))
            report = True
        else:
            messages_moved = mb.uidnext != seen.uidnext or seen.messages is None or st.messages != seen.messages
            report = mb.uidvalidity != seen.uidvalidity or \
                ("MessageNew" in events if messages_moved else "FlagChange" in events)
        seen.name, seen.uidvalidity, seen.uidnext, seen.modseq, seen.messages = \
            mb.name, mb.uidvalidity, mb.uidnext, mb.highestmodseq, st.messages
        if not report:
            return b""
        items = b"MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN %d" % (st.messages, mb.uidnext, mb.uidvalidity,
                                                                     st.unseen)
        if "CONDSTORE" in s.enabled:  # §5.1-§5.3 (QRESYNC enables it too)
            items += b" HIGHESTMODSEQ %d" % mb.highestmodseq
        return untagged(b"STATUS " + mailbox_wire(mb.name) + b" (" + items + b")")

    def _list_line(self, name: str, names: set[str], oldname: str | None = None) -> bytes:
        """§5.4, §5.5: an (extended, RFC 5258) LIST response with the attributes LIST would give:
        a name that is gone is ``\\NonExistent`` (§5.4 MUST), or ``\\Noselect`` while it still
        has children (as LIST shows it)."""
        prefix = name + SEP
        children = any(n.startswith(prefix) for n in names)
        attrs: list[str] = []
        if name not in names:
            attrs.append("\\Noselect" if children else "\\NonExistent")
        if name in names or children:
            attrs.append("\\HasChildren" if children else "\\HasNoChildren")
        if name in self.subs:
            attrs.append("\\Subscribed")
        line = b"LIST (" + " ".join(attrs).encode() + b') "' + SEP.encode() + b'" ' + mailbox_wire(name)
        if oldname is not None:
            line += b' ("OLDNAME" (' + mailbox_wire(oldname) + b"))"
        return untagged(line)


def _parents(name: str) -> list[str]:
    levels = name.split(SEP)
    return [SEP.join(levels[:i]) for i in range(1, len(levels))]


# -- the command and its hooks ---------------------------------------------------------------
async def notify(s: Session, a: NotifyArgs) -> Reply:
    if a.none:
        s.stop_notify()
        return Reply("NOTIFY completed")
    requested = frozenset().union(*(g.events for g in a.groups))
    if a.unsupported or requested - set(SUPPORTED):
        raise No("Unsupported NOTIFY events", _BADEVENT)  # §3.1: NO, not BAD
    n = Notifier(s, a)
    try:
        lines = await n.start(a.status)  # NO [NOTIFICATIONOVERFLOW] leaves the previous NOTIFY on
    except BaseException:
        n.close()
        raise
    s.stop_notify()
    s.notify = n
    box = s.selected
    if box is not None and s.state is State.SELECTED:
        # §3.1: a successful NOTIFY SET is an implicit NOOP for the selected mailbox.
        try:
            lines = await box.poll(s.store, allow_expunge=True) + lines
        except MailboxNotFound:
            raise Bye("Selected mailbox was deleted, have to disconnect") from None
    return Reply("NOTIFY completed", untagged=lines)


def own(handler: Callable[[Session, Any], Awaitable[Reply]], verb: str) -> Callable[[Session, Any], Awaitable[Reply]]:
    """``handler`` (CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE), telling the session's
    notifier of the change it made: §5 says the client SHOULD NOT hear of its own changes."""
    async def run(s: Session, args: Any) -> Reply:
        reply = await handler(s, args)
        n = s.notify
        if n is not None and reply.status == b"OK":
            await n.absorb(verb, args)
        return reply
    run.__name__ = getattr(handler, "__name__", verb.lower())
    run.__doc__ = handler.__doc__
    return run
