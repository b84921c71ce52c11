"""Per-client SMTP rate limits (issue #20): slow a flood down, then refuse it.

Events are counted in sliding windows (:mod:`postroom.abuse.counters`) against keys:

- the client's IP and its network (/24 for IPv4, /64 for IPv6): connections, messages
  (MAIL), recipients (RCPT), errors (5xx replies sent) and AUTH failures;
- the authenticated user: messages and recipients, in total and to remote recipients
  (a stolen password must not send 100,000 spams in an hour);
- the sender's domain (MAIL FROM of unauthenticated mail): messages.

Past ``tarpit_from`` of a client limit the replies to that client are delayed (an
asyncio sleep, growing to ``tarpit_delay`` at the limit: the worker serves everyone
else meanwhile); at the limit the client gets ``421 4.7.0`` and the connection closes,
before the greeting or as the reply to MAIL/RCPT. A user past an outbound limit gets
``450 4.7.0`` for the recipient (the session goes on; the MUA retries later) and the
admin a warning in the log. An event refused is not counted: a client that keeps
knocking is let in again as its window slides, at the limit's rate.

Loopback and ``[smtp] trusted_networks`` are exempt (``[ratelimit] exempt``): the check
is not even built for them, so local programs and the test suite pay nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import log
from ..config import Config, parse_duration
from ..smtp.policy import Network, is_trusted, parse_networks
from ..smtp.replies import Reply, r
from .counters import Ask, Counters, open_store
from .guard import Check, ConnInfo

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..net.connection import Connection
    from ..smtp.transaction import Peer, Rcpt, Transaction

logger = log.get("abuse")


@dataclass(frozen=True, slots=True)
class Limit:
    count: int  # events allowed in the window; 0: no limit
    window: float  # seconds


def parse_limit(value: object) -> Limit:
    """``"100/1m"`` (100 events per minute), ``0`` or ``"off"`` (no limit); ValueError else."""
    if value == 0 or value == "off":
        return Limit(0, 60.0)
    if isinstance(value, str) and "/" in value:
        n, _, w = value.partition("/")
        n = n.strip()
        if n.isascii() and n.isdigit():
            window = parse_duration(w.strip())
            if window < 10:
                raise ValueError(f"{value!r}: the window must be at least 10s")
            return Limit(int(n), window)
    raise ValueError(f"{value!r} is not a rate such as \"100/1m\" (COUNT/WINDOW) or \"off\"")


# (config key, default): the key is "<scope>_<event>", and so is the counter's key prefix
# ("ip:connections:192.0.2.7"). Defaults: docs/abuse.md "Rate limits" says why each.
DEFAULTS: dict[str, str] = {
    "ip_connections": "100/1m",
    "ip_messages": "2000/1h",
    "ip_recipients": "5000/1h",
    "ip_errors": "100/10m",
    "ip_auth_failures": "30/10m",
    "net_connections": "300/1m",
    "net_messages": "6000/1h",
    "net_recipients": "15000/1h",
    "sender_messages": "5000/1h",
    "user_messages": "1000/1h",
    "user_recipients": "3000/1h",
    "user_remote_messages": "500/1h",
    "user_remote_recipients": "1000/1h",
}
DEFAULT_EXEMPT = ("127.0.0.1/32", "::1/128")
_DEFAULT_LIMITS = {name: parse_limit(value) for name, value in DEFAULTS.items()}
# "ip_connections" → "ip:connections:", the counter key's prefix (its value follows).
_PREFIX = {name: name.replace("_", ":", 1) + ":" for name in DEFAULTS}


@dataclass(frozen=True, slots=True)
class RateSettings:
    enabled: bool = True
    exempt: tuple[Network, ...] = ()
    limits: dict[str, Limit] = field(default_factory=dict)
    tarpit_from: float = 0.5  # fraction of a client limit from which replies are delayed
    tarpit_delay: float = 5.0  # seconds of delay at the limit (the most a reply waits)
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64

    def limit(self, name: str) -> Limit:
        lim = self.limits.get(name)
        return lim if lim is not None else _DEFAULT_LIMITS[name]


def parse(cfg: Config, problems: list[str]) -> RateSettings:
    sec = cfg.section("ratelimit", problems)
    d = RateSettings()
    nets, bad = parse_networks(sec.strings("exempt", DEFAULT_EXEMPT))
    for msg in bad:
        sec.problem("exempt", msg)
    limits = {name: sec.convert(name, parse_limit, parse_limit(default)) for name, default in DEFAULTS.items()}
    s = RateSettings(
        enabled=sec.get("enabled", bool, d.enabled),
        exempt=tuple(nets),
        limits=limits,
        tarpit_from=sec.get("tarpit_from", float, d.tarpit_from),
        tarpit_delay=sec.convert("tarpit_delay", parse_duration, d.tarpit_delay),
        ipv4_prefix=sec.get("ipv4_prefix", int, d.ipv4_prefix),
        ipv6_prefix=sec.get("ipv6_prefix", int, d.ipv6_prefix),
    )
    if not 0 < s.tarpit_from <= 1:
        sec.problem("tarpit_from", "must be above 0 and at most 1 (1: no delay before the limit)")
    if s.tarpit_delay > 60:
        sec.problem("tarpit_delay", "must be at most 60s (a client gives up after a few minutes: RFC 5321 §4.5.3.2)")
    if not 8 <= s.ipv4_prefix <= 32:
        sec.problem("ipv4_prefix", "must be between 8 and 32")
    if not 16 <= s.ipv6_prefix <= 128:
        sec.problem("ipv6_prefix", "must be between 16 and 128")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def client_keys(ip: str, s: RateSettings) -> tuple[str, str]:
    """The client's address (IPv4-mapped IPv6 as IPv4) and its network, as key values."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = s.ipv4_prefix if addr.version == 4 else s.ipv6_prefix
    return str(addr), str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def tarpit_delay(counts: Iterable[int], asks: Iterable[Ask], s: RateSettings) -> float:
    """Seconds to hold the reply: 0 below ``tarpit_from`` of every limit, growing to
    ``tarpit_delay`` at the limit."""
    worst = 0.0
    for n, a in zip(counts, asks):
        soft = a.limit * s.tarpit_from
        if n >= soft and a.limit > soft:
            worst = max(worst, (n - soft + 1) / (a.limit - soft))
    return min(worst, 1.0) * s.tarpit_delay


# -- per process: settings (re-read on SIGHUP) and the counters -------------------------

_counters: dict[int, Counters] = {}  # id(ServerContext) → its counters (opened at start)


def settings_for(ctx: ServerContext) -> RateSettings:
    s = ctx.state.get("ratelimit")
    if not isinstance(s, RateSettings):
        s = ctx.state["ratelimit"] = parse(ctx.config, [])
    return s


async def start_services(ctx: ServerContext) -> None:
    if settings_for(ctx).enabled:
        counters = Counters(open_store(ctx.config))
        await counters.open()
        _counters[id(ctx)] = counters


async def stop_services(ctx: ServerContext) -> None:
    c = _counters.pop(id(ctx), None)
    if c is not None:
        await c.close()


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    """The guard's factory: None for exempt clients and when limits are off."""
    if not info.ip or info.trusted:
        return None
    counters = _counters.get(id(ctx))
    if counters is None:
        return None
    s = settings_for(ctx)
    if not s.enabled or is_trusted(info.ip, s.exempt):
        return None
    try:
        ip, net = client_keys(info.ip, s)
    except ValueError:  # not an IP (a Unix socket): nothing to key on
        return None
    return RateLimits(ctx.config.hostname, s, counters, info, ip, net)


_WHAT = {"connections": "connections", "messages": "messages", "recipients": "recipients", "errors": "errors",
         "auth_failures": "authentication failures"}


_WHOSE = {"ip": "your address", "net": "your network", "sender": "your sender domain"}


def _refusal(hostname: str, key: str) -> Reply:
    scope, event, _value = key.split(":", 2)
    # RFC 5321 §4.2.2: 421 <domain> Service not available, closing transmission channel
    return r(421, "4.7.0", f"{hostname} Too many {_WHAT[event]} from {_WHOSE[scope]}, try again later",
             close=True)


class RateLimits(Check):
    """One connection's view of the limits (module doc)."""

    name = "ratelimit"

    def __init__(self, hostname: str, s: RateSettings, counters: Counters, info: ConnInfo, ip: str,
                 net: str) -> None:
        self.hostname = hostname
        self.s = s
        self.counters = counters
        self.info = info
        self.ip = ip
        self.net = net
        # The transaction whose message is already counted against the user (and whether
        # as a remote one): a message counts once, with its first (remote) recipient.
        self._txn: Transaction | None = None
        self._txn_counted = False
        self._txn_remote = False

    def _ask(self, name: str, value: str, add: bool = True) -> Ask | None:
        lim = self.s.limit(name)
        if not lim.count:
            return None
        return Ask(_PREFIX[name] + value, lim.count, lim.window, add)

    def _client_asks(self, event: str) -> list[Ask]:
        return [a for a in (self._ask(f"ip_{event}", self.ip), self._ask(f"net_{event}", self.net)) if a]

    async def _take(self, asks: list[Ask], client: int | None = None, also: Sequence[str] = ()) -> Reply | None:
        """Count an event against ``asks`` (the first ``client`` of them the client's, the
        rest the user's): a refusal past a limit, else the tarpit's delay, then None."""
        if not asks:
            return None
        client = len(asks) if client is None else client
        counts = await self.counters.take(asks, also=also)
        for i, (n, a) in enumerate(zip(counts, asks)):
            if n < a.limit:
                continue
            if i < client:
                logger.info("%s rate limit %s: %d in %gs", self.info.tag, a.key, n, a.window)
                return _refusal(self.hostname, a.key)
            # The admin must notice a user hitting an outbound limit: a stolen password?
            logger.warning("%s user %s reached the sending limit %s (%d in %gs)",
                           self.info.tag, a.key.split(":", 2)[2], a.key, n, a.window)
            return r(450, "4.7.0", "Sending limit reached for your account, try again later")
        delay = tarpit_delay(counts[:client], asks[:client], self.s)
        if delay > 0:
            await asyncio.sleep(delay)
        return None

    async def connect(self, conn: Connection) -> Reply | None:
        asks = self._client_asks("connections")
        # Errors and AUTH failures are counted as they happen (replied, auth_failed) and
        # refuse the client's next connections while over their limit.
        for name in ("ip_auth_failures", "ip_errors"):  # a 535 is both: named as the first
            a = self._ask(name, self.ip, add=False)
            if a is not None:
                asks.append(a)
        # The client's MAIL and RCPT counters come in the same read: one query per
        # connection of a new client instead of three per message.
        also = [_PREFIX[f"{scope}_{event}"] + value for scope, value in (("ip", self.ip), ("net", self.net))
                for event in ("messages", "recipients")]
        return await self._take(asks, also=also)

    async def mail(self, peer: Peer, txn: Transaction) -> Reply | None:
        asks = self._client_asks("messages")
        if peer.login is None and txn.sender.domain:
            a = self._ask("sender_messages", txn.sender.domain.lower())
            if a is not None:
                asks.append(a)
        return await self._take(asks)

    async def rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        asks = self._client_asks("recipients")
        client = len(asks)
        user = peer.login
        remote = bool(rcpt.resolved.remote)
        if user is not None:
            if self._txn is not txn:  # a new message: counted with its first recipient
                self._txn, self._txn_counted, self._txn_remote = txn, False, False
            key = user.lower()
            for name, wanted in (("user_recipients", True), ("user_remote_recipients", remote),
                                 ("user_messages", not self._txn_counted),
                                 ("user_remote_messages", remote and not self._txn_remote)):
                a = self._ask(name, key) if wanted else None
                if a is not None:
                    asks.append(a)
        refusal = await self._take(asks, client)
        if refusal is None and user is not None:
            self._txn_counted = True
            self._txn_remote = self._txn_remote or remote
        return refusal

    def _count(self, name: str) -> None:
        a = self._ask(name, self.ip)
        if a is not None:
            self.counters.add(a.key, a.window)

    def auth_failed(self, user: str) -> None:
        self._count("ip_auth_failures")

    def replied(self, reply: Reply) -> None:
        if reply.code >= 500:
            self._count("ip_errors")


