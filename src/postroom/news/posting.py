"""Posting: checks, durable storage in every group, history, the feed and the bound lists.

Durability of a post. The article is stored with one ``Store.deliver`` to every group's
mailbox: fsynced and committed in all of them or in none. The history row cannot share
that transaction (the store's and the news tables' transactions are separate), so a post
is three steps: (1) reserve the Message-ID (``pending`` row, with each group's UIDNEXT
before delivery: the *marks*), committed; (2) deliver; (3) turn the row ``ok`` with its
locations and enqueue the feed rows, one transaction. ``post`` returns after (3). A
crash after (1) leaves a pending row that points at nothing; :meth:`News.repair` (run at
every :meth:`News.expire`, for pending rows older than ``PENDING_GRACE``) looks at the
messages at or above the marks for that Message-ID: found, it completes the row as (3)
would; not found, the post never happened (it was never acknowledged) and the row goes.
A pending row also keeps a second copy of the same article out while the first is
being stored (a peer offering it twice at once gets "try later").
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..storage.models import DeliveryTarget
from .article import (
    Prepared,
    header_fields,
    overview_fields,
    prepare,
    unfold,
    valid_message_id,
)
from .base import MAILBOX_PREFIX, _loc_text, _optional
from .groups_admin import GroupAdmin
from .reading import _OV_INSERT
from .records import ACCOUNTS, ANYONE, GroupInfo, Posted, PostRefused, permits
from .state import Stmt

log = logging.getLogger("postroom.news")


class NewsPosting(GroupAdmin):
    """POST, IHAVE/TAKETHIS and the list gateway all come through :meth:`post`."""

    async def post(self, raw: bytes, *, user: str | None, peer: str | None = None) -> Posted:
        """Check, store durably in every group, record history, enqueue for the feed.
        See the module docstring for the steps and PostRefused for the codes."""
        code = 441 if peer is None else 437
        now = time.time()
        if len(raw) > self.settings.max_article_size:
            raise PostRefused(code, f"Article too large (at most {self.settings.max_article_size} octets)")
        prep = prepare(raw, local=peer is None, path_host=self.settings.path_host,
                       max_crosspost=self.settings.max_crosspost, now=now, code=code)
        if peer is not None and self._path_has_us(raw):
            await self._reject(prep.message_id, now)
            raise PostRefused(437, "Article already passed through this site (Path)")
        if await self.seen(prep.message_id):
            raise PostRefused(441 if peer is None else 437, "Duplicate article (Message-ID already seen)")
        if prep.control is not None:
            return await self._control(prep, user=user, peer=peer, now=now)
        groups = await self._all_groups(fresh=True)
        targets: list[GroupInfo] = []
        for name in prep.newsgroups:
            info = groups.get(name)
            if info is None:
                if peer is None:
                    raise PostRefused(441, f"No such newsgroup: {name}")
                continue  # RFC 5537 §3.6: a relaying agent files it in the groups it carries
            self._check_post(info, prep, user, peer)
            targets.append(info)
        if not targets:
            await self._reject(prep.message_id, now)
            raise PostRefused(437, "Unwanted newsgroups: none of them is carried here")
        aid = await self._account_id()
        assert aid is not None  # groups exist, so the account does
        marks = []
        for info in targets:
            mb = await self.store.get_mailbox_by_id(info.mailbox_id)
            if mb is None:
                raise PostRefused(436 if peer else 441, f"Newsgroup {info.name} is being removed")
            marks.append(f"{info.name}:{mb.uidnext}")
        # (1) reserve the Message-ID
        got = await self.state.execute([(
            ("INSERT INTO history(message_id, state, marks, poster, arrived) VALUES (?, 'pending', ?, ?, ?) "
            "ON CONFLICT DO NOTHING"), (prep.message_id, " ".join(marks), prep.poster, now))])
        if got[0] == 0:
            raise PostRefused(441 if peer is None else 436, "Duplicate article (being stored now)")
        # (2) store it in every group at once
        try:
            delivered = await self.store.deliver(
                prep.raw, [DeliveryTarget(aid, MAILBOX_PREFIX + i.name) for i in targets], crlf=True)
        except BaseException:
            await self._drop_pending(prep.message_id)
            raise
        by_box = {i.mailbox_id: i.name for i in targets}
        locs = [(by_box[d.mailbox_id], d.uid) for d in delivered if d.mailbox_id in by_box]
        strays = [d for d in delivered if d.mailbox_id not in by_box]
        if strays:
            # A group deleted while this post was being stored: the store filed that copy in the
            # account's INBOX (it never drops a delivery). Take it out again.
            await self._remove_strays(strays)
        if not locs:
            await self._drop_pending(prep.message_id)
            raise PostRefused(441 if peer is None else 436, "The newsgroups were removed meanwhile")
        # (3) complete history and enqueue for the peers, in one transaction
        feed = self._feed_module()
        xref = _loc_text(locs)
        stmts: list[Stmt] = [(
            "UPDATE history SET state = 'ok', locations = ?, marks = '' WHERE message_id = ?",
            (xref, prep.message_id))]
        # The overview rows, computed once here (as INN writes its overview at arrival): OVER
        # reads them and never the bytes.
        subject, from_, date, mid, refs, lines = overview_fields(prep.raw)
        box_of = {i.name: i.mailbox_id for i in targets}
        stmts += [(_OV_INSERT, (box_of[g], n, subject, from_, date, mid, refs, len(prep.raw), lines, xref))
                  for g, n in locs]
        if feed is not None and self.ctx is not None:
            path = ""
            for n, v in header_fields(prep.raw)[0]:
                if n == "path":
                    path = unfold(v)
                    break
            stmts += feed.queue_statements(self.ctx.config, message_id=prep.message_id,
                                           newsgroups=tuple(g for g, _n in locs), path=path, now=now)
        await self.state.execute(stmts)
        self.state.bump_articles()  # before the acknowledgement: every reader sees it from now on
        posted = Posted(prep.message_id, locs)
        if feed is not None and len(stmts) > 1:
            feed.wake()
        if peer is None and self.ctx is not None:
            await self._send_to_lists(targets, prep.raw, user)
        for hook in self.post_hooks:
            try:
                await hook(posted, prep.raw, user if peer is None else None)
            except Exception:
                log.exception("news: post hook failed for %s", prep.message_id)
        return posted

    def _path_has_us(self, raw: bytes) -> bool:
        for n, v in header_fields(raw)[0]:
            if n == "path":
                return self.settings.path_host in unfold(v).replace(" ", "").split("!")
        return False

    def _check_post(self, info: GroupInfo, prep: Prepared, user: str | None, peer: str | None) -> None:
        if peer is not None:
            # A relaying agent takes what its peers send for groups it carries (RFC 5537
            # §3.6), whatever the local posting status; a moderated group needs Approved.
            if info.posting == "m" and not prep.approved:
                raise PostRefused(437, f"Unapproved article for moderated group {info.name}")
            return
        if info.posting == "n":
            raise PostRefused(441, f"Posting to {info.name} is not allowed")
        admin = user is not None and user.lower() in self.settings.admins
        if not admin and not permits(info.post, user):
            raise PostRefused(441, f"You may not post to {info.name}")
        if info.posting == "m":
            # Moderated: only an approver's post with an Approved header goes in. Approvers
            # are the [nntp] admins and, when the group names its posters, those posters.
            approver = admin or info.post not in (ANYONE, ACCOUNTS) and permits(info.post, user)
            if not prep.approved or not approver:
                raise PostRefused(441, f"{info.name} is moderated: posts need an Approved header from a moderator")

    async def _remove_strays(self, strays: list[Any]) -> None:
        from ..storage.models import FlagOp

        for d in strays:
            await self.store.store_flags(d.mailbox_id, [d.uid], FlagOp.ADD, frozenset({"\\Deleted"}))
            await self.store.expunge(d.mailbox_id, [d.uid])

    @staticmethod
    def _feed_module() -> Any:
        """``postroom.nntp.feed`` (peering's outgoing feed), or None in a build without it."""
        return _optional("postroom.nntp.feed")

    async def _send_to_lists(self, targets: list[GroupInfo], raw: bytes, user: str | None) -> None:
        """A local post to a group bound to a list goes to the list's members by mail
        (postroom.news.lists), once per list; a mail failure never undoes the post."""
        addresses = sorted({i.list_address.lower() for i in targets if i.list_address})
        if not addresses:
            return
        lists = _optional("postroom.news.lists")
        if lists is None:
            return
        for address in addresses:
            try:
                await lists.post_to_list(self.ctx, address, raw, user=user)
            except Exception:
                log.exception("news: sending a post to list %s failed", address)

    async def _control(self, prep: Prepared, *, user: str | None, peer: str | None, now: float) -> Posted:
        verb, _, arg = prep.control.strip().partition(" ") if prep.control else ("", "", "")
        code = 441 if peer is None else 437
        if verb.lower() != "cancel":
            await self._reject(prep.message_id, now)
            raise PostRefused(code, f"Control messages other than cancel are not accepted ({verb[:40]})")
        target = arg.strip()
        if not valid_message_id(target):
            raise PostRefused(code, "Malformed cancel: Control: cancel <message-id>")
        await self.cancel(target, by=prep.poster if peer is not None else user, poster=prep.poster,
                          code=code, now=now)
        # The cancel message itself is remembered (not stored), so it is not taken twice.
        await self._reject(prep.message_id, now)
        return Posted(prep.message_id, [])
