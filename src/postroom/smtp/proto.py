"""The SMTP session as a sans-I/O state machine with one command table.

The server feeds it command lines (``await session.command(line)``) and, when
``session.expect`` says so, the DATA block, a BDAT chunk, a SASL response line or
the end of a TLS handshake. Every call returns the :class:`Reply` to send (or
None when the reply must wait for more input: BDAT). Nothing here touches a socket
or asyncio; what needs the store or the authenticator goes through the
:class:`Backend` protocol, which tests can fake.

State checks happen once, in :meth:`Session.command`, from :data:`COMMANDS`
(verb → handler, states in which it is allowed). Handlers assume they are allowed.

States (RFC 5321 §4.1.4, §3.3):

- START: before HELO/EHLO. Only greeting-independent commands work; a mail
  command gets 503 (RFC 5321 §4.1.4: a session must begin with EHLO/HELO).
- READY: greeted, no transaction; MAIL starts one.
- MAIL: MAIL accepted; RCPT may follow.
- RCPT: at least one recipient accepted; more RCPT, DATA or BDAT may follow.
- BDAT: inside a BDAT sequence (RFC 3030 §2): only BDAT, RSET, NOOP, QUIT, HELP.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from ..errors import StoreUnavailable
from ..wire import sasl, xtext
from ..wire.dotstuff import normalize_newlines_counted
from . import policy, replies
from .address import AddressError, Path, parse_params, parse_path
from .replies import Reply, r
from .transaction import Peer, Rcpt, Resolved, Transaction

_log = logging.getLogger("postroom.smtp")


def _ascii_digits(s: str) -> bool:
    """0-9 only: ``str.isdigit`` also accepts "²" or "٣", which ``int`` then refuses or reads."""
    return s.isascii() and s.isdigit()


class State(enum.Enum):
    START = "start"
    READY = "ready"
    MAIL = "mail"
    RCPT = "rcpt"
    BDAT = "bdat"


class Expect(enum.Enum):
    """What the server must read next."""

    LINE = "line"  # a command
    DATA = "data"  # a dot-terminated block; then call data_end()
    CHUNK = "chunk"  # exactly ``session.chunk_size`` octets; then call bdat_chunk()
    SASL = "sasl"  # one AUTH response line; then call sasl_line()
    TLS = "tls"  # run the handshake; then call tls_started()
    CLOSE = "close"  # flush and close


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    login: str | None  # the account address on success
    throttled: bool = False


class Backend(Protocol):
    """What the session needs from the rest of the server (all lookups are lower case)."""

    async def is_local_domain(self, domain: str) -> bool: ...

    async def resolve(self, path: Path) -> Resolved | None:
        """Where a recipient in a local domain goes; None for an unknown user."""
        ...

    async def expand(self, address: str) -> list[str] | None:
        """EXPN: an alias's members or ``[address]`` for a mailbox; None if unknown."""
        ...

    async def sender_owners(self, address: str) -> list[str]:
        """Targets of the alias ``address`` (for the sender-ownership rule)."""
        ...

    async def authenticate(self, username: str, password: str) -> AuthOutcome: ...

    # Only called for the mechanisms in Options.gssapi ([kerberos] names an smtp service).
    def gssapi_mechanism(self, name: str) -> sasl.Mechanism | None: ...

    async def authenticate_principal(self, ident: sasl.Identified) -> AuthOutcome: ...

    def gssapi_failed(self, mechanism: str, reason: str) -> None:
        """Log why a GSSAPI exchange failed (the client only sees 535)."""

    async def deliver(self, peer: Peer, txn: Transaction, body: bytes) -> Reply:
        """Deliver durably and return the final reply (250 with the queue id, or 4xx/5xx)."""
        ...

    async def over_quota(self, account_ids: tuple[int, ...], size: int | None) -> bool:
        """Whether none of these accounts' quotas can take a message of ``size`` octets (the
        declared SIZE; None: any message at all). True answers RCPT with 552 5.2.2."""
        ...

    async def has_room(self, size: int | None) -> bool:
        """Whether the disk can take a message of ``size`` octets (the declared SIZE, None
        when the client declared none) with room to spare; False answers MAIL with 452."""
        ...

    async def check_helo(self, peer: Peer) -> Reply | None:
        """Abuse defences (postroom.abuse.guard) on HELO/EHLO; a reply refuses it."""
        ...

    async def check_mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        """Abuse defences on MAIL, once the command itself is valid; a reply refuses it."""
        ...

    async def check_rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        """Abuse defences on RCPT, once the recipient is known to be acceptable."""
        ...

    def replied(self, reply: Reply) -> None:
        """Every reply the session sends (the defences count errors)."""

    async def etrn(self, domain: str) -> bool | None:
        """RFC 1985: start a queue run for ``domain`` (``@domain`` with subdomains).
        True: mail was waiting; False: none; None: no outbound queue here."""
        ...


@dataclass(frozen=True, slots=True)
class Options:
    hostname: str
    submission: bool  # the listener is submission (587/465): AUTH required
    starttls: bool  # STARTTLS may be offered on this listener
    tls_active: bool  # implicit TLS
    auth_available: bool
    allow_plaintext_auth: bool
    trusted: bool  # the client's IP is in trusted_networks
    max_size: int
    max_recipients: int
    max_errors: int
    vrfy: bool
    expn: bool
    require_sender_match: bool
    primary_domain: str  # for a bare RCPT TO:<postmaster>
    banner: str = "ESMTP Postroom"
    listener: str = ""  # the listener's name (mail authentication checks are per listener)
    gssapi: tuple[str, ...] = ()  # GSSAPI (RFC 4752), GSS-SPNEGO: [kerberos] names an smtp service


Handler = Callable[["Session", str], Awaitable[Reply | None]]

_ANY = frozenset(State)
_GREETED = frozenset({State.READY, State.MAIL, State.RCPT, State.BDAT})
_NOT_BDAT = frozenset({State.START, State.READY, State.MAIL, State.RCPT})
_NOTIFY = {"SUCCESS", "FAILURE", "DELAY"}
_WEB_VERBS = {"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"}


_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
_SEND_HELO = r(503, "5.5.1", "Send HELO/EHLO first")
_NO_RCPTS = r(554, "5.5.1", "No valid recipients")  # RFC 5321 §3.3
# The replies of every transaction, made (and encoded, Reply.encode) once per process.
_SENDER_OK = r(250, "2.1.0", "Sender OK")
_RECIPIENT_OK = r(250, "2.1.5", "Recipient OK")
_GO_AHEAD = r(354, None, "End data with <CR><LF>.<CR><LF>")


@functools.lru_cache(maxsize=16)
def _greeting(hostname: str, banner: str) -> Reply:
    return r(220, None, f"{hostname} {banner}")  # no enhanced code (RFC 2034 §3)


@functools.lru_cache(maxsize=16)
def _closing(hostname: str) -> Reply:
    return r(221, "2.0.0", f"{hostname} closing connection", close=True)


@functools.lru_cache(maxsize=16)
def _ehlo_lines(extensions: tuple[str, ...]) -> Reply:
    """The EHLO reply with these extension lines and an empty first line, encoded once per
    process: each connection's reply is it with its own first line (Reply.with_first_line)."""
    return Reply(250, None, ("", *extensions))


@dataclass(frozen=True, slots=True)
class Command:
    handler: Handler
    states: frozenset[State]


class Session:
    def __init__(self, opts: Options, backend: Backend, peer_ip: str, session_id: str) -> None:
        self.opts = opts
        self.backend = backend
        self.peer_ip = peer_ip
        self.session_id = session_id
        self.state = State.START
        self.expect = Expect.LINE
        self.helo = ""
        self.esmtp = False
        self.tls_active = opts.tls_active
        self.tls_info: str | None = None
        self.login: str | None = None
        self.txn: Transaction | None = None
        self.errors = 0
        self.chunk_size = 0
        self._chunk_last = False
        self._chunk_discard: Reply | None = None  # reply for a BDAT whose chunk is read and dropped
        self._sasl: sasl.Mechanism | None = None
        self._kept_peer: Peer | None = None

    # -- entry points ----------------------------------------------------------------
    def greeting(self) -> Reply:
        return _greeting(self.opts.hostname, self.opts.banner)

    async def command(self, line: bytes) -> Reply | None:
        """One command line, with its line end."""
        text = _decode_line(line)
        if text is None:
            return self._done(r(500, "5.5.2", "Syntax error: invalid characters in command"))
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        cmd = COMMANDS.get(verb)
        if cmd is None:
            if verb in _WEB_VERBS and self.state is State.START:
                return self._done(r(421, "4.7.0", "This is an SMTP server, closing connection", close=True))
            return self._done(replies.SYNTAX)
        if self.state not in cmd.states:
            bad = _SEND_HELO if self.state is State.START else replies.BAD_SEQUENCE
            if verb == "BDAT":  # the chunk follows the command whatever we answer
                return self._start_discard(arg, bad)
            return self._done(bad)
        try:
            reply = await cmd.handler(self, arg.strip(" "))
        except StoreUnavailable as exc:  # a lookup hit a database that is restarting: retry later
            _log.warning("%s: %s unavailable store (%s): answered 451", self.session_id, verb, exc)
            return self._done(replies.STORE_UNAVAILABLE)
        return self._done(reply) if reply is not None else None

    def line_too_long(self) -> Reply:
        """The command (or AUTH response) line exceeded the limit (RFC 5321 §4.5.3.1.4)."""
        if self.expect is Expect.SASL:
            self._sasl = None
            self.expect = Expect.LINE
        return self._done(replies.LINE_TOO_LONG)

    def _done(self, reply: Reply) -> Reply:
        """Count errors (RFC 5321 §7.8 resistance to attacks): too many end the session."""
        self.backend.replied(reply)
        if reply.code >= 500:
            self.errors += 1
            if self.errors >= self.opts.max_errors:
                self.expect = Expect.CLOSE
                return replies.TOO_MANY_ERRORS
        if reply.close:
            self.expect = Expect.CLOSE
        return reply

    # -- HELO / EHLO (RFC 5321 §4.1.1.1) -------------------------------------------------
    async def _helo(self, arg: str, esmtp: bool) -> Reply:
        if not arg or " " in arg or not arg.isprintable():
            return r(501, "5.5.4", f"Syntax: {'EHLO' if esmtp else 'HELO'} hostname")
        previous, self.helo = self.helo, arg
        refusal = await self.backend.check_helo(self._peer())
        if refusal is not None:
            self.helo = previous
            return refusal
        self.esmtp = esmtp
        self.txn = None
        self.state = State.READY
        first = f"{self.opts.hostname} Hello {arg} [{self.peer_ip}]"
        if not esmtp:
            return r(250, None, first)
        return _ehlo_lines(tuple(self.extensions())).with_first_line(first)

    def extensions(self) -> list[str]:
        ext = ["PIPELINING", f"SIZE {self.opts.max_size}", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.opts.starttls and not self.tls_active:
            ext.append("STARTTLS")
        if self._auth_offered():
            ext.append(" ".join(("AUTH PLAIN LOGIN", *self.opts.gssapi)))
        ext += ["DSN", "SMTPUTF8", "CHUNKING", "ETRN", "HELP"]
        return ext

    def _auth_offered(self) -> bool:
        # RFC 4954 §4 / RFC 8314 §3: PLAIN and LOGIN send the password, so only under TLS.
        return (self.opts.auth_available and self.login is None
                and (self.tls_active or self.opts.allow_plaintext_auth))

    # -- MAIL (RFC 5321 §4.1.1.2) ---------------------------------------------------------
    async def _mail(self, arg: str) -> Reply:
        if self.opts.submission and self.login is None:
            # RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
            if not self.tls_active and not self.opts.allow_plaintext_auth:
                return replies.TLS_REQUIRED
            return replies.AUTH_REQUIRED
        parsed = self._envelope_arg(arg, "MAIL FROM:", "5.1.7 Bad sender", allow_null=True)
        if isinstance(parsed, Reply):
            return parsed
        path, params = parsed
        txn = Transaction(sender=path)
        for key, value in params.items():
            bad = self._mail_param(txn, key, value)
            if bad is not None:
                return bad
        if not path.is_ascii and not txn.smtputf8:
            return r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")  # RFC 6531 §3.4
        if txn.size is not None and txn.size > self.opts.max_size:
            return replies.TOO_BIG  # RFC 1870 §6.1
        if not await self.backend.has_room(txn.size):
            return replies.NO_ROOM  # RFC 1870 §6.1 452; refused now rather than after DATA
        if self.opts.submission and self.login and self.opts.require_sender_match:
            owners = await self.backend.sender_owners(path.key) if path.domain else []
            if not policy.sender_allowed(path.key, self.login, owners):
                return r(553, "5.7.1", "Sender address not owned by the authenticated user")
        refusal = await self.backend.check_mail(self._peer(), txn)
        if refusal is not None:
            return refusal
        self.txn = txn
        self.state = State.MAIL
        return _SENDER_OK

    def _envelope_arg(self, arg: str, syntax: str, problem: str, **kw: bool
                      ) -> tuple[Path, dict[str, str | None]] | Reply:
        """``FROM:<path> params`` / ``TO:<path> params`` → path and parameters, or the error reply."""
        keyword = syntax.split(" ", 1)[1]
        if arg[:len(keyword)].upper() != keyword:
            return r(501, "5.5.4", f"Syntax: {syntax}<address>")
        try:
            path, rest = parse_path(arg[len(keyword):], **kw)
            params = parse_params(rest)
        except AddressError as exc:
            status, _, text = problem.partition(" ")
            return r(501, status, f"{text} address syntax: {exc}")
        if params and not self.esmtp:
            return replies.UNKNOWN_PARAM  # RFC 5321 §4.1.1.2: parameters need EHLO
        return path, params

    def _mail_param(self, txn: Transaction, key: str, value: str | None) -> Reply | None:
        if key == "SIZE":  # RFC 1870
            if value is None or not _ascii_digits(value) or len(value) > 20:
                return r(501, "5.5.4", "Invalid SIZE parameter")
            txn.size = int(value)
        elif key == "BODY":  # RFC 6152
            v = (value or "").upper()
            if v not in ("7BIT", "8BITMIME"):
                return r(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
            txn.body_8bit = v == "8BITMIME"
        elif key == "SMTPUTF8":  # RFC 6531 §3.4
            if value is not None:
                return r(501, "5.5.4", "SMTPUTF8 takes no value")
            txn.smtputf8 = True
        elif key == "RET":  # RFC 3461 §4.3
            v = (value or "").upper()
            if v not in ("FULL", "HDRS"):
                return r(501, "5.5.4", "RET must be FULL or HDRS")
            txn.ret = v
        elif key == "ENVID":  # RFC 3461 §4.4
            try:
                txn.envid = xtext.decode(value or "")
            except xtext.XtextError:
                return r(501, "5.5.4", "Invalid ENVID")
            if not value or len(value) > 100:
                return r(501, "5.5.4", "Invalid ENVID")
        elif key == "AUTH":  # RFC 4954 §5: accepted, not trusted from other hosts
            if value is None:
                return r(501, "5.5.4", "Invalid AUTH parameter")
        else:
            return replies.UNKNOWN_PARAM
        return None

    # -- RCPT (RFC 5321 §4.1.1.3) ---------------------------------------------------------
    async def _rcpt(self, arg: str) -> Reply:
        txn = self.txn
        assert txn is not None
        parsed = self._envelope_arg(arg, "RCPT TO:", "5.1.3 Bad recipient", allow_bare_postmaster=True)
        if isinstance(parsed, Reply):
            return parsed
        path, params = parsed
        notify: tuple[str, ...] = ()
        orcpt: str | None = None
        for key, value in params.items():
            if key == "NOTIFY":  # RFC 3461 §4.1
                items = tuple((value or "").upper().split(","))
                if items != ("NEVER",) and not (set(items) <= _NOTIFY and len(set(items)) == len(items)):
                    return r(501, "5.5.4", "Invalid NOTIFY parameter")
                notify = items
            elif key == "ORCPT":  # RFC 3461 §4.2: addr-type ";" xtext
                atype, semi, enc = (value or "").partition(";")
                try:
                    decoded = xtext.decode(enc)
                except xtext.XtextError:
                    decoded = ""
                if not semi or not atype or not decoded:
                    return r(501, "5.5.4", "Invalid ORCPT parameter")
                orcpt = f"{atype};{decoded}"
            else:
                return replies.UNKNOWN_PARAM
        if not path.is_ascii and not txn.smtputf8:
            return r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
        hazard = policy.routing_hazard(path)
        if hazard:
            return r(550, "5.7.1", f"Relay access denied: {hazard}")
        if len(txn.rcpts) >= self.opts.max_recipients:
            return replies.TOO_MANY_RCPTS  # RFC 5321 §4.5.3.1.10
        if not path.domain:  # bare <postmaster>
            path = Path("postmaster", self.opts.primary_domain)
        local = await self.backend.is_local_domain(path.domain)
        client = policy.Client(authenticated=self.login is not None, trusted=self.opts.trusted)
        decision = policy.route(local, client)
        if decision is policy.Route.DENIED:
            return replies.RELAY_DENIED
        if decision is policy.Route.LOCAL:
            resolved = await self.backend.resolve(path)
            if resolved is None:
                return replies.NO_SUCH_USER
            # Refused now when every mailbox it leads to is full (or cannot take the declared
            # SIZE); one that fills up meanwhile is dealt with at the end of DATA (delivery.py).
            if not resolved.remote and await self.backend.over_quota(resolved.local, txn.size):
                return replies.MAILBOX_FULL
        else:
            resolved = Resolved(remote=(path.address,))
        rcpt = Rcpt(path, resolved, notify, orcpt)
        refusal = await self.backend.check_rcpt(self._peer(), txn, rcpt)
        if refusal is not None:
            return refusal
        txn.rcpts.append(rcpt)
        self.state = State.RCPT
        return _RECIPIENT_OK

    # -- DATA (RFC 5321 §4.1.1.4) ---------------------------------------------------------
    async def _data(self, arg: str) -> Reply:
        if arg:
            return replies.BAD_ARGS
        if self.state is not State.RCPT:
            return _NO_RCPTS
        self.expect = Expect.DATA
        return _GO_AHEAD

    async def data_end(self, body: bytes, too_big: bool, no_room: bool = False) -> Reply:
        """The DATA block has been read (un-stuffed); deliver it or refuse it. ``no_room``:
        the server had no memory left to keep it (budget.py), a temporary refusal."""
        self.expect = Expect.LINE
        return self._done(await self._finish(body, too_big, no_room))

    async def _finish(self, body: bytes, too_big: bool, no_room: bool = False) -> Reply:
        txn = self.txn
        assert txn is not None
        self.txn = None
        self.state = State.READY
        if no_room:
            return replies.NO_ROOM
        if too_big:
            return replies.TOO_BIG
        body, txn.counted = _counted(body)
        return await self.backend.deliver(self._peer(), txn, body)

    def _peer(self) -> Peer:
        # Asked at HELO, MAIL, RCPT and DATA: the one made last is given again while the
        # client's identity is the same (a frozen dataclass's __init__ costs a few µs).
        tls = self.tls_info if self.tls_active else None
        p = self._kept_peer
        if p is None or p.helo != self.helo or p.esmtp != self.esmtp or p.tls != tls or p.login != self.login:
            p = self._kept_peer = Peer(self.peer_ip, self.helo, self.esmtp, tls, self.login, self.session_id,
                                       self.opts.submission, self.opts.trusted, self.opts.listener)
        return p

    # -- BDAT (RFC 3030 §2) --------------------------------------------------------------
    def _parse_bdat(self, arg: str) -> tuple[int, bool] | None:
        parts = arg.split()
        if not 1 <= len(parts) <= 2 or not _ascii_digits(parts[0]) or len(parts[0]) > 12:
            return None
        if len(parts) == 2 and parts[1].upper() != "LAST":
            return None
        return int(parts[0]), len(parts) == 2

    def _start_discard(self, arg: str, reply: Reply) -> Reply | None:
        parsed = self._parse_bdat(arg)
        if parsed is None:  # the chunk size is unknown: we can't stay in sync
            self.expect = Expect.CLOSE
            return r(501, "5.5.4", "Invalid BDAT syntax, closing connection", close=True)
        self.chunk_size = parsed[0]
        self._chunk_discard = reply
        self.expect = Expect.CHUNK
        return None

    async def _bdat(self, arg: str) -> Reply | None:
        parsed = self._parse_bdat(arg)
        if parsed is None:
            return self._start_discard(arg, replies.BAD_ARGS)
        if self.state is State.MAIL:
            return self._start_discard(arg, _NO_RCPTS)
        txn = self.txn
        assert txn is not None
        self.chunk_size, self._chunk_last = parsed
        self._chunk_discard = None
        self.state = State.BDAT
        self.expect = Expect.CHUNK
        return None

    async def bdat_chunk(self, data: bytes, dropped: int = 0, no_room: bool = False) -> Reply:
        """The chunk announced by BDAT has been read (or, ``dropped`` octets, skipped
        because it alone exceeds the size limit; or skipped because the server had no
        memory left to keep it, ``no_room``: the transaction ends with a temporary error)."""
        self.expect = Expect.LINE
        if self._chunk_discard is not None:
            reply, self._chunk_discard = self._chunk_discard, None
            return self._done(reply)
        txn = self.txn
        assert txn is not None
        if no_room:
            self.txn = None
            self.state = State.READY
            return self._done(replies.NO_ROOM)
        if not txn.chunks_too_big:
            if dropped or len(txn.chunks) + len(data) > self.opts.max_size:
                txn.chunks_too_big = True
                txn.chunks = bytearray()
            else:
                txn.chunks += data
        if not self._chunk_last:
            # RFC 3030 §2: too big is reported at once, the client then sends RSET.
            if txn.chunks_too_big:
                self.txn = None
                self.state = State.READY
                return self._done(replies.TOO_BIG)
            return r(250, "2.0.0", f"{len(data)} octets received")
        if txn.chunks_too_big:
            self.txn = None
            self.state = State.READY
            return self._done(replies.TOO_BIG)
        return self._done(await self._finish(bytes(txn.chunks), txn.chunks_too_big))

    # -- RSET, NOOP, QUIT, HELP (RFC 5321 §4.1.1.5, .9, .10, .8) ------------------------
    async def _rset(self, arg: str) -> Reply:
        if arg:
            return replies.BAD_ARGS
        self.txn = None
        if self.state is not State.START:
            self.state = State.READY
        return replies.OK

    async def _noop(self, arg: str) -> Reply:
        return replies.OK  # RFC 5321 §4.1.1.9: a parameter is allowed and ignored

    async def _quit(self, arg: str) -> Reply:
        if arg:
            return replies.BAD_ARGS
        self.expect = Expect.CLOSE
        return _closing(self.opts.hostname)

    async def _help(self, arg: str) -> Reply:
        return r(214, "2.0.0", "Commands: " + " ".join(sorted(COMMANDS)),
                 "See RFC 5321 and docs/smtp.md", "End of HELP info")

    # -- ETRN (RFC 1985) -------------------------------------------------------------------
    async def _etrn(self, arg: str) -> Reply:
        if not arg:
            return r(501, "5.5.4", "Syntax: ETRN domain")
        if arg.startswith("#"):  # RFC 1985 §5.3: named queues are optional
            return r(458, "4.5.4", f"Unable to queue messages for node {arg[:64]}: named queues not supported")
        domain = arg[1:] if arg.startswith("@") else arg
        if not _DOMAIN.fullmatch(domain):
            return r(501, "5.5.4", "Syntax: ETRN domain")
        # A queue run costs us work and the remote hosts connections: only for clients
        # that may relay anyway (authenticated, or from trusted networks).
        if not (self.login or self.opts.trusted):
            return r(459, "4.7.1", f"Node {domain} not allowed: authenticate first")
        started = await self.backend.etrn(arg.lower())
        if started is None:
            return r(458, "4.3.0", f"Unable to queue messages for node {domain}")
        if started:
            return r(250, "2.0.0", f"Queuing for node {domain} started")
        return r(251, "2.0.0", f"OK, no messages waiting for node {domain}")

    # -- VRFY / EXPN (RFC 5321 §3.5, §7.3) ------------------------------------------------
    def _lookup_arg(self, arg: str) -> Path | None:
        text = arg if arg.startswith("<") else f"<{arg}>"
        try:
            path, rest = parse_path(text)
        except AddressError:
            return None
        return None if rest or policy.routing_hazard(path) else path

    async def _vrfy(self, arg: str) -> Reply:
        if not arg:
            return replies.BAD_ARGS
        if not self.opts.vrfy:
            # RFC 5321 §3.5.3: 252 when the server will not verify.
            return r(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
        path = self._lookup_arg(arg)
        if path is None:
            return r(501, "5.1.3", "Bad address syntax")
        if not await self.backend.is_local_domain(path.domain):
            return r(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
        if await self.backend.resolve(path) is None:
            return replies.NO_SUCH_USER
        return r(250, "2.1.5", f"<{path.address}>")

    async def _expn(self, arg: str) -> Reply:
        if not self.opts.expn:
            return replies.NOT_IMPLEMENTED
        if not arg:
            return replies.BAD_ARGS
        path = self._lookup_arg(arg)
        if path is None:
            return r(501, "5.1.3", "Bad address syntax")
        if not await self.backend.is_local_domain(path.domain):
            return r(550, "5.1.2", "Not a local list")
        members = await self.backend.expand(path.key)
        if not members:
            return replies.NO_SUCH_USER
        return r(250, "2.1.5", *(f"<{m}>" for m in members))  # RFC 5321 §3.5.2: one per line

    # -- STARTTLS (RFC 3207) ---------------------------------------------------------------
    async def _starttls(self, arg: str) -> Reply:
        if not self.opts.starttls or self.tls_active:
            return r(503, "5.5.1", "TLS already active" if self.tls_active else "STARTTLS not available")
        if arg:
            return r(501, "5.5.4", "Syntax: STARTTLS")  # RFC 3207 §4
        self.expect = Expect.TLS
        return r(220, "2.0.0", "Ready to start TLS")

    def tls_started(self, description: str | None) -> None:
        """RFC 3207 §4.2: forget everything learnt before the handshake."""
        self.expect = Expect.LINE
        self.tls_active = True
        self.tls_info = description
        self.state = State.START
        self.helo = ""
        self.esmtp = False
        self.txn = None
        self.login = None

    # -- AUTH (RFC 4954) ---------------------------------------------------------------
    async def _auth(self, arg: str) -> Reply:
        if self.login is not None:
            return r(503, "5.5.1", "Already authenticated")  # RFC 4954 §4
        if not self.opts.auth_available:
            return replies.NOT_IMPLEMENTED
        if not self.tls_active and not self.opts.allow_plaintext_auth:
            return replies.ENCRYPTION_REQUIRED  # RFC 4954 §6
        parts = arg.split()
        if not 1 <= len(parts) <= 2:
            return replies.BAD_ARGS
        mech: sasl.Mechanism | None = sasl.mechanism(parts[0])
        if mech is None and parts[0].upper() in self.opts.gssapi:
            mech = self.backend.gssapi_mechanism(parts[0])
        if mech is None:
            return r(504, "5.5.4", "Unrecognized authentication type")
        initial: bytes | None = None
        if len(parts) == 2:
            initial = sasl.decode_b64(parts[1], getattr(mech, "max_response", sasl.MAX_RESPONSE))
            if initial is None:
                return r(501, "5.5.2", "Cannot decode response")
        self._sasl = mech
        return await self._sasl_result(mech.step(initial))

    async def sasl_line(self, line: bytes) -> Reply:
        """One client response during AUTH."""
        mech = self._sasl
        assert mech is not None
        self.expect = Expect.LINE
        if sasl.is_cancel(line):
            self._sasl = None
            return self._done(r(501, "5.0.0", "Authentication cancelled"))  # RFC 4954 §4
        data = sasl.decode_b64(line, getattr(mech, "max_response", sasl.MAX_RESPONSE))
        if data is None:
            self._sasl = None
            return self._done(r(501, "5.5.2", "Cannot decode response"))
        return self._done(await self._sasl_result(mech.step(data)))

    async def _sasl_result(self, result: sasl.Challenge | sasl.Done | sasl.Failed | sasl.Identified) -> Reply:
        if isinstance(result, sasl.Challenge):
            self.expect = Expect.SASL
            return r(334, None, sasl.encode_b64(result.data))
        mech, self._sasl = self._sasl, None
        if isinstance(result, sasl.Failed):
            if mech is not None and mech.name in self.opts.gssapi:
                # A bad, expired or replayed ticket is a credential failure, not bad syntax.
                self.backend.gssapi_failed(mech.name, result.reason)
                return r(535, "5.7.8", "Authentication credentials invalid")
            return r(501, "5.5.2", "Malformed authentication data")
        if isinstance(result, sasl.Identified):
            outcome = await self.backend.authenticate_principal(result)
            if outcome.throttled:
                return r(454, "4.7.0", "Too many failed authentications, try again later")
            if outcome.login is None:
                return r(535, "5.7.8", "Authentication credentials invalid")
            self.login = outcome.login
            return r(235, "2.7.0", "Authentication successful")
        if result.authzid and result.authzid.lower() != result.username.lower():
            return r(535, "5.7.8", "Authentication credentials invalid")
        outcome = await self.backend.authenticate(result.username, result.password)
        if outcome.throttled:
            return r(454, "4.7.0", "Too many failed authentications, try again later")
        if outcome.login is None:
            return r(535, "5.7.8", "Authentication credentials invalid")
        self.login = outcome.login
        return r(235, "2.7.0", "Authentication successful")


async def _h_helo(s: Session, a: str) -> Reply:
    return await s._helo(a, esmtp=False)


async def _h_ehlo(s: Session, a: str) -> Reply:
    return await s._helo(a, esmtp=True)


# The one command table: verb → handler and the states where it is allowed. A verb
# used in another state gets the entry's out-of-state reply (503 by default).
COMMANDS: dict[str, Command] = {
    "HELO": Command(_h_helo, _NOT_BDAT),  # RFC 5321 §4.1.4: allowed any time, resets the transaction
    "EHLO": Command(_h_ehlo, _NOT_BDAT),
    "MAIL": Command(Session._mail, frozenset({State.READY})),
    "RCPT": Command(Session._rcpt, frozenset({State.MAIL, State.RCPT})),
    "DATA": Command(Session._data, frozenset({State.MAIL, State.RCPT})),
    "BDAT": Command(Session._bdat, frozenset({State.MAIL, State.RCPT, State.BDAT})),
    "RSET": Command(Session._rset, _ANY),
    "NOOP": Command(Session._noop, _ANY),
    "QUIT": Command(Session._quit, _ANY),
    "HELP": Command(Session._help, _ANY),
    "VRFY": Command(Session._vrfy, _NOT_BDAT),
    "EXPN": Command(Session._expn, _NOT_BDAT),
    "ETRN": Command(Session._etrn, frozenset({State.READY})),  # RFC 1985 §5: not inside a transaction
    "STARTTLS": Command(Session._starttls, frozenset({State.READY})),
    "AUTH": Command(Session._auth, frozenset({State.READY})),
}


def _counted(body: bytes) -> tuple[bytes, tuple[bytes, int]]:
    """The body with CRLF line ends, and (that body, its LF count) for ``Transaction.counted``."""
    out, lf = normalize_newlines_counted(body)
    return out, (out, lf)


def _decode_line(line: bytes) -> str | None:
    """Strip the line end; refuse NUL, bare CR and invalid UTF-8 (RFC 5321 §2.3.8)."""
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    if b"\r" in line or b"\n" in line or b"\0" in line:
        return None
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None
