"""What happens to an accepted message: local delivery to the store, the rest to the queue.

:class:`StoreBackend` is the :class:`postroom.smtp.proto.Backend` the server uses;
:func:`deliver` is also what ``postroom sendmail`` calls. The 250 reply is sent only
after ``Store.deliver`` (fsync + commit) and ``OutboundQueue.enqueue`` have returned.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable

from .. import log, metrics
from ..abuse.guard import NO_GUARD, Content, Guard
from ..auth import kerberos
from ..auth.login import Accepted
from ..context import ServerContext
from ..errors import StoreUnavailable, is_storage_full
from ..news import lists
from ..outbound.api import Envelope, Recipient
from ..outbound.dsn import RecipientReport, build_dsn, wants_notice
from ..outbound.local import send_notice
from ..sieve import delivery as sieve_delivery
from ..storage.api import has_room
from ..wire import sasl
from . import mailauth, message, recipients, replies
from .address import Path
from .proto import AuthOutcome
from .replies import Reply, r
from .settings import SmtpSettings
from .transaction import Peer, Rcpt, Resolved, Transaction

logger = log.get("smtp")


async def deliver(ctx: ServerContext, settings: SmtpSettings, peer: Peer, txn: Transaction,
                  body: bytes, logger: logging.Logger = logger, guard: Guard = NO_GUARD) -> Reply:
    queue_id = log.new_id()
    hostname = ctx.config.hostname
    source = "submission" if peer.submission else ("smtp" if peer.ip else "local")  # for metrics
    if (peer.submission or not peer.ip) and settings.add_missing_headers:
        body = message.add_missing(body, hostname, queue_id)
    rcpt_names = [rc.path.address for rc in txn.rcpts]
    sender = txn.sender.address
    rcpt_log = ",".join(f"<{a}>" for a in rcpt_names)
    auth = await mailauth.inbound_for(ctx, peer, txn, body)
    if auth is not None:
        body = auth.message
        if auth.refusal is not None:
            logger.info("%s id=%s from=<%s> to=%s size=%d %s result=rejected (%s)", peer.session_id, queue_id,
                        sender, rcpt_log, len(body), auth.summary, auth.reason)
            metrics.message(source, "rejected" if auth.refusal.code >= 500 else "deferred", "mailauth")
            return auth.refusal
    content: Content | None = None
    if guard:
        # Scanners and milters (postroom.abuse) see the message as mail authentication left it.
        content = Content(body, queue_id=queue_id)
        refusal = await guard.data(peer, txn, content)
        if refusal is not None:
            logger.info("%s id=%s from=<%s> to=%s size=%d %s result=%s", peer.session_id, queue_id, sender,
                        rcpt_log, len(body), " ".join(content.notes),
                        "rejected" if refusal.code >= 500 else "deferred")
            metrics.message(source, "rejected" if refusal.code >= 500 else "deferred", "content")
            return refusal
        if content.discard:
            logger.info("%s id=%s from=<%s> to=%s size=%d %s result=discarded", peer.session_id, queue_id,
                        sender, rcpt_log, len(body), " ".join(content.notes))
            metrics.message(source, "accepted")
            return r(250, "2.0.0", f"Ok: queued as {queue_id}")
        body = content.final()
    local_ids: dict[int, str] = {}
    remote: dict[str, Recipient] = {}
    for rc in txn.rcpts:
        mailbox = auth.mailbox_for(rc.path.domain) if auth is not None else "INBOX"
        if mailbox == "INBOX" and content is not None and content.mailbox:
            mailbox = content.mailbox
        for aid in rc.resolved.local:
            if local_ids.get(aid, "INBOX") == "INBOX":  # quarantined for one address: quarantined
                local_ids[aid] = mailbox
        for addr in rc.resolved.remote:
            if addr not in remote:
                # DSN parameters belong to the address the client named (RFC 3461 §4)
                remote[addr] = Recipient(addr, rc.notify, rc.orcpt)
    trace = message.received(peer, hostname, queue_id, rcpt_names, txn.smtputf8)
    full = await _over_quota(ctx, local_ids, len(message.return_path(sender)) + len(trace) + len(body))
    if full:
        for aid in full:
            del local_ids[aid]
        if not local_ids and not remote:
            # Nobody can take it: refuse the whole message, the sender keeps it (RFC 3463 X.2.2).
            logger.info("%s id=%s from=<%s> to=%s size=%d result=rejected (mailbox full)",
                        peer.session_id, queue_id, sender, rcpt_log, len(body))
            metrics.message(source, "rejected", "mailbox-full")
            return replies.MAILBOX_FULL
    if remote and ctx.outbound is None:
        logger.warning("%s id=%s from=<%s> to=%s result=deferred (no outbound queue)",
                       peer.session_id, queue_id, sender, rcpt_log)
        metrics.message(source, "deferred", "no-queue")
        return r(451, "4.3.0", "Cannot relay now, try again later")
    outbound_id = None
    filtered = ""
    try:
        # Mail to a list bound to a newsgroup becomes an article too (news/lists.py): first, so
        # a news store failure (451, the client retries) leaves no member a copy yet.
        gated = await lists.gate_mail(ctx, [rc.path.address for rc in txn.rcpts if auth is None or
                                            auth.mailbox_for(rc.path.domain) == "INBOX"],
                                      body, sender=sender, queue_id=queue_id)
        if gated:
            filtered = f"groups={','.join(gated)}"
        if local_ids:
            head = message.return_path(sender) + trace
            raw = head + body
            # The DATA reader (and sendmail) normalised the body's line ends; the
            # header lines added here are CRLF-terminated. Each account's Sieve scripts
            # decide where its copies go (postroom.sieve.delivery); stored before the 250.
            sieved = await sieve_delivery.deliver_local(ctx, sieve_delivery.Incoming(
                raw=raw, newlines=_newlines(txn, head, body), sender=sender, queue_id=queue_id,
                session_id=peer.session_id, remote_ip=peer.ip,
                remote_host=peer.helo, auth=peer.login or "", body_8bit=txn.body_8bit,
                recipients=[sieve_delivery.LocalRecipient(aid, mb, next(
                    (rc.path.address for rc in txn.rcpts if aid in rc.resolved.local), ""))
                    for aid, mb in local_ids.items()],
                # RFC 5429 §2.1.1: a reject for the only recipient is the SMTP reply itself.
                refuse_single=len(txn.rcpts) == 1 and len(local_ids) == 1 and not remote,
                seal=lambda data, msg: mailauth.outgoing(ctx, peer, auth, data, msg)))
            if sieved.refusal is not None:
                logger.info("%s id=%s from=<%s> to=%s size=%d result=rejected (sieve)", peer.session_id,
                            queue_id, sender, rcpt_log, len(body))
                metrics.message(source, "rejected", "sieve")
                return r(550, "5.7.1", sieved.refusal)
            filtered = " ".join(x for x in (filtered, sieved.summary) if x)
        if remote:
            assert ctx.outbound is not None
            # Our users' mail is DKIM-signed; mail we only pass on is ARC-sealed (mailauth.signing).
            out = await mailauth.outgoing(ctx, peer, auth, trace + body, body)
            env = Envelope(sender=sender, recipients=tuple(remote.values()), ret=txn.ret,
                           envid=txn.envid, smtputf8=txn.smtputf8, body_8bit=txn.body_8bit,
                           received_from=f"{peer.helo} [{peer.ip}]" if peer.ip else "local")
            outbound_id = await ctx.outbound.enqueue(env, out)
    except Exception as exc:  # the client must get a retryable reply, never the exception text
        if is_storage_full(exc):  # RFC 3463 X.3.1, what Postfix says when its disk is full
            logger.error("%s id=%s from=<%s> to=%s result=deferred (disk full: %s)", peer.session_id,
                         queue_id, sender, rcpt_log, exc.__cause__ or exc)
            metrics.message(source, "deferred", "disk-full")
            return replies.NO_ROOM
        if isinstance(exc, StoreUnavailable):  # one line: an outage would log a traceback per message
            logger.warning("%s id=%s from=<%s> to=%s result=deferred (store unavailable: %s)",
                           peer.session_id, queue_id, sender, rcpt_log, exc)
            metrics.message(source, "deferred", "unavailable")
            return replies.STORE_UNAVAILABLE
        logger.exception("%s id=%s from=<%s> to=%s result=failed", peer.session_id, queue_id,
                         sender, rcpt_log)
        metrics.message(source, "deferred", "error")
        return r(451, "4.3.0", "Local error in processing, try again later")
    # Mail for remote recipients is in the outbound queue, whose lines ("queued", "delivered
    # to", "deferred", "bounced") carry its own id: given here so one grep follows the message.
    result = "delivered" if outbound_id is None else ("queued" if not local_ids else "delivered+queued")
    if full:
        result += f" mailbox-full={len(full)}"
        await _bounce_full(ctx, txn, full, queue_id, trace + body, peer.session_id)
    if auth is not None and auth.quarantined:
        result += f" quarantined={auth.quarantined}"
    if filtered:
        result += f" {filtered}"
    if content is not None and content.notes:
        result += " " + " ".join(content.notes)
    if logger.isEnabledFor(logging.INFO):  # the checks' summary is built only for a line that is written
        logger.info("%s id=%s from=<%s> to=%s size=%d local=%d remote=%d%s%s result=%s",
                    peer.session_id, queue_id, sender, rcpt_log, len(body), len(local_ids), len(remote),
                    f" outbound={outbound_id}" if outbound_id else "", f" {auth.summary}" if auth else "", result)
    metrics.message(source, "accepted")
    metrics.LOCAL_DELIVERIES.inc(len(local_ids))
    return r(250, "2.0.0", f"Ok: queued as {queue_id}")


async def _over_quota(ctx: ServerContext, local_ids: Iterable[int], size: int) -> list[int]:
    """The accounts among ``local_ids`` whose quota cannot take ``size`` more octets."""
    full = []
    for aid in local_ids:
        q = await ctx.store.get_quota(aid)
        if q is not None and q.limited and not q.allows(size):
            full.append(aid)
    return full


async def _bounce_full(ctx: ServerContext, txn: Transaction, full: list[int], queue_id: str,
                       original: bytes, session_id: str) -> None:
    """The other recipients got the message (250): the sender learns of the full mailboxes
    from a notice, as from Postfix when Dovecot's LMTP refuses one recipient of several."""
    sender = txn.sender.address
    reports = []
    for aid in full:
        rc = next((rc for rc in txn.rcpts if aid in rc.resolved.local), None)
        if rc is None or not wants_notice(sender, rc.notify, "failed"):
            continue
        reports.append(RecipientReport(address=rc.path.address, action="failed", status="5.2.2",
                                       orcpt=rc.orcpt, diagnostic="552 5.2.2 Mailbox full"))
    if not reports:
        return
    now = time.time()
    raw = build_dsn(reporting_mta=ctx.config.hostname, sender=sender, queue_id=queue_id, arrival=now,
                    now=now, reports=reports, original=original, ret=txn.ret, envid=txn.envid)
    try:
        how = await send_notice(ctx, ctx.outbound, sender, raw, txn.body_8bit)
        logger.info("%s id=%s failed notice (mailbox full) to <%s> %s", session_id, queue_id, sender, how)
    except Exception:
        logger.exception("%s id=%s could not send the mailbox-full notice to <%s>", session_id, queue_id, sender)


def _newlines(txn: Transaction, head: bytes, body: bytes) -> int | None:
    """``(head + body).count(b"\\n")`` from the DATA reader's count (``Transaction.counted``)
    while ``body`` is the octets it counted, or those octets with fields put before them (mail
    authentication's Authentication-Results): None when it cannot tell (the store counts)."""
    counted = txn.counted
    if counted is None:
        return None
    read, lf = counted
    if body is read:
        return head.count(b"\n") + lf
    if len(body) > len(read) and body.endswith(read):
        return head.count(b"\n") + body.count(b"\n", 0, len(body) - len(read)) + lf
    return None


class StoreBackend:
    """The session's view of the server: store lookups, authentication, delivery."""

    def __init__(self, ctx: ServerContext, settings: SmtpSettings, peer_ip: str, tag: str = "",
                 guard: Guard = NO_GUARD) -> None:
        self.ctx = ctx
        self.settings = settings
        self.peer_ip = peer_ip
        self.tag = tag or peer_ip
        self.guard = guard  # the connection's abuse defences (postroom.abuse.guard)

    async def is_local_domain(self, domain: str) -> bool:
        return await self.ctx.is_local_domain(domain)

    async def resolve(self, path: Path) -> Resolved | None:
        return await recipients.resolve(self.ctx.store, self.ctx.is_local_domain, path.key)

    async def expand(self, address: str) -> list[str] | None:
        return await recipients.expand(self.ctx.store, address)

    async def sender_owners(self, address: str) -> list[str]:
        alias = await self.ctx.store.get_alias(address.lower())
        return list(alias.targets) if alias else []

    async def authenticate(self, username: str, password: str) -> AuthOutcome:
        res = await self.ctx.auth.authenticate(username, password, self.peer_ip)
        # One line per attempt, with the name tried: what fail2ban-style tools look for.
        result = "ok" if res.account else ("throttled" if res.throttled else "failed")
        logger.info("%s auth %s user=%r", self.tag, result, username[:100])
        if res.account is None:
            self.guard.auth_failed(username)
        return AuthOutcome(res.account.address if res.account else None, res.throttled)

    def gssapi_mechanism(self, name: str) -> sasl.Mechanism | None:
        return kerberos.mechanism(self.ctx, "smtp", name)

    async def authenticate_principal(self, ident: sasl.Identified) -> AuthOutcome:
        step = await kerberos.finish(self, ident, logger)
        if isinstance(step, Accepted):
            return AuthOutcome(step.account.address)
        return AuthOutcome(None, step.throttled)

    def gssapi_failed(self, mechanism: str, reason: str) -> None:
        logger.info("%s auth failed (%s: %s)", self.tag, mechanism, reason)

    async def over_quota(self, account_ids: tuple[int, ...], size: int | None) -> bool:
        # Refused at RCPT only when every mailbox the address leads to is full.
        return bool(account_ids) and len(await _over_quota(self.ctx, account_ids, size or 1)) == len(account_ids)

    async def has_room(self, size: int | None) -> bool:
        # As Postfix: room for 1.5 times the largest message accepted here (so a full disk
        # is refused at MAIL, before the client sends it), and for 1.5 times a larger
        # declared SIZE.
        return has_room(await self.ctx.store.free_space(), max(self.ctx.config.limits.message_size, size or 0))

    async def deliver(self, peer: Peer, txn: Transaction, body: bytes) -> Reply:
        return await deliver(self.ctx, self.settings, peer, txn, body, guard=self.guard)

    async def check_helo(self, peer: Peer) -> Reply | None:
        return await self.guard.helo(peer) if self.guard else None

    async def check_mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        return await self.guard.mail(peer, txn) if self.guard else None

    async def check_rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        return await self.guard.rcpt(peer, txn, rcpt) if self.guard else None

    def replied(self, reply: Reply) -> None:
        if self.guard:
            self.guard.replied(reply)

    async def etrn(self, domain: str) -> bool | None:
        queue = self.ctx.outbound
        run = getattr(queue, "etrn", None)
        if run is None:
            return None
        logger.info("%s etrn %s", self.tag, domain)
        return bool(await run(domain))
