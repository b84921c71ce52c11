"""The news layer's one API (:class:`News`): what the NNTP engine, peering, lists-as-groups
and the ``postroom group`` command call. Never SQL, never sockets.

:class:`News` is a facade over parts kept in modules of their own, each built on the one
before: base.py (settings, groups table, the group index, history lookups), reading.py
(listings, overview, articles), removal.py (cancel, expiry, repair), groups_admin.py
(``postroom group``) and posting.py (the post path and its durability steps).

Where things are (docs/nntp.md, "Groups and articles in the store"):

- a group is the mailbox ``news/<name>`` of the reserved account (account.py); an article
  is a message in it and its number is the message's UID (stable, never reused);
- the groups table (state.py) holds the group's settings and its mailbox id;
- history maps a Message-ID to its ``group:number`` locations (state ``ok``), to nothing
  after expiry or cancel (``gone``, kept ``history_days``), or to a refusal (``rejected``);
  a post in flight is ``pending``;
- the overview table holds each stored copy's overview line, written with its history row.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from typing import Any

from .base import DAY, MAILBOX_PREFIX, NewsSettings
from .posting import NewsPosting
from .records import Article, GroupInfo, GroupStatus, Overview, Posted, PostRefused
from .state import state_for

__all__ = ["DAY", "MAILBOX_PREFIX", "Article", "GroupInfo", "GroupStatus", "News", "NewsSettings", "Overview",
           "PostRefused", "Posted", "parse_date_header"]

EXPIRE_EVERY = 3600.0  # seconds between expiry runs in a server (purge runs hourly too)
_by_context: dict[int, News] = {}  # News.for_context without the NNTP engine

log = logging.getLogger("postroom.news")


class News(NewsPosting):
    """One per worker process (or CLI run); see the module docstring."""

    @classmethod
    async def open(cls, ctx: Any, *, expire_every: float | None = EXPIRE_EVERY) -> News:
        """A server process's News, with the ``[nntp]`` settings, and its expiry task: run
        every ``expire_every`` seconds (None: not at all) while the News is open, the way
        the runtime runs purge (server.py). ``postroom.nntp.server`` keeps one per process."""
        nntp = None
        try:
            from ..nntp.server import settings_for
        except ImportError:  # a build without the NNTP engine: its defaults
            pass
        else:
            nntp = settings_for(ctx)
        news = await cls.for_store(ctx.store, NewsSettings.from_config(ctx.config, nntp), ctx=ctx)
        if expire_every is not None:
            news._expirer = asyncio.create_task(news._expire_periodically(expire_every),
                                                name="postroom-news-expire")
        return news

    @classmethod
    async def for_context(cls, ctx: Any) -> News:
        """The one News of this process for ``ctx`` (opened on first use)."""
        try:
            from ..nntp.server import news_for
        except ImportError:
            pass
        else:
            return await news_for(ctx)
        news = _by_context.get(id(ctx))
        if news is None:
            news = _by_context[id(ctx)] = await cls.open(ctx)
        return news

    @classmethod
    async def for_store(cls, store: Any, settings: NewsSettings, *, ctx: Any = None) -> News:
        """A News on ``store`` without a server (the CLI, tests): no expiry task."""
        state = state_for(store)
        await state.open()
        return cls(store, state, settings, ctx)

    async def close(self) -> None:
        if self._expirer is not None:
            self._expirer.cancel()
            self._expirer = None
        await self.state.close()

    async def _expire_periodically(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                n = await self.expire()
                if n:
                    log.info("news expire: removed %d article(s)", n)
            except Exception:
                log.exception("news expire failed; will try again")


def parse_date_header(value: str) -> float | None:
    """A Date header as unix seconds, or None (for callers formatting NEWNEWS answers)."""
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
