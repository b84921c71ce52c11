"""Virus scanning at the end of DATA through clamd (the ``[clamav]`` section).

Each message is streamed to clamd over a Unix or TCP socket with the INSTREAM command
(framing and reply parsing in :mod:`postroom.abuse.clamd`); one connection per scan, so
a clamd restart costs nothing but the scans in flight. A virus is refused with
``550 5.7.1`` at DATA: the sending MTA keeps the message and tells its sender, and we
store nothing that would need a quarantine. Clean mail gets ``X-Virus-Scanned`` and
``X-Virus-Status: Clean`` (any such fields the sender wrote are removed first, so a
Sieve rule or client that trusts them cannot be fooled).

When clamd is down, slow (``timeout``) or answers with an error, ``on_error`` decides:
``tempfail`` (the default) answers 451 4.7.1 so that the sender retries and no mail is
delivered unscanned; ``accept`` delivers with ``X-Virus-Status: Unscanned``. Either way
a warning is logged. A message larger than ``max_size`` (or than clamd's own
StreamMaxLength) is delivered unscanned and marked, as a permanent condition must not
be a temporary failure that the sender retries for days.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import log
from ..config import Config, parse_duration, parse_hostport, parse_size
from ..smtp.replies import Reply, r
from . import clamd
from .guard import Check, ConnInfo, Content
from .scanning import applies, cached, smtp_listeners

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..smtp.transaction import Peer, Transaction

logger = log.get("abuse")

ACTIONS = ("tempfail", "accept")
SCANNED = "X-Virus-Scanned"
STATUS = "X-Virus-Status"
TEMPFAIL = r(451, "4.7.1", "Virus scanner unavailable, try again later")


@dataclass(frozen=True, slots=True)
class ClamavSettings:
    socket: str = ""  # "unix:/run/clamav/clamd.ctl" or "host:port"; empty: scanning off
    timeout: float = 60.0  # the whole scan: connect, send, verdict
    max_size: int = 25 * 1024 * 1024  # clamd's default StreamMaxLength
    listeners: tuple[str, ...] | None = None  # None: every SMTP and submission listener
    on_error: str = "tempfail"

    @property
    def enabled(self) -> bool:
        return bool(self.socket)


def _parse_socket(value: object) -> str:
    if not isinstance(value, str):
        # ValueError, as Section.convert reports those as config problems.
        raise ValueError("expected a string: unix:/path or host:port")  # noqa: TRY004
    if value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise ValueError("unix: needs an absolute path (unix:/run/clamav/clamd.ctl)")
        return value
    if value:
        parse_hostport(value)  # raises ValueError with a clear message
    return value


def parse(cfg: Config, problems: list[str]) -> ClamavSettings:
    sec = cfg.section("clamav", problems)
    d = ClamavSettings()
    sock = sec.convert("socket", _parse_socket, d.socket)
    timeout = sec.convert("timeout", parse_duration, d.timeout)
    if timeout <= 0:
        sec.problem("timeout", "must be positive")
        timeout = d.timeout
    max_size = sec.convert("max_size", parse_size, d.max_size)
    if max_size <= 0:
        sec.problem("max_size", "must be positive")
        max_size = d.max_size
    listeners = smtp_listeners(sec, cfg)
    s = ClamavSettings(socket=sock, timeout=timeout, max_size=max_size, listeners=listeners,
                       on_error=sec.choice("on_error", ACTIONS, d.on_error))
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def settings_for(ctx: ServerContext) -> ClamavSettings:
    return cached(ctx, "clamav", ClamavSettings, parse)


class ClamdError(Exception):
    """clamd could not give a verdict (down, slow, or an error reply)."""


async def _connect(address: str) -> socket.socket:
    """A connected non-blocking socket to clamd.

    The loop's sock_* calls rather than streams: no transport and protocol objects per
    scan, which is 40 % less CPU for a typical message (measured with bench/smtp.py)."""
    loop = asyncio.get_running_loop()
    if address.startswith("unix:"):
        targets: list[tuple[int, Any]] = [(socket.AF_UNIX, address[5:])]
    else:
        host, port = parse_hostport(address)
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(family, addr) for family, _, _, _, addr in infos]
    error: OSError = OSError(f"{address}: no address")
    for family, addr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:  # cancelled (the timeout): no socket left open
            sock.close()
            raise
    raise error


async def scan(address: str, data: bytes, timeout: float) -> clamd.Verdict:
    """One INSTREAM scan; :class:`ClamdError` when there is no verdict within ``timeout``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            sock = await _connect(address)
            try:
                try:
                    for frame in clamd.frames(data):
                        await loop.sock_sendall(sock, frame)
                except ConnectionError:
                    pass  # clamd stops reading past StreamMaxLength and says so: read its reply
                reply = clamd.ReplyReader()
                while not reply.feed(chunk := await loop.sock_recv(sock, 4096)):
                    if not chunk:
                        break
                verdict = reply.verdict()
            finally:
                sock.close()
    except TimeoutError:
        raise ClamdError(f"no verdict within {timeout:g}s") from None
    except (OSError, ValueError) as exc:  # refused, reset, no such socket, oversized reply
        raise ClamdError(f"{type(exc).__name__}: {exc}") from None
    if verdict.status is clamd.Status.ERROR:
        raise ClamdError(f"clamd: {verdict.detail}")
    return verdict


_OURS = re.compile(rb"^x-virus-(scanned|status)[ \t]*:", re.IGNORECASE)


def strip_our_fields(message: bytes) -> bytes:
    """The message without X-Virus-Scanned/X-Virus-Status fields (and their folded lines)."""
    if message.startswith(b"\r\n"):
        return message  # no header at all
    end = message.find(b"\r\n\r\n")
    head_len = len(message) if end < 0 else end + 2
    head = message[:head_len]
    if b"x-virus-" not in head.lower():
        return message
    kept, dropping = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _OURS.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + message[head_len:]


class ClamavCheck(Check):
    name = "clamav"

    def __init__(self, settings: ClamavSettings, hostname: str, tag: str) -> None:
        self.s = settings
        self.hostname = hostname
        self.tag = tag

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        s = self.s
        size = len(content.message)
        if size > s.max_size:
            self._unscanned(content, "too large", f"{size} octets > max_size {s.max_size}")
            return None
        started = time.monotonic()
        try:
            verdict = await scan(s.socket, content.message, s.timeout)
        except ClamdError as exc:
            logger.warning("%s clamav: %s (%s); on_error=%s", self.tag, exc, s.socket, s.on_error)
            if s.on_error == "tempfail":
                content.notes.append("clamav=unavailable")
                return TEMPFAIL
            self._unscanned(content, "scanner unavailable", None)
            return None
        ms = (time.monotonic() - started) * 1000
        if verdict.status is clamd.Status.FOUND:
            content.notes.append(f"clamav=found({verdict.detail}) {ms:.0f}ms")
            return r(550, "5.7.1", f"Message contains a virus ({verdict.detail})")
        if verdict.status is clamd.Status.TOO_LARGE:
            self._unscanned(content, "too large", "over clamd's StreamMaxLength; lower [clamav] max_size")
            return None
        content.message = strip_our_fields(content.message)
        content.add_header(SCANNED, f"ClamAV on {self.hostname}")
        content.add_header(STATUS, "Clean")
        content.notes.append(f"clamav=clean {ms:.0f}ms")
        return None

    def _unscanned(self, content: Content, why: str, detail: str | None) -> None:
        if detail:
            logger.warning("%s clamav: not scanned, %s", self.tag, detail)
        content.message = strip_our_fields(content.message)
        content.add_header(STATUS, f"Unscanned ({why})")
        content.notes.append(f"clamav=unscanned({why})")


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    s = settings_for(ctx)
    if not s.enabled or not applies(s.listeners, info):
        return None
    return ClamavCheck(s, ctx.config.hostname, info.tag)
