"""Removing articles: cancel (RFC 5537 §5.3), expiry by each group's retention, forgetting
history entries past ``history_days``, and the repair of posts a crash interrupted.
"""

from __future__ import annotations

import bisect
import time

from ..errors import MailboxNotFound
from .base import DAY, _loc_text, _locations
from .reading import NewsReading
from .records import GroupInfo, PostRefused
from .state import Stmt

PENDING_GRACE = 300.0  # seconds a pending history row is left to its post before repair looks


class NewsRemoval(NewsReading):
    """Cancel, expiry and repair; every removal bumps the shared change number."""

    async def _drop_pending(self, message_id: str) -> None:
        await self.state.execute([("DELETE FROM history WHERE message_id = ? AND state = 'pending'", (message_id,))])

    async def _reject(self, message_id: str, now: float) -> None:
        """Remember a refused Message-ID for ``history_days`` (a peer offers it no more)."""
        await self.state.execute([(
            ("INSERT INTO history(message_id, state, arrived, expires) VALUES (?, 'rejected', ?, ?) "
            "ON CONFLICT DO NOTHING"), (message_id, now, now + self.settings.history_days * DAY))])

    async def cancel(self, message_id: str, *, by: str | None, poster: str | None = None,
                     code: int = 441, now: float | None = None) -> list[tuple[str, int]]:
        """Remove the article from all its groups (RFC 5537 §5.3), when ``by`` (the
        authenticated user, or for a peer's cancel its From) is the article's poster (its
        From address recorded at arrival) or an admin, and ``poster`` (the cancel's own From)
        is too. Returns the locations removed; PostRefused(code) when not allowed."""
        now = time.time() if now is None else now
        rows = await self.state.query("SELECT state, locations, poster FROM history WHERE message_id = ?",
                                      message_id)
        if not rows or rows[0][0] != "ok":
            # Not here (yet): remember the ID so the article is refused if it comes later.
            if not rows:
                await self._reject(message_id, now)
            return []
        _state, locs_text, author = rows[0]
        who = (by or "").lower()
        admin = who in self.settings.admins
        if not admin and (not who or who != (author or "").lower() or
                          (poster is not None and poster.lower() != who)):
            raise PostRefused(code, "Cancel refused: only the article's poster or an admin may cancel it")
        locs = _locations(locs_text)
        await self._expunge_locations(locs)
        await self._forget_locations_all(message_id, now)
        return locs

    async def _expunge_locations(self, locs: list[tuple[str, int]]) -> None:
        from ..storage.models import FlagOp

        groups = await self._all_groups()
        by_group: dict[str, list[int]] = {}
        for g, n in locs:
            by_group.setdefault(g, []).append(n)
        for g, nums in by_group.items():
            info = groups.get(g)
            if info is None:
                continue
            try:
                await self.store.store_flags(info.mailbox_id, nums, FlagOp.ADD, frozenset({"\\Deleted"}))
                await self.store.expunge(info.mailbox_id, nums)
            except MailboxNotFound:
                continue
            finally:
                self.state.bump_articles()
            for i in range(0, len(nums), 500):
                chunk = nums[i:i + 500]
                await self.state.execute([(
                    f"DELETE FROM overview WHERE mailbox_id = ? AND number IN ({','.join('?' * len(chunk))})",
                    (info.mailbox_id, *chunk))])

    async def _forget_locations_all(self, message_id: str, now: float) -> None:
        await self.state.execute([(
            "UPDATE history SET state = 'gone', locations = '', expires = ? WHERE message_id = ?",
            (now + self.settings.history_days * DAY, message_id))])

    async def _forget_locations(self, group: str, items: list[tuple[str, int]], now: float) -> None:
        """Drop ``group:number`` from each Message-ID's locations; an entry left with none
        becomes ``gone`` until ``history_days`` from now."""
        if not items:
            return
        locs = await self._history_locations([mid for mid, _n in items])
        groups = await self._all_groups(fresh=True)
        stmts: list[Stmt] = []
        for mid, n in items:
            cur = locs.get(mid)
            if cur is None:
                continue
            left = [(g, k) for g, k in _locations(cur) if not (g == group and k == n)]
            if left:
                stmts.append(("UPDATE history SET locations = ? WHERE message_id = ?", (_loc_text(left), mid)))
                # The copies left keep an Xref that names only where the article still is.
                stmts += [("UPDATE overview SET xref = ? WHERE mailbox_id = ? AND number = ?",
                           (_loc_text(left), groups[g].mailbox_id, k)) for g, k in left if g in groups]
            else:
                stmts.append((("UPDATE history SET state = 'gone', locations = '', expires = ? "
                              "WHERE message_id = ?"), (now + self.settings.history_days * DAY, mid)))
            locs[mid] = _loc_text(left)
        for i in range(0, len(stmts), 1000):
            await self.state.execute(stmts[i:i + 1000])

    async def _message_ids_of(self, info: GroupInfo, before: float | None) -> list[tuple[int, str]]:
        """(number, Message-ID) of the group's articles (those that arrived before ``before``)."""
        try:
            idx = await self.store.message_index(info.mailbox_id)
        except MailboxNotFound:
            return []
        msgs = [m for m in idx.messages(idx.uids)
                if before is None or m.internaldate.timestamp() < before]
        return [(o.number, o.message_id) for o in await self._overview_of(info, msgs)]

    async def expire(self, now: float | None = None) -> int:
        """Remove the articles older than their group's retention, forget history entries
        past their expiry, and repair posts interrupted by a crash. Returns how many
        articles were removed. Run by the server beside purge (and by tests)."""
        now = time.time() if now is None else now
        removed = 0
        for info in (await self._all_groups(fresh=True)).values():
            if info.retention is None:
                continue
            old = await self._message_ids_of(info, now - info.retention * DAY)
            if not old:
                continue
            nums = [n for n, _mid in old]
            await self._expunge_locations([(info.name, n) for n in nums])
            await self._forget_locations(info.name, [(mid, n) for n, mid in old if mid], now)
            removed += len(nums)
        await self.state.execute([(
            "DELETE FROM history WHERE expires IS NOT NULL AND expires < ? AND state <> 'ok'", (now,))])
        await self.repair(now)
        return removed

    async def repair(self, now: float | None = None, grace: float = PENDING_GRACE) -> int:
        """Settle pending history rows older than ``grace`` (a crash between a post's
        reservation and its completion): complete them when the article is in its groups,
        else delete them. Returns how many were settled."""
        now = time.time() if now is None else now
        rows = await self.state.query(
            "SELECT message_id, marks FROM history WHERE state = 'pending' AND arrived < ?", now - grace)
        groups = await self._all_groups(fresh=True)
        for mid, marks in rows:
            locs: list[tuple[str, int]] = []
            for g, start in _locations(marks):
                info = groups.get(g)
                if info is None:
                    continue
                for n, found in await self._message_ids_from(info, start):
                    if found == mid:
                        locs.append((g, n))
            if locs:
                await self.state.execute([(
                    ("UPDATE history SET state = 'ok', locations = ?, marks = '' WHERE message_id = ? "
                    "AND state = 'pending'"), (_loc_text(locs), mid))])
            else:
                await self._drop_pending(mid)
        return len(rows)

    async def _message_ids_from(self, info: GroupInfo, start: int) -> list[tuple[int, str]]:
        try:
            idx = await self.store.message_index(info.mailbox_id)
        except MailboxNotFound:
            return []
        uids = idx.uids
        msgs = idx.messages(uids[bisect.bisect_left(uids, start):])
        return [(o.number, o.message_id) for o in await self._overview_of(info, msgs)]
