"""What every part of :class:`~postroom.news.service.News` shares: its settings, the groups
table read (at most every ``GROUPS_TTL`` seconds), the reserved account, a group's message
index (reused under the shared change number, see :meth:`NewsBase._index`) and the history
lookups.
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MailboxNotFound
from ..storage.models import MessageInfo
from .account import news_account_id
from .records import GroupInfo, Posted, permits
from .state import NewsState

MAILBOX_PREFIX = "news/"  # a group's mailbox name in the reserved account
GROUPS_TTL = 2.0  # seconds the groups table is reused from memory (a CLI change shows within this)
DAY = 86400.0
INDEX_MAX_AGE = 10.0  # seconds a group's index is reused under an unchanged change number (_index)
# Articles whose header facts ARTICLE keeps per process (about 430 octets each with a typical
# Message-ID, the status line's end included: some 43 MB when full; NewsReading.article).
SERVED_MAX = 100_000
_GROUP_COLS = "name, posting, description, created, retention, list_address, read_perm, post_perm, mailbox_id"
#: What ARTICLE keeps of an article's header (NewsReading._learn): (blob reference, Message-ID,
#: where Xref goes, where the body starts, the Xref line or None for a crosspost, whether a
#: header line starts with ".", whether a body line does, the end of a 22x status line
#: `` <Message-ID>\r\n`` or None when the Message-ID is not plain ASCII without CR or LF, and
#: where in the bytes each "." that dot-stuffing doubles is: at the start, or after a CRLF).
Served = tuple[str, str, int, int, "bytes | None", bool, bool, "bytes | None", "tuple[int, ...]"]
PostHook = Callable[["Posted", bytes, "str | None"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class NewsSettings:
    """What the news layer needs from ``[nntp]`` (N2's settings carry the same names)."""

    path_host: str
    max_article_size: int = 10 * 1024 * 1024
    max_crosspost: int = 25
    history_days: float = 30.0  # a Message-ID is remembered this long after its article went
    admins: tuple[str, ...] = ()  # may cancel any article and approve moderated posts

    @classmethod
    def from_config(cls, cfg: Any, nntp: Any = None) -> NewsSettings:
        """From N2's parsed ``[nntp]`` settings (``ctx.state["nntp"]``) when present."""
        host = getattr(nntp, "path_host", None) or getattr(cfg, "hostname", None) or socket.getfqdn()
        defaults = cls(host)
        return cls(
            path_host=str(host),
            max_article_size=int(getattr(nntp, "max_article_size", defaults.max_article_size)),
            max_crosspost=int(getattr(nntp, "max_crosspost", defaults.max_crosspost)),
            history_days=float(getattr(nntp, "history_days", defaults.history_days)),
            admins=tuple(a.lower() for a in getattr(nntp, "admins", ()) or ()),
        )


def _locations(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split():
        g, _, n = item.rpartition(":")
        if g and n.isdigit():
            out.append((g, int(n)))
    return out


def _loc_text(locs: Iterable[tuple[str, int]]) -> str:
    return " ".join(f"{g}:{n}" for g, n in locs)


def _optional(name: str) -> Any:
    """The module ``name``, or None when this build does not have it (a bug inside it
    still raises)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


class NewsBase:
    """The state of a News and the lookups the other parts build on."""

    def __init__(self, store: Any, state: NewsState, settings: NewsSettings, ctx: Any = None) -> None:
        self.store = store
        self.ctx = ctx  # the server's context (None in the CLI): lists and the feed need it
        self.state = state
        self.settings = settings
        self._groups: dict[str, GroupInfo] = {}
        self._groups_at = -1e9
        self._account: int | None = None
        #: mailbox id -> (articles change number, monotonic time, its index): see _index.
        self._indexes: dict[int, tuple[int, float, Any]] = {}
        #: (group, number) -> what ARTICLE learnt from the article's header: see
        #: NewsReading.article. At most SERVED_MAX entries (emptied when full).
        self._served: dict[tuple[str, int], Served] = {}
        #: The store's read that never waits (page cache only; SQLite store), or None.
        self._read_now: Callable[[MessageInfo], bytes | None] | None = getattr(store, "read_message_now", None)
        #: Called after a post is committed, besides the bound lists (tests, extensions).
        self.post_hooks: list[PostHook] = []
        self._expirer: asyncio.Task[None] | None = None

    async def _all_groups(self, fresh: bool = False) -> dict[str, GroupInfo]:
        now = time.monotonic()
        if fresh or now - self._groups_at > GROUPS_TTL:
            rows = await self.state.query(f"SELECT {_GROUP_COLS} FROM groups ORDER BY name")
            self._groups = {r[0]: GroupInfo(r[0], r[1], r[2], float(r[3]), r[4], r[5], r[6], r[7], int(r[8]))
                            for r in rows}
            self._groups_at = now
        return self._groups

    async def list_groups(self) -> list[GroupInfo]:
        return list((await self._all_groups(fresh=True)).values())

    async def get_group(self, name: str) -> GroupInfo | None:
        return (await self._all_groups(fresh=True)).get(name)

    async def _account_id(self, create: bool = False) -> int | None:
        if self._account is None:
            self._account = await news_account_id(self.store, create=create)
        return self._account

    def _readable(self, info: GroupInfo, user: str | None) -> bool:
        # "accounts" needs a login even when [nntp] anonymous_read lets anonymous readers
        # in (that setting is the protocol's gate): they see the groups open to "anyone".
        return permits(info.read, user)

    async def _index(self, group: str) -> Any:
        """The group's message index. Its articles change only through this layer (post,
        cancel, expiry, group removal), which bumps a change number shared by every process
        (state.articles_changed) after each such commit and before acknowledging it; while
        that number is the one read before the last index was taken (and for at most
        ``INDEX_MAX_AGE`` seconds, against a process killed before its bump), the index is
        reused: no store query per ARTICLE/OVER (bench/nntp.py). On PostgreSQL there is
        no shared number: the store is asked every time."""
        info = (await self._all_groups()).get(group)
        if info is None:
            return None
        change = self.state.articles_changed()
        now = time.monotonic()
        if change is not None:
            hit = self._indexes.get(info.mailbox_id)
            if hit is not None and hit[0] == change and now - hit[1] < INDEX_MAX_AGE:
                return hit[2]
        try:
            idx = await self.store.message_index(info.mailbox_id)
        except MailboxNotFound:  # deleted meanwhile
            return None
        if change is not None:
            self._indexes[info.mailbox_id] = (change, now, idx)
        return idx

    def _index_kept(self, group: str) -> Any:
        """The group's index when the one kept by :meth:`_index` is still good, found without an
        await or a query (ARTICLE's common case: a coroutine call per command is measurable at
        bench/nntp.py's rates); None when :meth:`_index` must decide."""
        now = time.monotonic()
        if now - self._groups_at > GROUPS_TTL:
            return None
        info = self._groups.get(group)
        hit = self._indexes.get(info.mailbox_id) if info is not None else None
        if hit is None or hit[0] != self.state.articles_changed() or now - hit[1] >= INDEX_MAX_AGE:
            return None
        return hit[2]

    async def _msgs(self, group: str, lo: int, hi: int) -> list[MessageInfo]:
        idx = await self._index(group)
        if idx is None:
            return []
        uids = idx.uids
        a = bisect.bisect_left(uids, lo)
        b = bisect.bisect_right(uids, hi)
        return list(idx.messages(uids[a:b]))

    async def _history_locations(self, mids: Sequence[str], *, settled: bool = False) -> dict[str, str]:
        """Message-ID -> its history locations text (with ``settled``: of ``ok`` rows only)."""
        found: dict[str, str] = {}
        uniq = sorted({m for m in mids if m})
        only_ok = " AND state = 'ok'" if settled else ""
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            rows = await self.state.query(
                f"SELECT message_id, locations FROM history WHERE message_id IN ({','.join('?' * len(chunk))})"
                + only_ok, *chunk)
            found.update((r[0], r[1]) for r in rows)
        return found

    async def _locate(self, message_id: str) -> tuple[str, list[tuple[str, int]]] | None:
        rows = await self.state.query("SELECT state, locations FROM history WHERE message_id = ?", message_id)
        if not rows or rows[0][0] != "ok":
            return None
        return rows[0][1], _locations(rows[0][1])
