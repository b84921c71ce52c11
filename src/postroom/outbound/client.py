"""Asyncio SMTP client for delivery: the I/O around :mod:`postroom.outbound.reply`.

One :class:`SmtpClient` is one connection; :meth:`SmtpClient.send` runs one mail
transaction and may be called again on the same connection (the pool in
:mod:`postroom.outbound.delivery` reuses connections per host).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Sequence

from ..net.tls import client_context
from .api import Envelope, Recipient
from ..wire.dotstuff import normalize_newlines, stuff
from ..wire.xtext import encode as xtext
from .reply import Capabilities, Reply, ReplyError, ReplyParser, parse_ehlo
from .tlsrpt import STARTTLS_NOT_SUPPORTED, classify


class SmtpError(Exception):
    """A failure that ends the use of this host for now.

    ``reply`` is the server's reply when there is one; ``permanent`` tells whether the
    message should bounce (5xx) rather than move on to the next host / be deferred.
    """

    def __init__(self, message: str, reply: Reply | None = None, status: str = "4.4.2",
                 permanent: bool = False, tls_failure: str = "") -> None:
        super().__init__(message)
        self.reply = reply
        self.tls_failure = tls_failure  # RFC 8460 §4.3.1 result type when verified TLS failed
        self.status = reply.status() if reply else status
        self.permanent = permanent if reply is None else reply.permanent


@dataclass(frozen=True, slots=True)
class Transaction:
    """Replies of one transaction; ``data`` is the reply after the final dot (or to DATA)."""

    mail: Reply
    rcpts: tuple[Reply | None, ...]  # None: not sent (transaction ended early)
    data: Reply | None


@dataclass(frozen=True, slots=True)
class Auth:
    user: str
    password: str


class SmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                 command_timeout: float = 300.0, data_timeout: float = 600.0) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer  # "mx.example.org [192.0.2.1]" for DSN Remote-MTA and logs
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.parser = ReplyParser()
        self.replies: deque[Reply] = deque()
        self.caps = Capabilities({}, esmtp=False)
        self.tls = False
        self.verified = False  # TLS with a certificate valid for the host name (starttls="verify")
        self.dane = False  # the peer's chain matched its TLSA records (set by the runner, RFC 7672)
        self.broken = False
        self.transactions = 0

    # -- connection setup --------------------------------------------------------
    @classmethod
    async def connect(cls, address: str, port: int, *, name: str, helo: str, connect_timeout: float = 30.0,
                      command_timeout: float = 300.0, data_timeout: float = 600.0, source_address: str = "",
                      starttls: str = "opportunistic", auth: Auth | None = None,
                      tls_context: ssl.SSLContext | None = None) -> "SmtpClient":
        """Connect, read the greeting, EHLO (or HELO), STARTTLS if offered, AUTH if asked.

        ``starttls="verify"`` (MTA-STS, RFC 8461 §4.2) requires STARTTLS and a certificate
        valid for ``name`` under ``tls_context`` (default: the system's trust store).
        ``starttls="dane"`` (RFC 7672) requires STARTTLS and leaves the certificate to the
        caller's TLSA check (:meth:`peer_chain`)."""
        local = (source_address, 0) if source_address else None
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(address, port, local_addr=local, limit=1 << 20)
        except (OSError, asyncio.TimeoutError) as exc:
            raise SmtpError(f"cannot connect to {name} [{address}]:{port}: {exc or 'timeout'}",
                            status="4.4.1") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(reader, writer, f"{name} [{address}]", command_timeout, data_timeout)
        try:
            await client._setup(helo, starttls, auth, name, tls_context)
        except BaseException:
            client.close()
            raise
        return client

    async def _setup(self, helo: str, starttls: str, auth: Auth | None, name: str = "",
                     tls_context: ssl.SSLContext | None = None) -> None:
        # RFC 5321 §3.1: the server speaks first; anything but 220 means "not now".
        greeting = await self.read_reply(self.command_timeout)
        if greeting.code != 220:
            raise SmtpError(f"{self.peer} greeted with {greeting}", greeting)
        await self._hello(helo)
        if starttls != "none" and self.caps.has("STARTTLS"):
            reply = await self.command("STARTTLS")
            if reply.code == 220:
                verify = starttls == "verify"
                sni = verify or starttls == "dane"  # RFC 7672 §8.1: DANE clients send SNI
                try:
                    # RFC 7435: opportunistic TLS, so no certificate check; RFC 8461 §4.2 checks it.
                    async with asyncio.timeout(self.command_timeout):
                        await self.writer.start_tls(tls_context if verify and tls_context else
                                                    client_context(verify=verify),
                                                    server_hostname=name if sni else None)
                except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
                    self.broken = True
                    raise SmtpError(f"TLS handshake with {self.peer} failed: {exc}", status="4.7.5",
                                    tls_failure=classify(exc) if sni else "") from None
                self.tls = True
                self.verified = verify
                # RFC 3207 §4.2: forget everything learnt before TLS and EHLO again.
                self.parser = ReplyParser()
                await self._hello(helo)
        if starttls == "required" and not self.tls:
            raise SmtpError(f"{self.peer} does not offer STARTTLS (relay_tls = required)", status="4.7.4")
        if starttls == "verify" and not self.tls:
            raise SmtpError(f"{self.peer} does not offer STARTTLS (required by the domain's MTA-STS policy)",
                            status="4.7.4", tls_failure=STARTTLS_NOT_SUPPORTED)
        if starttls == "dane" and not self.tls:
            raise SmtpError(f"{self.peer} does not offer STARTTLS (required by its DANE TLSA records)",
                            status="4.7.4", tls_failure=STARTTLS_NOT_SUPPORTED)
        if auth is not None:
            await self._auth(auth)

    def peer_chain(self) -> list[bytes]:
        """The DER certificates the peer sent, leaf first (``[]`` without TLS).

        Python 3.13 has ``SSLObject.get_unverified_chain``; 3.11 and 3.12 only have the
        C object's method, used when present; else the leaf alone (enough for DANE-EE)."""
        obj = self.writer.get_extra_info("ssl_object")
        if obj is None:
            return []
        get = getattr(obj, "get_unverified_chain", None) or getattr(getattr(obj, "_sslobj", None),
                                                                     "get_unverified_chain", None)
        if get is not None:
            try:
                der = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
                return [c if isinstance(c, bytes) else c.public_bytes(der) for c in get() or []]
            except (ssl.SSLError, ValueError, AttributeError):
                pass
        leaf = obj.getpeercert(binary_form=True)
        return [leaf] if leaf else []

    async def _hello(self, helo: str) -> None:
        reply = await self.command(f"EHLO {helo}")
        if reply.code == 250:
            self.caps = parse_ehlo(reply)
            return
        if reply.code == 421:
            raise SmtpError(f"{self.peer} refused EHLO: {reply}", reply)
        # RFC 5321 §4.1.1.1 / §3.2: a server that does not know EHLO gets HELO.
        reply = await self.command(f"HELO {helo}")
        if reply.code != 250:
            raise SmtpError(f"{self.peer} refused HELO: {reply}", reply)
        self.caps = Capabilities({}, esmtp=False)

    async def _auth(self, auth: Auth) -> None:
        mechs = self.caps.auth_mechanisms
        if "PLAIN" in mechs:
            token = base64.b64encode(f"\0{auth.user}\0{auth.password}".encode()).decode()
            reply = await self.command(f"AUTH PLAIN {token}", secret=True)
        elif "LOGIN" in mechs:
            reply = await self.command("AUTH LOGIN")
            for value in (auth.user, auth.password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(value.encode()).decode(), secret=True)
        else:
            raise SmtpError(f"{self.peer} offers no AUTH PLAIN or LOGIN", status="4.7.0")
        if reply.code != 235:
            # RFC 4954 §6: 535 is a bad password; keep the mail queued and let the admin fix it.
            raise SmtpError(f"{self.peer} refused authentication: {reply}", status=reply.status("7.8"),
                            permanent=False)

    # -- reply/command I/O -------------------------------------------------------
    async def read_reply(self, timeout: float | None = None) -> Reply:
        while not self.replies:
            try:
                async with asyncio.timeout(timeout or self.command_timeout):
                    data = await self.reader.read(65536)
            except (OSError, asyncio.TimeoutError) as exc:
                self.broken = True
                raise SmtpError(f"{self.peer}: {exc.__class__.__name__} while reading reply",
                                status="4.4.2") from None
            if not data:
                self.broken = True
                raise SmtpError(f"{self.peer} closed the connection", status="4.4.2")
            try:
                self.replies.extend(self.parser.feed(data))
            except ReplyError as exc:
                self.broken = True
                raise SmtpError(f"{self.peer} sent a malformed reply: {exc}", status="4.5.0") from None
        return self.replies.popleft()

    async def _write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.command_timeout):
                await self.writer.drain()
        except (OSError, asyncio.TimeoutError) as exc:
            self.broken = True
            raise SmtpError(f"{self.peer}: {exc.__class__.__name__} while sending", status="4.4.2") from None

    async def command(self, line: str, secret: bool = False) -> Reply:
        await self._write(line.encode("utf-8") + b"\r\n")
        return await self.read_reply()

    # -- one transaction ---------------------------------------------------------
    def mail_params(self, env: Envelope, size: int) -> list[str]:
        params = []
        caps = self.caps
        if caps.has("SIZE"):
            params.append(f"SIZE={size}")  # RFC 1870 §6
        if env.body_8bit and caps.has("8BITMIME"):
            params.append("BODY=8BITMIME")  # RFC 6152 §2
        if env.smtputf8 and caps.has("SMTPUTF8"):
            params.append("SMTPUTF8")  # RFC 6531 §3.4
        if caps.has("DSN"):  # RFC 3461 §4.3, §4.4: passed on only when the next hop offers DSN
            if env.ret:
                params.append(f"RET={env.ret}")
            if env.envid:
                params.append(f"ENVID={xtext(env.envid)}")
        return params

    def rcpt_params(self, rcpt: Recipient) -> list[str]:
        if not self.caps.has("DSN"):
            return []
        params = []
        if rcpt.notify:
            params.append("NOTIFY=" + ",".join(rcpt.notify))  # RFC 3461 §4.1
        if rcpt.orcpt:
            kind, _, addr = rcpt.orcpt.partition(";")
            params.append(f"ORCPT={kind};{xtext(addr)}")  # RFC 3461 §4.2
        return params

    def check_message(self, env: Envelope, size: int) -> None:
        """Refusals we can make before sending anything (permanent: another try won't help)."""
        limit = self.caps.size_limit
        if limit is not None and size > limit:
            raise SmtpError(f"message of {size} bytes exceeds {self.peer}'s limit of {limit}",
                            status="5.3.4", permanent=True)
        if env.smtputf8 and not self.caps.has("SMTPUTF8"):
            # RFC 6531 §3.4: no downgrade; the message cannot be relayed to this host.
            raise SmtpError(f"{self.peer} does not support SMTPUTF8", status="5.6.7", permanent=True)

    async def send(self, env: Envelope, rcpts: Sequence[Recipient], raw: bytes) -> Transaction:
        self.check_message(env, len(raw))
        self.transactions += 1
        mail_line = " ".join([f"MAIL FROM:<{env.sender}>", *self.mail_params(env, len(raw))])
        rcpt_lines = [" ".join([f"RCPT TO:<{r.address}>", *self.rcpt_params(r)]) for r in rcpts]
        if self.caps.has("PIPELINING"):
            # RFC 2920 §3.1: MAIL, the RCPTs and DATA go out in one write; replies come in order.
            await self._write("".join(f"{x}\r\n" for x in (mail_line, *rcpt_lines, "DATA")).encode("utf-8"))
            mail = await self.read_reply()
            replies = tuple([await self.read_reply() for _ in rcpt_lines])
            data = await self.read_reply()
            if data.code != 354:
                if mail.ok:
                    await self._rset()
                return Transaction(mail, replies, data)
            if not any(r.ok for r in replies):
                # RFC 2920 §3.1 says the server should have refused DATA; end it empty.
                await self._write(b".\r\n")
                await self.read_reply(self.data_timeout)
                return Transaction(mail, replies, None)
        else:
            mail = await self.command(mail_line)
            if not mail.ok:
                await self._rset()
                return Transaction(mail, tuple(None for _ in rcpts), None)
            replies_l: list[Reply] = []
            for line in rcpt_lines:
                replies_l.append(await self.command(line))
            replies = tuple(replies_l)
            if not any(r.ok for r in replies):
                await self._rset()
                return Transaction(mail, replies, None)
            data = await self.command("DATA")
            if data.code != 354:
                await self._rset()
                return Transaction(mail, replies, data)
        # RFC 5321 §2.3.8 (CRLF only) and §4.5.2 (transparency)
        await self._write(stuff(normalize_newlines(raw)))
        final = await self.read_reply(self.data_timeout)
        return Transaction(mail, replies, final)

    async def _rset(self) -> None:
        try:
            reply = await self.command("RSET")
            if reply.code != 250:
                self.broken = True
        except SmtpError:
            self.broken = True

    async def quit(self) -> None:
        if not self.broken:
            try:
                async with asyncio.timeout(5):
                    await self.command("QUIT")
            except (SmtpError, asyncio.TimeoutError):
                pass
        self.close()

    def close(self) -> None:
        self.broken = True
        try:
            self.writer.close()
        except Exception:  # already gone
            pass
