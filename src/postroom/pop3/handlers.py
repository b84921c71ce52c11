"""One coroutine per POP3 command: (session, command) → reply.

The dispatcher in :mod:`.commands` has already checked the state, TLS and the
argument count, so handlers only do their command. They use the store through
its interface and never see the socket.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable

from .. import log
from ..auth import kerberos, login
from ..errors import MaildropLocked, MessageDamaged
from ..storage.models import Account, FlagOp, MessageInfo
from ..wire import sasl
from ..wire.dotstuff import stuffed
from .maildrop import Maildrop, NoSuchMessage
from .reader import MessageReader
from .proto import (
    Action, Challenge, Code, Command, Reply, Response, State, err, listing, ok, parse_msg_number,
    parse_non_negative, top_of,
)
from .session import Session

IMPLEMENTATION = "Postroom"

_auth_log = log.get("pop3")
_PLAINTEXT_REFUSED = "Plaintext authentication disallowed on non-secure connections; use STLS first"
_AUTH_FAILED = "Authentication failed"


# -- capabilities (RFC 2449 §5) ---------------------------------------------------
def _mechanisms(s: Session) -> list[str]:
    """PLAIN and LOGIN, and GSSAPI (RFC 4752) and GSS-SPNEGO when [kerberos] names a POP service. RPOP
    (RFC 1081; dropped by RFC 1725) is never offered: it trusts the client's port and host."""
    return [*sasl.MECHANISMS, *kerberos.mechanisms(s.ctx, "pop3")]


def capabilities(s: Session) -> list[str]:
    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
            # RFC 2449 §6.7: the server never deletes mail on its own.
            "EXPIRE NEVER", f"IMPLEMENTATION {IMPLEMENTATION}"]
    if s.state is State.AUTHORIZATION:
        if s.plaintext_allowed:
            # RFC 2595 §4: before TLS, hide what may not be used in plaintext.
            caps.append("USER")
            caps.append("SASL " + " ".join(_mechanisms(s)))
        if s.tls_available and not s.tls_active:
            caps.append("STLS")
        caps.append("UTF8")  # RFC 6856 §2
    return caps


async def capa(s: Session, cmd: Command) -> Response:
    return ok("Capability list follows", listing(capabilities(s)))


async def noop(s: Session, cmd: Command) -> Response:
    return ok()


async def stls(s: Session, cmd: Command) -> Response:
    # RFC 2595 §4: only in AUTHORIZATION (the table ensures that), once, with a certificate.
    if s.tls_active:
        return err("Already using TLS")
    if not s.tls_available:
        return err("TLS is not available")
    return ok("Begin TLS negotiation", action=Action.START_TLS)


async def utf8(s: Session, cmd: Command) -> Response:
    # RFC 6856 §2: from now on user names, passwords and replies may be UTF-8.
    # Messages are sent as stored: Postroom keeps them 8-bit clean, no downgrade.
    s.utf8 = True
    return ok("UTF8 enabled")


# -- authorization ----------------------------------------------------------------
async def user(s: Session, cmd: Command) -> Response:
    if not s.plaintext_allowed:
        return err(_PLAINTEXT_REFUSED, Code.AUTH)
    # The reply never says whether the user exists (RFC 1939 §13).
    s.user = cmd.rest.strip()
    return ok("Send your password")


async def pass_(s: Session, cmd: Command) -> Response:
    if not s.plaintext_allowed:
        return err(_PLAINTEXT_REFUSED, Code.AUTH)
    if s.user is None:
        return err("Send USER first")
    name, s.user = s.user, None  # RFC 1939 §7: a failed PASS needs a new USER
    # RFC 1939 §7: PASS has one argument, which may itself contain spaces.
    return await _outcome(s, await login.check_password(s, name, cmd.rest, _auth_log))


async def apop(s: Session, cmd: Command) -> Response:
    """RFC 1939 §7: md5(timestamp + secret), the secret being the account's APOP secret.

    APOP is opt-in per account (``store.set_apop_secret``): the server must be able
    to recompute the digest, which a password hash does not allow. The APOP secret
    is separate from the login password, so offering both does not weaken either
    (the concern of RFC 1939 §13 about PASS and APOP for one user).
    """
    name, digest = cmd.args
    if await s.ctx.auth.throttled(s.peer_ip):  # counted on every node
        return _fail(s, throttled=True)
    account = await s.ctx.store.get_account(name.strip().lower())
    if account is None or not account.apop_secret:
        # Same answer for unknown users, so APOP does not reveal who exists.
        await login.count_failure(s, name, _auth_log)
        return _fail(s, text="APOP is not enabled for this user; use USER/PASS or AUTH")
    expected = hashlib.md5((s.timestamp + account.apop_secret).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(expected, digest.lower()):
        await login.count_failure(s, name, _auth_log)
        return _fail(s)
    if account.disabled:  # docs/web.md: a disabled account logs in nowhere
        _auth_log.info("%s auth disabled user=%r", s.tag, name[:100])
        return _fail(s)
    return await _login(s, account)


async def auth(s: Session, cmd: Command) -> Response:
    """RFC 5034 §4: AUTH mechanism [initial-response]."""
    if not cmd.args:
        # RFC 1734 clients list mechanisms with a bare AUTH; harmless to answer.
        return ok("Mechanisms follow", listing(_mechanisms(s)))
    if len(cmd.args) > 2:
        return err("Syntax: AUTH mechanism [initial-response]")
    mechanism: sasl.Mechanism | None = sasl.mechanism(cmd.args[0]) or kerberos.mechanism(s.ctx, "pop3", cmd.args[0])
    if mechanism is None:
        return err("Unsupported authentication mechanism")
    if not s.plaintext_allowed:
        return err(_PLAINTEXT_REFUSED, Code.AUTH)
    initial: bytes | None = None
    if len(cmd.args) == 2:
        # RFC 5034 §4: "=" is an empty initial response (decode_b64 knows).
        initial = sasl.decode_b64(cmd.args[1], getattr(mechanism, "max_response", sasl.MAX_RESPONSE))
        if initial is None:
            return err("Invalid base64 data")
    return await _sasl_step(s, mechanism, initial)


async def sasl_continue(s: Session, line: bytes) -> Response:
    """The client's answer to a ``+`` challenge."""
    mechanism, s.sasl = s.sasl, None
    assert mechanism is not None
    if sasl.is_cancel(line):
        return err("Authentication cancelled")  # RFC 5034 §4
    data = sasl.decode_b64(line, getattr(mechanism, "max_response", sasl.MAX_RESPONSE))
    if data is None:
        return err("Invalid base64 data")
    return await _sasl_step(s, mechanism, data)


async def _sasl_step(s: Session, mechanism: sasl.Mechanism, data: bytes | None) -> Response:
    step = await login.sasl_step(s, mechanism, data, _auth_log)
    if isinstance(step, login.Continue):
        s.sasl = mechanism
        return Challenge(step.challenge)
    return await _outcome(s, step)


async def _outcome(s: Session, step: login.Accepted | login.Refused) -> Response:
    if isinstance(step, login.Refused):
        return _fail(s, throttled=step.throttled)
    return await _login(s, step.account)


def _fail(s: Session, *, throttled: bool = False, text: str = _AUTH_FAILED) -> Reply:
    s.auth_failures += 1
    close = Action.CLOSE if s.auth_failures >= s.settings.max_auth_failures else Action.NONE
    if throttled:
        return err("Too many failed logins; try again later", Code.SYS_TEMP, close)
    return err(text, Code.AUTH, close)


async def _login(s: Session, account: Account) -> Response:
    """Lock the maildrop and take the snapshot; on success enter TRANSACTION."""
    store = s.ctx.store
    try:
        await s.resources.enter_async_context(store.lock_maildrop(account.id))
    except MaildropLocked:
        # RFC 2449 §8.1.1
        _auth_log.info("%s auth ok user=%r, maildrop in use", s.tag, account.address)
        return err("Maildrop is in use by another session", Code.IN_USE)
    try:
        mailbox = await store.get_mailbox(account.id, "INBOX")
        if mailbox is None:
            raise LookupError("account has no INBOX")
        messages = await store.list_messages(mailbox.id)
    except Exception:
        await s.resources.aclose()  # release the lock again
        s.ctx.log.exception("pop3: cannot open maildrop of %s", account.address)
        return err("Cannot open the maildrop", Code.SYS_TEMP)
    s.account = account
    s.maildrop = Maildrop.snapshot(mailbox, messages)
    s.reader = MessageReader(store)
    s.state = State.TRANSACTION
    _auth_log.info("%s auth ok user=%r", s.tag, account.address)
    count, size = s.maildrop.stat()
    return ok(f"Logged in, {count} messages ({size} octets)")


# -- transaction ------------------------------------------------------------------
def _maildrop(s: Session) -> Maildrop:
    assert s.maildrop is not None  # TRANSACTION implies a maildrop
    return s.maildrop


async def stat(s: Session, cmd: Command) -> Response:
    count, size = _maildrop(s).stat()
    return ok(f"{count} {size}")  # RFC 1939 §5: exactly "+OK nn mm"


async def list_(s: Session, cmd: Command) -> Response:
    return _scan_listing(s, cmd, lambda md, m: str(m.size))


async def uidl(s: Session, cmd: Command) -> Response:
    return _scan_listing(s, cmd, lambda md, m: md.uidl(m))


def _scan_listing(s: Session, cmd: Command, value: Callable[[Maildrop, MessageInfo], str]) -> Response:
    """LIST and UIDL (RFC 1939 §5, §7): one message with an argument, else all."""
    md = _maildrop(s)
    if cmd.args:
        found = _message(md, cmd.args[0])
        if isinstance(found, Reply):
            return found
        number, msg = found
        return ok(f"{number} {value(md, msg)}")
    vis = md.visible()
    return ok(f"{len(vis)} messages", listing([f"{n} {value(md, m)}" for n, m in vis]))


def _message(md: Maildrop, arg: str) -> tuple[int, MessageInfo] | Reply:
    """The message a number argument names, or the -ERR to send (RFC 1939 §5)."""
    number = parse_msg_number(arg)
    if number is None:
        return err("Invalid message number")
    try:
        return number, md.get(number)
    except NoSuchMessage as exc:
        return err(str(exc))


async def retr(s: Session, cmd: Command) -> Response:
    md = _maildrop(s)
    found = _message(md, cmd.args[0])
    if isinstance(found, Reply):
        return found
    number, msg = found
    raw = await _read(s, msg, md.next_after(number))
    if isinstance(raw, Reply):
        return raw
    md.retrieved.add(number)
    # The count is the stored size, which is exactly what follows before stuffing.
    return ok(f"{len(raw)} octets", stuffed(raw))


def retr_now(s: Session, line: bytes) -> list[bytes] | None:
    """``RETR n`` answered without the gate and without an await when everything it needs is
    at hand: the reply's pieces, exactly what ``dispatch`` of the line would send (the same
    checks, the same read, the same bookkeeping); None for anything else (another command,
    another spelling, a message number the maildrop does not have, bytes not in the page
    cache), which then goes the general way.

    Why: a POP3 client downloads one message per round trip, so the per-command machinery
    (parsing into a Command, the gate, the handler's coroutine, the reader's) is paid for
    every message; the server also answers such a line in the transport's callback
    (``Connection.answer_inline``, pop3/server.py), without waking the session's task."""
    if line[:5] != b"RETR " or line[-2:] != b"\r\n" or s.state is not State.TRANSACTION or s.sasl is not None:
        return None
    number = parse_msg_number(line[5:-2].decode("ascii", "replace"))
    md, reader = s.maildrop, s.reader
    if number is None or md is None or reader is None:
        return None
    try:
        msg = md.get(number)
    except NoSuchMessage:
        return None
    raw = reader.read_now(msg)
    if raw is None or len(raw) != msg.size:
        return None
    md.retrieved.add(number)
    return ok(f"{len(raw)} octets", stuffed(raw)).chunks()


async def top(s: Session, cmd: Command) -> Response:
    lines = parse_non_negative(cmd.args[1])
    if lines is None:
        return err("Syntax: TOP message lines")
    found = _message(_maildrop(s), cmd.args[0])
    if isinstance(found, Reply):
        return found
    raw = await _read(s, found[1])
    if isinstance(raw, Reply):
        return raw
    return ok("Top of message follows", stuffed(top_of(raw, lines)))


_UNAVAILABLE = err("Message is no longer available", Code.SYS_TEMP)
_DAMAGED = err("Message is damaged and cannot be read", Code.SYS_PERM)


async def _read(s: Session, msg: MessageInfo, next_msg: MessageInfo | None = None) -> bytes | Reply:
    """The message's bytes, or the -ERR to answer instead."""
    assert s.reader is not None
    try:
        raw = await s.reader.read(msg, next_msg)
    except FileNotFoundError:  # expunged by IMAP since the snapshot, and purged
        return _UNAVAILABLE
    except MessageDamaged as exc:  # it will not get better: the admin must look (postroom verify)
        s.ctx.log.error("pop3: %s", exc)
        return _DAMAGED
    except Exception:
        # Any other storage fault: log it, say little.
        s.ctx.log.warning("pop3: cannot read uid %d of mailbox %d", msg.uid, msg.mailbox_id,
                          exc_info=True)
        return _UNAVAILABLE
    if len(raw) != msg.size:
        s.ctx.log.error("pop3: uid %d has %d octets, the index says %d", msg.uid, len(raw), msg.size)
    return raw


async def dele(s: Session, cmd: Command) -> Response:
    number = parse_msg_number(cmd.args[0])
    if number is None:
        return err("Invalid message number")
    try:
        _maildrop(s).delete(number)
    except NoSuchMessage as exc:
        return err(str(exc))
    return ok(f"Message {number} deleted")


async def rset(s: Session, cmd: Command) -> Response:
    md = _maildrop(s)
    md.reset()
    count, size = md.stat()
    return ok(f"{count} messages ({size} octets)")


async def quit_(s: Session, cmd: Command) -> Response:
    if s.state is State.AUTHORIZATION:
        return ok("Bye", action=Action.CLOSE)  # RFC 1939 §4: no UPDATE state
    # RFC 1939 §6: the UPDATE state removes what DELE marked, then releases the lock.
    s.state = State.UPDATE
    md = _maildrop(s)
    store = s.ctx.store
    try:
        seen = md.seen_uids()
        if seen:
            # RETR marks messages read (as Dovecot does), applied with the deletions.
            await store.store_flags(md.mailbox.id, seen, FlagOp.ADD, frozenset({"\\Seen"}))
        uids = md.deleted_uids()
        if uids:
            await store.store_flags(md.mailbox.id, uids, FlagOp.ADD, frozenset({"\\Deleted"}))
            await store.expunge(md.mailbox.id, uids)
    except Exception:
        s.ctx.log.exception("pop3: update of %s failed", s.account.address if s.account else "?")
        await s.close()
        # RFC 1939 §6: -ERR when some deleted messages could not be removed.
        return err("Some deleted messages were not removed", Code.SYS_TEMP, Action.CLOSE)
    left = len(md.messages) - len(md.deleted)
    await s.close()
    return ok(f"Logging out ({left} messages left)", action=Action.CLOSE)
