"""rspamd at the end of DATA, through its HTTP protocol (``POST /checkv2``).

```toml
[rspamd]
url = "http://127.0.0.1:11333"            # the normal worker; unset: no scanning
controller_url = "http://127.0.0.1:11334" # the controller, for junk training (postroom.abuse.training)
password = ""                             # the controller's password (sent as Password:)
timeout = "20s"                           # per request, connection included
listeners = []                            # listener names; [] = every protocol = "smtp" listener
on_failure = "tempfail"                   # rspamd down/slow/erring: "tempfail" (451) or "accept"
junk_from = "add header"                  # lowest action that files local copies in Junk, or "never"
settings_id = ""                          # sent as Settings-ID (rspamd's settings module)
max_size = "20M"                          # larger messages are not scanned (rspamd's own default)
max_symbols_length = 512                  # X-Spam-Symbols is cut at a whole symbol
```

The check runs on port 25 listeners only unless ``listeners`` names others: mail our own
users submit is theirs to send, and rspamd would mostly score their outgoing mail by
rules written for inbound mail. Clients in ``[smtp] trusted_networks`` are ours too and
are not scanned, like ``postroom sendmail``.

Actions map to SMTP as rspamd's own milter maps them: reject → 550 5.7.1, soft reject and
greylist → 451 4.7.1, discard → accepted and delivered to nobody; every other action
adds the ``X-Spam-*`` fields (:mod:`postroom.abuse.spamresult`).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict

from .. import log
from ..config import Config, parse_duration, parse_size
from ..smtp.replies import Reply, r
from .guard import Check, ConnInfo, Content
from .spamresult import (
    BadReply,
    Verdict,
    parse_reply,
    replace_subject,
    spam_headers,
    strip_spam_headers,
)

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..smtp.transaction import Peer, Transaction

logger = log.get("abuse")

#: Actions in the order of how sure rspamd is; junk_from picks the first that files into Junk.
_JUNK_LEVELS = ("add header", "rewrite subject", "never")
_MAX_REPLY = 1 << 20  # a /checkv2 reply is a few KB; more is not rspamd


@dataclass(frozen=True, slots=True)
class RspamdSettings:
    url: str = ""
    controller_url: str = ""
    password: str = ""
    timeout: float = 20.0
    listeners: tuple[str, ...] = ()
    on_failure: str = "tempfail"
    junk_from: str = "add header"
    settings_id: str = ""
    max_size: int = 20 * 1024 * 1024
    max_symbols_length: int = 512

    def applies_to(self, listener: str, protocol: str) -> bool:
        if not self.url:
            return False
        return listener in self.listeners if self.listeners else protocol == "smtp"

    def files_into_junk(self, action: str) -> bool:
        if self.junk_from == "never":
            return False
        if action == "quarantine":
            return True
        levels = _JUNK_LEVELS[_JUNK_LEVELS.index(self.junk_from):-1]
        return action in levels


def _url(sec_value: str, sec: object, name: str) -> str:
    url = sec_value.rstrip("/")
    if url and not (url.startswith(("http://", "https://"))):
        sec.problem(name, "must be an http:// or https:// URL")  # type: ignore[attr-defined]
        return ""
    return url


def read_settings(cfg: Config, problems: list[str]) -> RspamdSettings:
    sec = cfg.section("rspamd", problems)
    d = RspamdSettings()
    s = RspamdSettings(
        url=_url(sec.get("url", str, ""), sec, "url"),
        controller_url=_url(sec.get("controller_url", str, ""), sec, "controller_url"),
        password=sec.get("password", str, ""),
        timeout=sec.convert("timeout", parse_duration, d.timeout),
        listeners=sec.strings("listeners"),
        on_failure=sec.choice("on_failure", ("tempfail", "accept"), d.on_failure),
        junk_from=sec.choice("junk_from", _JUNK_LEVELS, d.junk_from),
        settings_id=sec.get("settings_id", str, ""),
        max_size=sec.convert("max_size", parse_size, d.max_size),
        max_symbols_length=sec.get("max_symbols_length", int, d.max_symbols_length),
    )
    if s.timeout <= 0:
        sec.problem("timeout", "must be more than 0")
    if s.max_symbols_length < 40:
        sec.problem("max_symbols_length", "must be at least 40")
    if any(c in s.password + s.settings_id for c in "\r\n\0"):
        sec.problem("password", "password and settings_id must be one line")
    names = {lst.name for lst in cfg.listeners}
    for name in s.listeners:
        if name not in names:
            sec.problem("listeners", f"no listener is named {name!r}")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> RspamdSettings:
    """Parsed once per config (``ctx.state`` is cleared on SIGHUP)."""
    s = ctx.state.get("rspamd")
    if not isinstance(s, RspamdSettings):
        s = read_settings(ctx.config, [])
        ctx.state["rspamd"] = s
    return s


class RspamdError(Exception):
    """rspamd could not be asked or gave no usable answer (the text goes to the log only)."""


async def post(url: str, body: bytes, headers: CIMultiDict[str], timeout: float) -> bytes:
    """One POST to rspamd; the reply body of a 200, else :class:`RspamdError`.

    A session per request: rspamd is on loopback or the LAN, where a connection costs less
    than the bookkeeping of a pool that must be closed on every reload."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False) as http, \
                http.post(url, data=body, headers=headers) as resp:
            data = await resp.content.read(_MAX_REPLY + 1)
            if len(data) > _MAX_REPLY:
                raise RspamdError("reply too large")
            if resp.status != 200:
                raise RspamdError(f"HTTP {resp.status} {data[:200]!r}")
            return data
    except TimeoutError:
        raise RspamdError(f"no answer within {timeout:g}s") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise RspamdError(str(exc) or type(exc).__name__) from None


async def _hostname(ctx: ServerContext, ip: str) -> str | None:
    """The client's forward-confirmed reverse name, "unknown" without one, None when not
    asked: loopback and private clients are not looked up (no public PTR to find)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if not addr.is_global:
        return None
    from .. import resolver

    dns = resolver.shared(ctx.config)
    try:
        ptr = await dns.query(addr.reverse_pointer, "PTR")
        for rd in ptr or ():
            name = str(rd).rstrip(".")
            if ip in (await dns.addresses(name) or ()):
                return name
    except Exception as exc:  # noqa: BLE001 - a DNS failure costs rspamd one input, never the message
        logger.debug("rspamd: reverse lookup of %s failed: %s", ip, exc)
    return "unknown"


def check_headers(peer: Peer, txn: Transaction, queue_id: str, hostname: str | None,
                  settings: RspamdSettings) -> CIMultiDict[str]:
    """The request fields rspamd's protocol takes in place of what a milter would tell it."""
    h: CIMultiDict[str] = CIMultiDict()
    if peer.ip:
        h["IP"] = peer.ip
    if peer.helo:
        h["Helo"] = peer.helo
    if hostname:
        h["Hostname"] = hostname
    h["From"] = f"<{txn.sender.address}>"
    for rc in txn.rcpts:
        h.add("Rcpt", f"<{rc.path.address}>")
    if queue_id:
        h["Queue-Id"] = queue_id
    if peer.login:
        h["User"] = peer.login
    if settings.settings_id:
        h["Settings-ID"] = settings.settings_id
    for k, v in list(h.items()):
        if any(c in v for c in "\r\n\0"):  # never seen from our own parser; never sent
            del h[k]
    return h


class RspamdCheck(Check):
    name = "rspamd"

    def __init__(self, ctx: ServerContext, info: ConnInfo, settings: RspamdSettings) -> None:
        self.ctx = ctx
        self.info = info
        self.settings = settings

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        s = self.settings
        content.message, forged = strip_spam_headers(content.message)
        if forged:
            content.notes.append(f"rspamd-removed={forged}")
        if len(content.message) > s.max_size:
            content.notes.append("rspamd=skipped-size")
            return None
        started = time.monotonic()
        try:
            headers = check_headers(peer, txn, content.queue_id,
                                    await _hostname(self.ctx, peer.ip), s)
            verdict = parse_reply(await post(s.url + "/checkv2", content.message, headers, s.timeout))
        except (RspamdError, BadReply) as exc:
            return self._failed(content, exc, time.monotonic() - started)
        return self._apply(content, verdict)

    def _failed(self, content: Content, exc: Exception, took: float) -> Reply | None:
        logger.warning("%s rspamd at %s failed after %.1fs: %s; %s", self.info.tag, self.settings.url, took, exc,
                       "message deferred" if self.settings.on_failure == "tempfail" else "accepted unscanned")
        if self.settings.on_failure == "tempfail":
            content.notes.append("rspamd=unavailable")
            return r(451, "4.7.1", "Content scanner unavailable, try again later")
        content.notes.append("rspamd=unscanned")
        content.add_header("X-Spam-Status", "Unscanned")
        content.add_header("X-Spam-Action", "unscanned")
        return None

    def _apply(self, content: Content, v: Verdict) -> Reply | None:
        content.notes.append(f"rspamd={v.action.replace(' ', '_')}/{v.score:.2f}")
        if v.action == "reject":
            return r(550, "5.7.1", v.message or "Message rejected as spam")
        if v.action == "soft reject":
            return r(451, "4.7.1", v.message or "Try again later")
        if v.action == "greylist":
            return r(451, "4.7.1", v.message or "Greylisted, try again later")
        if v.action == "discard":
            content.discard = True
            return None
        if v.subject is not None:
            content.message = replace_subject(content.message, v.subject)
        for name, value in spam_headers(v, self.settings.max_symbols_length):
            content.add_header(name, value)
        if self.settings.files_into_junk(v.action):
            content.mailbox = "Junk"
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s rspamd %s score=%.2f symbols=%s", self.info.tag, v.action, v.score,
                         ",".join(n for n, _ in v.symbols[:20]))
        return None


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    """The guard's factory: None unless [rspamd] url is set and applies to this listener."""
    s = settings_for(ctx)
    if not info.ip or info.trusted or not s.applies_to(info.listener, info.protocol):
        return None
    return RspamdCheck(ctx, info, s)


async def stop_services(ctx: ServerContext) -> None:
    """Junk training's pending learn jobs end before the store closes (the runtime calls this)."""
    from . import training  # training imports this module

    await training.drain(ctx, 3.0)
