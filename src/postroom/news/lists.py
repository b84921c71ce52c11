"""Mailing lists as groups: mail to a bound list address becomes an article, and a post to the group
goes to the list by mail.

A group bound to a list address (``postroom group set NAME --list ADDRESS``) is the list's archive
and its newsgroup face, as Gmane was for public lists:

* **list → group** (:func:`gate_mail`, called by SMTP delivery before anything is stored): a message
  delivered to the list address is also posted to every group bound to it, with ``Newsgroups`` set to
  those groups, the mail's ``Message-ID`` kept (one is made when it has none), ``Path:
  mail!not-for-mail`` (the article came from the mail side, RFC 5537 §3.2.1's "not-for-mail" tail; the
  news layer prepends our path host) and a ``Subject``/``Date``/``From`` filled in when missing, since
  RFC 5536 requires them and a list still delivers mail that lacks them. It posts as the peer
  :data:`MAIL_PEER`, so the news layer does not mail it back to the list.
* **group → list** (:func:`post_to_list`, called by ``News.post`` after a local POST is committed):
  the article goes by mail to the list address through the same delivery path as SMTP mail (alias
  expansion, the members' Sieve scripts, the outbound queue for remote members, DKIM signing), from
  the poster: the envelope sender is the authenticated poster, else the article's ``From`` address.

No loops: a post mailed to the list comes back to :func:`gate_mail` (in this process, or from a remote
list server that sends it back) with a Message-ID the news history already holds, so the news layer
refuses it as a duplicate and nothing is posted twice. In this process the delivery is also marked
(a context variable), so the gate does not even try.

Delivery order and retries: the gate runs before the members' copies are stored, inside SMTP's
transaction: if the news store fails, the SMTP client gets 451 and retries, and nobody has a copy
yet; if the members' delivery fails after the article was posted, the retry finds the Message-ID in
the history and only the members' copies are delivered.
"""

from __future__ import annotations

import contextvars
import secrets
import time
from email.utils import formatdate
from typing import TYPE_CHECKING

from .. import log
from ..mime.addresses import (
    MISSING_DOMAIN,
    MISSING_MAILBOX,
    SYNTAX_ERROR,
    parse_address_list,
)
from ..mime.headers import split_header

if TYPE_CHECKING:
    from ..context import ServerContext

logger = log.get("news")

#: The ``peer`` name the gateway posts with: the news layer treats the article as one from a peer
#: (no Message-ID/Date added, no list hook) but still feeds it to the configured NNTP peers.
MAIL_PEER = "mail"

#: Fields a mailed article does not keep: they describe its place on the news side
#: (``Xref`` carries this server's article numbers; ``Path`` the news hops).
_NEWS_ONLY = frozenset({b"path", b"xref"})
#: Fields the gateway replaces on an article made from mail.
_REPLACED = frozenset({b"newsgroups", b"path", b"xref", b"followup-to"})

_NOT_THERE = frozenset({MISSING_DOMAIN, MISSING_MAILBOX, SYNTAX_ERROR})
#: Set while this process mails a post to a list: the lists whose gate must not post it back.
_mailing_to: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("mailing_to", default=frozenset())


def _fields(raw: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """``([(lower name, value, whole field with its CRLF)], body)`` of ``raw`` (CRLF lines); the
    body starts after the empty line that ends the header."""
    fields, body_start = split_header(raw, 0, len(raw))
    out = [(f.name.lower(), f.value, raw[f.start:f.end]) for f in fields]
    return out, raw[body_start:]


def _value(fields: list[tuple[bytes, bytes, bytes]], name: bytes) -> bytes | None:
    for n, v, _ in fields:
        if n == name:
            return v
    return None


def article_from_mail(raw: bytes, groups: list[str], *, sender: str, hostname: str, queue_id: str) -> bytes:
    """The article for ``groups`` made from the mail ``raw`` (CRLF line ends, no trace fields of ours)."""
    fields, body = _fields(raw)
    kept = [whole for n, _, whole in fields if n not in _REPLACED]
    extra = [f"Newsgroups: {','.join(groups)}\r\n".encode(), b"Path: mail!not-for-mail\r\n"]
    if _value(fields, b"message-id") is None:
        extra.append(f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{hostname}>\r\n".encode())
    if _value(fields, b"date") is None:
        extra.append(f"Date: {formatdate(time.time(), usegmt=True)}\r\n".encode())
    if _value(fields, b"subject") is None:
        extra.append(b"Subject: (no subject)\r\n")
    if _value(fields, b"from") is None:
        extra.append(f"From: <{sender or 'MAILER-DAEMON@' + hostname}>\r\n".encode())
    # The empty line ending the header is not in ``body``; a message that was all header gets one.
    return b"".join(extra) + b"".join(kept) + b"\r\n" + body


def mail_from_article(raw: bytes, address: str) -> bytes:
    """The mail for the list ``address`` made from the stored article ``raw``: news-only fields
    dropped, a ``To`` naming the list added when the article has none."""
    fields, body = _fields(raw)
    head = b"".join(whole for n, _, whole in fields if n not in _NEWS_ONLY)
    if _value(fields, b"to") is None:
        head += f"To: <{address}>\r\n".encode()
    return head + b"\r\n" + body


def envelope_sender(raw: bytes, user: str | None) -> str:
    """Who a post mailed to the list is from: the authenticated poster, else the article's From."""
    if user:
        return user
    fields, _ = _fields(raw)
    value = _value(fields, b"from")
    if value is not None:
        for a in parse_address_list(value):
            # The IMAP-style parser names what is missing (ENVELOPE's MISSING_DOMAIN and the like).
            if a.mailbox and a.host and a.mailbox not in _NOT_THERE and a.host not in _NOT_THERE:
                return f"{a.mailbox}@{a.host}"
    return ""


async def gate_mail(ctx: ServerContext, addresses: list[str], raw: bytes, *, sender: str,
                    queue_id: str) -> list[str]:
    """Post the mail ``raw`` (delivered to ``addresses``) to the groups bound to any of them.

    Returns the groups it was posted to (for the delivery log line). A refusal by the news layer (a
    duplicate: the loop stopper; a read-only group; a too-large article) is logged, not raised: the
    list's members still get the mail. A store failure is raised, so SMTP answers 451 before any
    member's copy is stored.
    """
    from .service import News, NewsSettings, PostRefused

    skip = _mailing_to.get()
    wanted = [a.lower() for a in addresses if a.lower() not in skip]
    if not wanted:
        return []
    # A server process keeps one News (its bound-list lookup is an in-memory table refreshed every
    # few seconds); `postroom sendmail` opens one for this message and closes it.
    server = "runtime" in ctx.state
    news = await News.for_context(ctx) if server else await News.for_store(
        ctx.store, NewsSettings.from_config(ctx.config), ctx=ctx)
    try:
        groups: dict[str, None] = {}
        for address in wanted:
            for name in await news.groups_for_list(address):
                groups[name] = None
        if not groups:
            return []
        article = article_from_mail(raw, list(groups), sender=sender, hostname=ctx.config.hostname,
                                    queue_id=queue_id)
        try:
            posted = await news.post(article, user=None, peer=MAIL_PEER)
        except PostRefused as exc:
            # A duplicate here is the list's copy of a post coming back: the loop stops here.
            logger.info("id=%s list mail not posted to %s: %d %s", queue_id, ",".join(groups), exc.code, exc.text)
            return []
        return [g for g, _ in posted.locations]
    finally:
        if not server:
            await news.close()


async def post_to_list(ctx: ServerContext, address: str, raw: bytes, *, user: str | None) -> None:
    """Mail the article ``raw`` just posted to a group bound to the list ``address``.

    The article is already accepted and stored, so a failure here is logged, never raised: the
    poster has had 240 and the article is in the group either way.
    """
    from ..smtp import delivery, recipients
    from ..smtp import settings as smtp_settings
    from ..smtp.address import AddressError, parse_path
    from ..smtp.transaction import Peer, Rcpt, Resolved, Transaction

    qid = log.new_id()
    address = address.lower()
    sender = envelope_sender(raw, user)
    body = mail_from_article(raw, address)
    try:
        try:
            sender_path = parse_path(f"<{sender}>", allow_null=True)[0]
        except AddressError:
            sender, sender_path = "", parse_path("<>", allow_null=True)[0]
        path, _ = parse_path(f"<{address}>")
        if await ctx.is_local_domain(path.domain):
            resolved = await recipients.resolve(ctx.store, ctx.is_local_domain, path.key)
            if resolved is None:
                logger.warning("id=%s list address <%s> leads nowhere: post not mailed", qid, address)
                return
        else:
            resolved = Resolved(remote=(path.address,))
        txn = Transaction(sender=sender_path, smtputf8=not (sender + address).isascii(),
                          body_8bit=not body.isascii(), rcpts=[Rcpt(path, resolved)])
        settings = ctx.state.get("smtp")
        if not isinstance(settings, smtp_settings.SmtpSettings):
            settings = smtp_settings.parse(ctx.config, [])
        peer = Peer("", "", True, None, user, qid, True, listener="nntp")
        token = _mailing_to.set(_mailing_to.get() | {address})
        try:
            reply = await delivery.deliver(ctx, settings, peer, txn, body)
        finally:
            _mailing_to.reset(token)
        if reply.code == 250:
            logger.info("id=%s post from <%s> mailed to list <%s>: %s", qid, sender, address, reply)
        else:
            logger.warning("id=%s post from <%s> not mailed to list <%s>: %s", qid, sender, address, reply)
    except Exception:
        logger.exception("id=%s post from <%s> could not be mailed to list <%s>", qid, sender, address)
