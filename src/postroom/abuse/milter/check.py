"""Milters as a :class:`~postroom.abuse.guard.Check`: one conversation per milter per SMTP
connection, each SMTP stage passed on as Postfix passes it (docs/abuse.md "Milters").

The milters are asked in the configured order; a later one sees the message as the
earlier ones left it. A milter that is down, slow or breaks the protocol gives its
``default_action``, logged at warning level: ``accept`` leaves it out for the rest of the
connection, ``tempfail``/``reject`` refuse this command and every later MAIL, RCPT and
DATA of the connection (Postfix's "Service unavailable").
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Callable

from ... import __version__, log
from ...smtp import recipients
from ...smtp.address import AddressError, parse_path
from ...smtp.replies import Reply, r
from ...smtp.transaction import Rcpt, Resolved
from ..guard import Check, ConnInfo, Content
from . import proto
from .client import MilterConnection, MilterUnavailable
from .headers import Headers
from .proto import Cmd, Decision, Verdict
from .settings import MilterSpec

if TYPE_CHECKING:
    from ...context import ServerContext
    from ...net.connection import Connection
    from ...smtp.settings import SmtpSettings
    from ...smtp.transaction import Peer, Transaction

logger = log.get("abuse")

# Postfix's default milter_*_macros, per stage (what is sent when the milter names none).
DEFAULT_MACROS: dict[proto.Stage, tuple[str, ...]] = {
    proto.Stage.CONNECT: ("j", "{daemon_name}", "{daemon_addr}", "{daemon_port}", "v", "_", "{client_addr}",
                          "{client_port}", "{client_name}", "{client_ptr}"),
    proto.Stage.HELO: ("{tls_version}", "{cipher}", "{cipher_bits}"),
    proto.Stage.MAIL: ("i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}",
                       "{mail_mailer}"),
    proto.Stage.RCPT: ("i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"),
    proto.Stage.DATA: ("i",),
    proto.Stage.EOH: ("i",),
    proto.Stage.EOM: ("i",),
}

QUARANTINE_MAILBOX = "Junk"
_TEMPFAIL = r(451, "4.7.1", "Service unavailable - try again later")
_REJECT = r(550, "5.7.1", "Command rejected")
_CRLF = re.compile(rb"\r?\n")


#: smtp.server's settings_for, bound at the first connection (smtp.server imports the guard,
#: which imports this module): an import inside for_connection ran the import machinery at
#: every connection.
_settings_for: Callable[[ServerContext], SmtpSettings] | None = None


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    """The milters of this listener, or None (nothing configured: no cost)."""
    global _settings_for
    if not info.ip:
        return None
    get = _settings_for
    if get is None:
        from ...smtp.server import settings_for

        get = _settings_for = settings_for
    chosen = [m for m in get(ctx).milters if not m.listeners or info.listener in m.listeners]
    return MilterCheck(ctx, info, chosen) if chosen else None


class _Conversation:
    """One milter's state within one SMTP connection."""

    __slots__ = ("blocked", "conn", "discard", "in_txn", "msg_done", "off", "spec")

    def __init__(self, spec: MilterSpec) -> None:
        self.spec = spec
        self.conn: MilterConnection | None = None
        self.off = False  # ACCEPT at connect, or down with default_action accept
        self.blocked: Reply | None = None  # every later MAIL/RCPT/DATA gets this
        self.in_txn = False  # MAIL sent and the message not finished: ABORT before the next
        self.msg_done = False  # ACCEPT mid-message: nothing more of this message
        self.discard = False  # DISCARD before the end of the message


class MilterCheck(Check):
    name = "milter"

    def __init__(self, ctx: ServerContext, info: ConnInfo, specs: list[MilterSpec]) -> None:
        self.ctx = ctx
        self.info = info
        self.convs = [_Conversation(s) for s in specs]
        self.known: dict[str, str] = {}  # macro values so far (the milter may ask for any at any stage)
        self.queue_id = ""

    # -- stages ---------------------------------------------------------------------------------

    async def connect(self, conn: Connection) -> Reply | None:
        hostname = self.ctx.config.hostname
        self.known.update({
            "j": hostname, "{daemon_name}": self.info.listener, "{daemon_addr}": conn.local_ip,
            "{daemon_port}": str(conn.local_port), "v": f"Postroom {__version__}",
            # No reverse DNS lookup here: Postfix's "unknown" for a client without a name.
            "_": f"unknown [{self.info.ip}]", "{client_addr}": self.info.ip,
            "{client_port}": str(conn.peer_port), "{client_name}": "unknown", "{client_ptr}": "unknown",
        })
        for c in self.convs:
            try:
                c.conn = await MilterConnection.open(c.spec)
            except MilterUnavailable as exc:
                self._failed(c, "connect", exc)
                continue
            await self._ask(c, "connect", Cmd.CONNECT, proto.connect("unknown", self.info.ip, conn.peer_port),
                            proto.Stage.CONNECT, session=True)
        return None  # a refusal here is given at MAIL, as Postfix does (the client sees the reason)

    async def helo(self, peer: Peer) -> Reply | None:
        if peer.tls:
            parts = peer.tls.split()
            self.known.update({"{tls_version}": parts[0], "{cipher}": parts[3] if len(parts) > 3 else ""})
        for c in self._live():
            if (reply := await self._ask(c, "helo", Cmd.HELO, proto.helo(peer.helo), proto.Stage.HELO,
                                         session=True)) is not None:
                return reply
        return None

    async def mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        self.queue_id = log.new_id()
        self.known.update({"i": self.queue_id, "{mail_addr}": txn.sender.address,
                           "{mail_host}": txn.sender.domain, "{mail_mailer}": "smtp"})
        for k in ("{auth_type}", "{auth_authen}", "{auth_author}"):
            self.known.pop(k, None)
        if peer.login:
            # The session does not keep the SASL mechanism's name; milters (OpenDKIM among
            # them) read a non-empty {auth_type} as "authenticated" (docs/abuse.md).
            self.known.update({"{auth_type}": "LOGIN", "{auth_authen}": peer.login})
        args = _mail_args(txn)
        for c in self.convs:
            c.msg_done = c.discard = False
            if c.blocked is not None:
                return c.blocked
            if c.off or c.conn is None:
                continue
            if c.in_txn:  # the last message was left unfinished (RSET, a refusal)
                c.conn.send(proto.simple(Cmd.ABORT))
            c.in_txn = True
            if (reply := await self._ask(c, "mail", Cmd.MAIL, proto.mail(txn.sender.address, *args),
                                         proto.Stage.MAIL)) is not None:
                return reply
        return None

    async def rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        self.known.update({"{rcpt_addr}": rcpt.path.address, "{rcpt_host}": rcpt.path.domain,
                           "{rcpt_mailer}": "local" if rcpt.resolved.local else "smtp"})
        args = [f"NOTIFY={','.join(rcpt.notify)}"] if rcpt.notify else []
        for c in self.convs:
            if c.blocked is not None:
                return c.blocked
            if not self._in_message(c):
                continue
            if (reply := await self._ask(c, "rcpt", Cmd.RCPT, proto.rcpt(rcpt.path.address, *args),
                                         proto.Stage.RCPT)) is not None:
                return reply  # this recipient only: the milter goes on with the others
        return None

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        for c in self.convs:
            if c.blocked is not None:
                return c.blocked
            if c.discard:
                content.discard = True
                content.notes.append(f"milter={c.spec.name}:discard")
                return None
            if not self._in_message(c):
                continue
            if content.queue_id:  # the delivery's id from now on: the one its log line carries
                self.known["i"] = content.queue_id
            try:
                reply = await self._message(c, txn, content)
            except MilterUnavailable as exc:
                reply = self._failed(c, "data", exc)
                content.notes.append(f"milter={c.spec.name}:unavailable")
            if reply is not None or content.discard:
                return reply
        return None

    async def close(self) -> None:
        for c in self.convs:
            if c.conn is not None:
                if c.in_txn:  # an RSET or a lost client left a message open
                    c.conn.send(proto.simple(Cmd.ABORT))
                await c.conn.quit()
                c.conn = None

    # -- the message ----------------------------------------------------------------------------

    async def _message(self, c: _Conversation, txn: Transaction, content: Content) -> Reply | None:
        """DATA, the header fields, EOH, the body, end of message; the modifications applied."""
        assert c.conn is not None
        conn, spec = c.conn, c.spec
        d = await conn.ask(Cmd.DATA, proto.simple(Cmd.DATA), spec.command_timeout, self._macros(c, proto.Stage.DATA))
        if (reply := self._verdict(c, "data", d)) is not None or c.msg_done:
            return reply
        # Fields other checks added are part of what the milter sees (and may change).
        msg = Headers.split(content.final())
        leadspc = bool(conn.negotiated.protocol & proto.Proto.HDR_LEADSPC)
        if not conn.negotiated.skips(Cmd.HEADER):
            for f in msg.fields:
                value = f.value if leadspc else f.value.lstrip(" \t")
                d = await conn.ask(Cmd.HEADER, proto.header(f.name, value), spec.command_timeout)
                if (reply := self._verdict(c, "header", d)) is not None or c.msg_done:
                    return reply
        d = await conn.ask(Cmd.EOH, proto.simple(Cmd.EOH), spec.command_timeout, self._macros(c, proto.Stage.EOH))
        if (reply := self._verdict(c, "eoh", d)) is not None or c.msg_done:
            return reply
        if not conn.negotiated.skips(Cmd.BODY):
            for chunk in proto.body_chunks(msg.body):
                d = await conn.ask(Cmd.BODY, chunk, spec.content_timeout)
                if d is not None and d.verdict is Verdict.SKIP:
                    break
                if (reply := self._verdict(c, "body", d)) is not None or c.msg_done:
                    return reply
        mods, d = await conn.end_of_message(spec.content_timeout, self._macros(c, proto.Stage.EOM))
        c.in_txn = False  # the message is over for the milter, whatever it said
        if d.verdict in (Verdict.ACCEPT, Verdict.CONTINUE):
            await self._apply(c, mods, msg, txn, content, leadspc)
            content.message = msg.join()
            content.headers.clear()  # they are in the message now (Headers.split of final())
            content.notes.append(f"milter={spec.name}:{'modified' if mods else 'accept'}")
            return None
        if d.verdict is Verdict.DISCARD:
            content.discard = True
            content.notes.append(f"milter={spec.name}:discard")
            return None
        content.notes.append(f"milter={spec.name}:{d.verdict.value}")
        return self._refusal(d)

    async def _apply(self, c: _Conversation, mods: list[proto.Modification], msg: Headers,
                     txn: Transaction, content: Content, leadspc: bool) -> None:
        new_body: list[bytes] = []
        for m in mods:
            if isinstance(m, proto.AddHeader):
                msg.append(m.name, m.value, leadspc)
            elif isinstance(m, proto.InsHeader):
                msg.insert(m.index, m.name, m.value, leadspc)
            elif isinstance(m, proto.ChgHeader):
                msg.change(m.name, m.index, m.value, leadspc)
            elif isinstance(m, proto.ReplBody):
                new_body.append(m.chunk)
            elif isinstance(m, proto.AddRcpt):
                await self._add_rcpt(c, txn, m.address)
            elif isinstance(m, proto.DelRcpt):
                txn.rcpts[:] = [rc for rc in txn.rcpts if rc.path.address.lower() != m.address.lower()]
            elif isinstance(m, proto.ChgFrom):
                try:
                    txn.sender = parse_path(f"<{m.address}>", allow_null=True)[0]
                except AddressError as exc:
                    raise MilterUnavailable(f"bad sender {m.address[:80]!r} in CHGFROM: {exc}") from None
            elif isinstance(m, proto.Quarantine):
                # Local copies go to the Junk mailbox; remote ones still go (docs/abuse.md).
                content.mailbox = QUARANTINE_MAILBOX
                content.notes.append(f"quarantine={m.reason[:80]!r}")
        if new_body:
            msg.body = _CRLF.sub(b"\r\n", b"".join(new_body))
        if not txn.rcpts:
            content.discard = True  # every recipient deleted: delivered to nobody, as in Postfix
            content.notes.append(f"milter={c.spec.name}:no-recipients")

    async def _add_rcpt(self, c: _Conversation, txn: Transaction, address: str) -> None:
        """An added recipient is resolved like RCPT TO (aliases, accounts, catch-alls)."""
        try:
            path = parse_path(f"<{address}>")[0]
        except AddressError as exc:
            logger.warning("%s milter %s: added recipient <%s> ignored: %s", self.info.tag, c.spec.name,
                           address[:200], exc)
            return
        if any(rc.path.key == path.key for rc in txn.rcpts):
            return
        resolved: Resolved | None
        if await self.ctx.is_local_domain(path.domain):
            resolved = await recipients.resolve(self.ctx.store, self.ctx.is_local_domain, path.key)
            if resolved is None:
                logger.warning("%s milter %s: added recipient <%s> does not exist, ignored", self.info.tag,
                               c.spec.name, path.address)
                return
        else:
            resolved = Resolved(remote=(path.address,))
        txn.rcpts.append(Rcpt(path, resolved))

    # -- verdicts and failures ------------------------------------------------------------------

    async def _ask(self, c: _Conversation, stage: str, cmd: Cmd, packet: bytes, macros: proto.Stage,
                   session: bool = False) -> Reply | None:
        """One envelope command to one milter: None goes on, a reply refuses the command."""
        assert c.conn is not None
        try:
            d = await c.conn.ask(cmd, packet, c.spec.command_timeout, self._macros(c, macros))
        except MilterUnavailable as exc:
            return self._failed(c, stage, exc)
        return self._verdict(c, stage, d, session)

    def _verdict(self, c: _Conversation, stage: str, d: Decision | None, session: bool = False) -> Reply | None:
        """A verdict before the end of the message: None goes on; a reply refuses the command.
        ``session``: CONNECT and HELO, where ACCEPT means the whole connection."""
        if d is None or d.verdict is Verdict.CONTINUE:
            return None
        if d.verdict is Verdict.ACCEPT:
            if session:
                c.off = True
            else:
                c.msg_done = True
            return None
        if d.verdict is Verdict.DISCARD:
            if session:
                c.off = True  # Postfix: DISCARD for the connection is not defined before MAIL
            else:
                c.discard = c.msg_done = True
            return None
        reply = self._refusal(d)
        if stage == "connect":
            c.blocked = reply  # given at MAIL, RCPT and DATA
            return None
        return reply

    @staticmethod
    def _refusal(d: Decision) -> Reply:
        if d.verdict is Verdict.REPLY:
            return r(d.code, d.status, *(d.text or ("Command rejected",)))
        if d.verdict is Verdict.REJECT:
            return _REJECT
        return _TEMPFAIL  # TEMPFAIL, SHUTDOWN

    def _failed(self, c: _Conversation, stage: str, exc: MilterUnavailable) -> Reply | None:
        """A milter that cannot answer: its default action, logged."""
        action = c.spec.default_action
        logger.warning("%s milter %s unavailable at %s (%s): default action %s", self.info.tag, c.spec.name,
                       stage, exc, action)
        if c.conn is not None:
            c.conn.abort()
            c.conn = None
        c.in_txn = False
        if action == "accept":
            c.off = True
            return None
        c.blocked = _REJECT if action == "reject" else _TEMPFAIL
        return None if stage == "connect" else c.blocked

    def _live(self) -> list[_Conversation]:
        return [c for c in self.convs if c.conn is not None and not c.off and c.blocked is None]

    def _in_message(self, c: _Conversation) -> bool:
        return c.conn is not None and not c.off and c.blocked is None and c.in_txn and not c.msg_done

    def _macros(self, c: _Conversation, stage: proto.Stage) -> bytes:
        assert c.conn is not None
        names = c.conn.negotiated.macros.get(stage, DEFAULT_MACROS[stage])
        values = {n: self.known[n] for n in names if n in self.known}
        if not values and logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s milter %s: no macros for stage %s", self.info.tag, c.spec.name, stage.name)
        return proto.macros(proto.STAGE_CMD[stage], values) if values else b""


def _mail_args(txn: Transaction) -> list[str]:
    """The MAIL FROM parameters, as the client gave them (what milters see in Postfix)."""
    args = []
    if txn.size is not None:
        args.append(f"SIZE={txn.size}")
    if txn.body_8bit:
        args.append("BODY=8BITMIME")
    if txn.smtputf8:
        args.append("SMTPUTF8")
    if txn.ret:
        args.append(f"RET={txn.ret}")
    return args
