"""The ``[screen]`` section: connection-time checks of strangers on the MX listener.

Parsing only (no I/O): the DNSBL/DNSWL site syntax is Postfix postscreen's
``postscreen_dnsbl_sites`` (``zone[=filter][*weight]``), so an admin can paste the
lines they already run, e.g. ``"zen.spamhaus.org=127.0.0.[2..11]*3"`` or
``"list.dnswl.org=127.0.[0..255].[1..3]*-5"``. The checks themselves live in
:mod:`postroom.abuse.screen`, greylisting in :mod:`postroom.abuse.greylist`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..config import Config, Listener, Section, parse_duration
from ..smtp.policy import Network, parse_networks

ACTIONS = ("off", "log", "reject")


@dataclass(frozen=True, slots=True)
class Site:
    """One ``zone[=filter][*weight]`` entry.

    ``octets`` holds, per octet of the A record a listing returns, the values that
    count; ``None`` (no ``=filter``) counts any answer except Spamhaus-style error
    codes (127.255.255.0/24: "you queried through a public resolver", not a listing).
    """

    zone: str
    octets: tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]] | None
    weight: int

    def matches(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        parts = ip.packed
        if self.octets is None:
            return not (parts[0] == 127 and parts[1] == 255 and parts[2] == 255)
        return all(p in allowed for p, allowed in zip(parts, self.octets))


_ZONE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*")
_OCTET = r"(\d{1,3}|\[[0-9.;]*\])"
_FILTER = re.compile(r"\.".join([_OCTET] * 4))
_RANGE = re.compile(r"(\d{1,3})(?:\.\.(\d{1,3}))?")


def _octet(text: str) -> frozenset[int]:
    """``7``, ``[2..11]`` or ``[2;4;9..11]`` (postscreen's octet patterns) → values."""
    if text.startswith("[") and text.endswith("]"):
        items = text[1:-1].split(";")
    elif text.isdigit():
        items = [text]
    else:
        raise ValueError(f"{text!r} is not a number, [low..high] or [a;b;...]")
    values: set[int] = set()
    for item in items:
        m = _RANGE.fullmatch(item)
        if not m:
            raise ValueError(f"{item!r} is not a number or low..high")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi > 255 or lo > hi:
            raise ValueError(f"{item!r} is not within 0..255 in ascending order")
        values.update(range(lo, hi + 1))
    return frozenset(values)


def parse_site(text: str) -> Site:
    """Parse one DNSBL/DNSWL entry; :class:`ValueError` says what is wrong."""
    rest, weight = text.strip(), 1
    if "*" in rest:
        rest, _, w = rest.rpartition("*")
        if not re.fullmatch(r"-?\d{1,4}", w):
            raise ValueError(f"{text!r}: weight {w!r} is not a whole number such as 3 or -5")
        weight = int(w)
        if weight == 0:
            raise ValueError(f"{text!r}: a weight of 0 counts for nothing")
    zone, eq, pattern = rest.partition("=")
    zone = zone.strip().rstrip(".").lower()
    if not _ZONE.fullmatch(zone) or "." not in zone:
        raise ValueError(f"{text!r}: {zone!r} is not a DNS zone such as zen.spamhaus.org")
    octets = None
    if eq:
        m = _FILTER.fullmatch(pattern.strip())
        if not m:
            raise ValueError(f"{text!r}: the filter must have four octets such as 127.0.0.[2..11]")
        parts = m.groups()
        try:
            a, b, c, d = (_octet(p) for p in parts)
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        octets = (a, b, c, d)
    return Site(zone, octets, weight)


@dataclass(frozen=True, slots=True)
class GreylistSettings:
    enabled: bool = False
    delay: float = 300.0  # a retry is accepted this long after the first attempt
    retry_window: float = 4 * 3600.0  # ... and only this long after it (else it starts over)
    keep: float = 35 * 86400.0  # a triplet (and a whitelisted client) kept this long after its last use
    whitelist_after: int = 5  # triplets passed by a client before it is never greylisted again
    ipv4_prefix: int = 24  # a client is its /24 (senders retry from another host of a pool)
    ipv6_prefix: int = 64
    exempt: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class ScreenSettings:
    listeners: tuple[str, ...] = ()  # default: every listener with protocol "smtp"
    # The machine itself (local programs, monitoring, the test suite) is never screened.
    exempt: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
    dnsbl_sites: tuple[Site, ...] = ()
    dnsbl_threshold: int = 1  # a combined score of at least this refuses the client
    dnsbl_whitelist_threshold: int = 0  # < 0: a score at or below it skips the other checks; 0: off
    dnsbl_action: str = "reject"  # "log": only log listed clients
    dnsbl_reject_at: str = "connect"  # or "rcpt" (as Postfix's smtpd_delay_reject)
    greet_pause: float = 0.0  # seconds of silence asked of a client before the greeting
    early_talker: str = "reject"
    no_ptr: str = "log"
    fcrdns: str = "log"
    helo_not_fqdn: str = "reject"
    helo_own: str = "reject"
    helo_literal: str = "log"
    greylist: GreylistSettings = field(default_factory=GreylistSettings)

    def screens(self, listener: str) -> bool:
        return listener in self.listeners

    #: Whether anything at all is checked (else no per-connection object is built): worked
    #: out once here, not at every connection (docs/smtp.md, "a sixth round").
    active: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "active", bool(self.dnsbl_sites or self.greylist.enabled
                                                or any(getattr(self, k) != "off" for k in _ACTION_KEYS)))


_ACTION_KEYS = ("early_talker", "no_ptr", "fcrdns", "helo_not_fqdn", "helo_own", "helo_literal")


def _positive(sec: Section, name: str, default: float, zero_ok: bool = False) -> float:
    value = sec.convert(name, parse_duration, default)
    if value < 0 or (value == 0 and not zero_ok):
        sec.problem(name, "must be positive" if not zero_ok else "must be 0 or more")
        return default
    return value


def _networks(sec: Section, name: str, default: tuple[Network, ...]) -> tuple[Network, ...]:
    if name not in sec.data:
        sec.seen.add(name)
        return default
    nets, bad = parse_networks(sec.strings(name))
    for msg in bad:
        sec.problem(name, msg)
    return tuple(nets)


def _greylist(sec: Section) -> GreylistSettings:
    d = GreylistSettings()
    g = GreylistSettings(
        enabled=sec.get("enabled", bool, d.enabled),
        delay=_positive(sec, "delay", d.delay, zero_ok=True),
        retry_window=_positive(sec, "retry_window", d.retry_window),
        keep=_positive(sec, "keep", d.keep),
        whitelist_after=sec.get("whitelist_after", int, d.whitelist_after),
        ipv4_prefix=sec.get("ipv4_prefix", int, d.ipv4_prefix),
        ipv6_prefix=sec.get("ipv6_prefix", int, d.ipv6_prefix),
        exempt=_networks(sec, "exempt", d.exempt),
    )
    if g.retry_window <= g.delay:
        sec.problem("retry_window", "must be longer than delay")
    if g.whitelist_after < 0:
        sec.problem("whitelist_after", "must be 0 (never) or more")
    if not 0 <= g.ipv4_prefix <= 32:
        sec.problem("ipv4_prefix", "must be between 0 and 32")
    if not 0 <= g.ipv6_prefix <= 128:
        sec.problem("ipv6_prefix", "must be between 0 and 128")
    sec.finish()
    return g


def parse(cfg: Config, problems: list[str]) -> ScreenSettings:
    sec = cfg.section("screen", problems)
    d = ScreenSettings()
    known = {lst.name: lst for lst in cfg.listeners}
    default_listeners = tuple(n for n, lst in known.items() if lst.protocol == "smtp")
    listeners = sec.strings("listeners", default_listeners)
    for name in listeners if "listeners" in sec.data else ():
        lst: Listener | None = known.get(name)
        if lst is None:
            sec.problem("listeners", f"no listener named {name!r}")
        elif lst.protocol != "smtp":
            sec.problem("listeners", f"{name!r} is a {lst.protocol} listener; only smtp listeners are screened")
    sites = []
    for i, text in enumerate(sec.strings("dnsbl_sites")):
        try:
            sites.append(parse_site(text))
        except ValueError as exc:
            sec.problem(f"dnsbl_sites[{i}]", str(exc))
    actions = {k: sec.choice(k, ACTIONS, getattr(d, k)) for k in _ACTION_KEYS}
    s = ScreenSettings(
        listeners=listeners,
        exempt=_networks(sec, "exempt", d.exempt),
        dnsbl_sites=tuple(sites),
        dnsbl_threshold=sec.get("dnsbl_threshold", int, d.dnsbl_threshold),
        dnsbl_whitelist_threshold=sec.get("dnsbl_whitelist_threshold", int, d.dnsbl_whitelist_threshold),
        dnsbl_action=sec.choice("dnsbl_action", ("log", "reject"), d.dnsbl_action),
        dnsbl_reject_at=sec.choice("dnsbl_reject_at", ("connect", "rcpt"), d.dnsbl_reject_at),
        greet_pause=_positive(sec, "greet_pause", d.greet_pause, zero_ok=True),
        greylist=_greylist(sec.sub("greylist")),
        **actions,  # type: ignore[arg-type]
    )
    if s.dnsbl_threshold < 1:
        sec.problem("dnsbl_threshold", "must be at least 1")
    if s.dnsbl_whitelist_threshold > 0:
        sec.problem("dnsbl_whitelist_threshold", "must be negative (or 0: off)")
    if s.greet_pause > 60:
        sec.problem("greet_pause", "must be at most 60s (clients give up on a silent server)")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


async def stop_services(ctx: object) -> None:
    """Close the greylist state (a database pool with PostgreSQL) as the server stops."""
    from .greylist import stop_services as stop_greylist

    await stop_greylist(ctx)  # type: ignore[arg-type]


def settings_for(ctx: object) -> ScreenSettings:
    """Parsed once per config (``ctx.state`` is cleared on SIGHUP)."""
    state: dict[str, object] = ctx.state  # type: ignore[attr-defined]
    s = state.get("screen")
    if not isinstance(s, ScreenSettings):
        s = parse(ctx.config, [])  # type: ignore[attr-defined]
        state["screen"] = s
    return s
