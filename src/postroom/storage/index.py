"""The in-process message index of one mailbox, shared by every session of the process.

SELECT, SEARCH and FETCH used to read every message row of the mailbox (or one row per
message) on each command. Instead the store keeps, per mailbox, the rows of all its
messages in memory and brings them up to date with one cheap query per command: the
mailbox row, and only when its HIGHESTMODSEQ moved, the rows changed and the UIDs
expunged since (``modseq > cached``) — O(changes), whichever process made them.

An index is immutable once handed out: a refresh that finds changes builds a new one
(copying the row dict, a few milliseconds at 100,000 messages), so a session may keep
using the index it got across awaits. Rows are kept as the raw tuples of the query;
``MessageInfo`` records are made only for the messages a command really looks at
(making 100,000 of them costs about a second), and the UIDs carrying a flag are
collected once per index and flag.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .models import Mailbox, MailboxStatus, MessageInfo

# The columns of a row, after the UID key, as the SQLite store reads them; the PostgreSQL store
# reads the same layout (postgresql/messages.py ROW_COLS: its blob reference is "pg, 0, size").
ROW_COLS = "uid, modseq, flags, internaldate, tzoffset, size, blob_id, segment, offset, length, savedate"
_FLAGS, _SIZE = 2, 5

Row = tuple[Any, ...]


class RowCache:
    """Interning of decoded flags strings and time zones: a mailbox of 100,000 messages
    shares a handful of flag sets and one zone."""

    def __init__(self, segment: str | None = None) -> None:
        self.flags: dict[str, frozenset[str]] = {"": frozenset()}
        self.zones: dict[int, timezone] = {}
        # Replaces the rows' segment in ``MessageInfo.blob`` (the PostgreSQL store: a token of
        # the store instance, so that blob references of two databases opened in one process,
        # whose ids overlap, never look alike to process-wide caches keyed by them).
        self.segment = segment

    def flagset(self, s: str) -> frozenset[str]:
        f = self.flags.get(s)
        if f is None:
            f = frozenset(s.split())
            if len(self.flags) < 10000:
                self.flags[s] = f
        return f

    def zone(self, minutes: int) -> timezone:
        z = self.zones.get(minutes)
        if z is None:
            z = self.zones[minutes] = timezone(timedelta(minutes=minutes))
        return z

    def message(self, row: Row) -> MessageInfo:
        """A record from a row laid out as ``mailbox_id, `` + ROW_COLS."""
        return self.info(row[0], row[1:])

    def info(self, mailbox_id: int, row: Row) -> MessageInfo:
        """A record from a row laid out as ROW_COLS."""
        uid, modseq, flags, idate, tzoff, size, blob_id, seg, off, length, saved = row
        return MessageInfo(mailbox_id, uid, modseq, self.flagset(flags),
                           datetime.fromtimestamp(idate, self.zone(tzoff)), size,
                           f"{blob_id}:{seg if self.segment is None else self.segment}:{off}:{length}",
                           None if saved is None else datetime.fromtimestamp(saved, UTC))


class MailboxView:
    """What SELECT needs of a mailbox whose index is not in memory yet: the mailbox row, the
    UIDs and the counts, from two aggregate queries (``Store.select_view``).

    Reading every row of a 100,000-message mailbox into an index costs about 200 ms, most of
    it making Python tuples; the UIDs and the counts cost a tenth of that, and the index is
    built in the background for the commands that follow. ``uids`` is a ``range`` when the
    UIDs have no gaps (count = max - min + 1): a Sequence that costs nothing to make.
    Has the attributes of :class:`MessageIndex` that SELECT reads.
    """

    __slots__ = ("_status", "mailbox", "recent_uid", "uids")

    def __init__(self, mailbox: Mailbox, recent_uid: int, uids: Sequence[int], size: int, unseen: int,
                 first_unseen: int | None) -> None:
        self.mailbox = mailbox
        self.recent_uid = recent_uid
        self.uids = uids
        recent = len(uids) - bisect_left(uids, recent_uid)
        self._status = MailboxStatus(mailbox, len(uids), unseen, recent, size, first_unseen)

    def with_row(self, mailbox: Mailbox, recent_uid: int) -> MailboxView:
        """This view with the mailbox row read since, which names no message change (the same
        HIGHESTMODSEQ): another \\Recent claim, say."""
        st = self._status
        return MailboxView(mailbox, recent_uid, self.uids, st.size, st.unseen, st.first_unseen_uid)

    def status(self) -> MailboxStatus:
        return self._status


class MessageIndex:
    """All messages of one mailbox at one HIGHESTMODSEQ (see the module docstring).

    Implements :class:`postroom.storage.api.MessageIndex`.
    """

    __slots__ = ("_decode", "_flagged", "_infos", "_rows", "_status", "_uid_set", "mailbox", "recent_uid", "uids")

    def __init__(self, mailbox: Mailbox, recent_uid: int, rows: dict[int, Row], uids: list[int],
                 decode: RowCache) -> None:
        self.mailbox = mailbox
        self.recent_uid = recent_uid
        self._rows = rows
        # Sorted; never mutated after construction (callers copy it).
        self.uids: Sequence[int] = uids
        self._decode = decode
        self._infos: dict[int, MessageInfo] = {}
        self._flagged: dict[str, frozenset[int]] = {}
        self._status: MailboxStatus | None = None
        self._uid_set: frozenset[int] | None = None

    @classmethod
    def build(cls, mailbox: Mailbox, recent_uid: int, rows: Iterable[Row], decode: RowCache) -> MessageIndex:
        by_uid = {r[0]: r for r in rows}
        return cls(mailbox, recent_uid, by_uid, sorted(by_uid), decode)

    def updated(self, mailbox: Mailbox, recent_uid: int, changed: list[Row], expunged: list[int]) -> MessageIndex:
        """A new index: this one plus the rows changed and minus the UIDs expunged since."""
        if not changed and not expunged:
            if mailbox == self.mailbox and recent_uid == self.recent_uid:
                return self
            idx = MessageIndex(mailbox, recent_uid, self._rows, list(self.uids), self._decode)
            # Same rows: same answers.
            idx._infos, idx._flagged, idx._uid_set = self._infos, self._flagged, self._uid_set
            return idx
        rows = dict(self._rows)
        last = self.uids[-1] if self.uids else 0
        appended_only = not expunged
        for r in changed:
            if r[0] not in rows and r[0] < last:
                appended_only = False  # cannot happen (UIDs only grow), but stay correct
            rows[r[0]] = r
        for uid in expunged:
            rows.pop(uid, None)
        if appended_only:
            uids = list(self.uids)
            uids.extend(sorted(r[0] for r in changed if r[0] > last))
        else:
            uids = sorted(rows)
        return MessageIndex(mailbox, recent_uid, rows, uids, self._decode)

    # -- lookups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, uid: object) -> bool:
        return uid in self._rows

    def get(self, uid: int) -> MessageInfo | None:
        m = self._infos.get(uid)
        if m is None:
            row = self._rows.get(uid)
            if row is None:
                return None
            m = self._infos[uid] = self._decode.info(self.mailbox.id, row)
        return m

    def messages(self, uids: Iterable[int]) -> list[MessageInfo]:
        """Records of those of ``uids`` that exist, in the order given."""
        made = self._infos.get  # a dict lookup per message once made (FETCH asks per command)
        out = []
        for uid in uids:
            m = made(uid)
            if m is None:
                m = self.get(uid)
                if m is None:
                    continue
            out.append(m)
        return out

    def with_flag(self, flag: str) -> frozenset[int]:
        """UIDs of the messages that carry ``flag`` (a system flag or keyword)."""
        got = self._flagged.get(flag)
        if got is None:
            flagset = self._decode.flagset
            # Group by flags string first: rows share a handful of distinct strings.
            having = {s for s in {r[_FLAGS] for r in self._rows.values()} if flag in flagset(s)}
            got = frozenset(uid for uid, r in self._rows.items() if r[_FLAGS] in having) if having else frozenset()
            self._flagged[flag] = got
        return got

    def uid_set(self) -> frozenset[int]:
        """Every UID, as a set (made once per index)."""
        if self._uid_set is None:
            self._uid_set = frozenset(self._rows)
        return self._uid_set

    def size_of(self, uid: int) -> int | None:
        row = self._rows.get(uid)
        return None if row is None else row[_SIZE]

    def status(self) -> MailboxStatus:
        """Counts for SELECT/STATUS, computed once per index."""
        st = self._status
        if st is None:
            seen = self.with_flag("\\Seen")
            first_unseen = next((u for u in self.uids if u not in seen), None)
            recent = len(self.uids) - bisect_left(self.uids, self.recent_uid)
            size = sum(r[_SIZE] for r in self._rows.values())
            st = self._status = MailboxStatus(self.mailbox, len(self._rows), len(self._rows) - len(seen),
                                              recent, size, first_unseen)
        return st
