"""Group administration (``postroom group add|set|del|list``): a group is a mailbox of the
reserved account plus its row in the groups table.
"""

from __future__ import annotations

import time

from ..errors import MailboxNotFound
from .base import MAILBOX_PREFIX
from .records import (
    ACCOUNTS,
    POSTING_STATUSES,
    GroupExists,
    GroupInfo,
    GroupNotFound,
    group_name_problem,
    parse_permission,
)
from .removal import NewsRemoval


class GroupAdmin(NewsRemoval):
    """Adding, changing and removing groups."""

    async def add_group(self, name: str, *, posting: str = "y", description: str = "",
                        read: str = ACCOUNTS, post: str = ACCOUNTS, retention: int | None = None,
                        list_address: str | None = None) -> GroupInfo:
        """Create a group (its mailbox and its row). GroupExists, GroupError (bad values)."""
        from ..errors import MailboxExists
        from .records import GroupError

        problem = group_name_problem(name)
        if problem:
            raise GroupError(problem)
        posting, read, post, retention = _check_settings(posting, read, post, retention)
        if name in await self._all_groups(fresh=True):
            raise GroupExists(name)
        aid = await self._account_id(create=True)
        assert aid is not None
        mbox_name = MAILBOX_PREFIX + name
        try:
            mb = await self.store.create_mailbox(aid, mbox_name)
        except MailboxExists:  # left by a group deleted half-way, or a race: reuse it
            mb = await self.store.get_mailbox(aid, mbox_name)
            assert mb is not None
        info = GroupInfo(name, posting, description, time.time(), retention, list_address, read, post, mb.id)
        counts = await self.state.execute([(
            ("INSERT INTO groups(name, mailbox_id, posting, description, created, retention, list_address, "
            "read_perm, post_perm) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"),
            (name, mb.id, posting, description, info.created, retention, list_address, read, post))])
        if counts[0] == 0:
            raise GroupExists(name)
        self._groups_at = -1e9
        return info

    async def set_group(self, name: str, *, posting: str | None = None, description: str | None = None,
                        read: str | None = None, post: str | None = None, retention: int | None = None,
                        clear_retention: bool = False, list_address: str | None = None,
                        clear_list: bool = False) -> GroupInfo:
        """Change some settings of a group; GroupNotFound."""
        cur = await self.get_group(name)
        if cur is None:
            raise GroupNotFound(name)
        p, r, w, ret = _check_settings(posting or cur.posting, read or cur.read, post or cur.post,
                                       retention if retention is not None else cur.retention)
        if clear_retention:
            ret = None
        lst = None if clear_list else (list_address if list_address is not None else cur.list_address)
        desc = description if description is not None else cur.description
        await self.state.execute([(
            ("UPDATE groups SET posting = ?, description = ?, read_perm = ?, post_perm = ?, retention = ?, "
            "list_address = ? WHERE name = ?"), (p, desc, r, w, ret, lst, name))])
        self._groups_at = -1e9
        got = await self.get_group(name)
        assert got is not None
        return got

    async def delete_group(self, name: str) -> None:
        """Remove the group with its articles; their history entries become ``gone``
        (kept ``history_days``) so a peer re-offering them is refused. GroupNotFound."""
        info = await self.get_group(name)
        if info is None:
            raise GroupNotFound(name)
        # The row goes first: from then on nothing is posted to the group; then the mailbox.
        await self.state.execute([("DELETE FROM groups WHERE name = ?", (name,))])
        self._groups_at = -1e9
        aid = await self._account_id()
        mids = await self._message_ids_of(info, None)
        await self.state.execute([("DELETE FROM overview WHERE mailbox_id = ?", (info.mailbox_id,))])
        if aid is not None:
            try:
                await self.store.delete_mailbox(aid, MAILBOX_PREFIX + name)
            except MailboxNotFound:
                pass
            finally:
                self.state.bump_articles()
        await self._forget_locations(name, [(mid, n) for n, mid in mids], time.time())


def _check_settings(posting: str, read: str, post: str, retention: int | None) -> tuple[str, str, str, int | None]:
    from .records import GroupError

    if posting not in POSTING_STATUSES:
        raise GroupError(f"posting status must be y, n or m, not {posting!r}")
    try:
        read = parse_permission(read)
        post = parse_permission(post)
    except ValueError as exc:
        raise GroupError(str(exc)) from None
    if retention is not None and retention < 1:
        raise GroupError("retention is a number of days (1 or more)")
    return posting, read, post, retention
