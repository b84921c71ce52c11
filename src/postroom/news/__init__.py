"""The news layer of NNTP (issue #18): groups, articles and history on the Store.

Articles are messages in the mailboxes of one reserved internal account (one mailbox per
group, article number = UID); the news-only state (groups, history, the outgoing feed)
lives in tables of its own on both backends. The protocol engine (``postroom.nntp``),
peering and lists-as-groups call only :class:`postroom.news.service.News`.
docs/nntp.md, "Groups and articles in the store", says how it is built and why.
"""
