"""The ``[outbound]`` section of postroom.toml, read into :class:`OutboundSettings`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..config import Config, Section, parse_duration, parse_hostport
from .stspolicy import MtaStsSettings, parse_settings as parse_mta_sts

# RFC 5321 §4.5.4.1: retries SHOULD be at least 30 minutes apart and give up after
# 4-5 days, and the parameters MUST be configurable. We try sooner at first (most
# failures are greylisting, which clears within minutes), then back off to 4 hours;
# the last step repeats.
DEFAULT_RETRY = (300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
RELAY_TLS = ("opportunistic", "required", "none")


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    resolver: tuple[str, int] | None = None  # None: the system's resolver
    port: int = 25
    relay_host: tuple[str, int] | None = None  # None: deliver to MX hosts
    relay_user: str = ""
    relay_password: str = ""
    relay_tls: str = "opportunistic"
    max_lifetime: float = 5 * 86400.0
    delay_warning: float = 4 * 3600.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY
    concurrency: int = 20
    per_domain_concurrency: int = 5
    connect_timeout: float = 30.0
    # RFC 5321 §4.5.3.2: minimum client timeouts (5 min for most, 10 min after DATA's end).
    command_timeout: float = 300.0
    data_timeout: float = 600.0
    poll_interval: float = 1.0
    helo_name: str = ""  # default: the top-level hostname
    source_address: str = ""  # bind outgoing connections to this address
    connection_idle: float = 5.0  # keep an idle connection this long for the next message
    messages_per_connection: int = 100
    mta_sts: MtaStsSettings = MtaStsSettings()  # the [mta_sts] section (docs/mta-sts.md)
    dane: bool = False  # RFC 7672 for direct delivery; needs a validating [dns] resolver (docs/outbound.md)
    # PostgreSQL queue: how long a node's claim on a recipient lasts (renewed while the attempt
    # runs); a killed node's mail waits this long before another node takes it over.
    lease: float = 300.0


def parse(cfg: Config, problems: list[str]) -> OutboundSettings:
    sec: Section = cfg.section("outbound", problems)
    d = OutboundSettings()

    def hostport(name: str, default_host: str) -> tuple[str, int] | None:
        value = sec.get(name, str, "")
        if not value.strip():
            return None
        try:
            return parse_hostport(value, default_host)
        except ValueError as exc:
            sec.problem(name, str(exc))
            return None

    resolver = hostport("resolver", "127.0.0.1")
    if resolver:
        try:
            ipaddress.ip_address(resolver[0])
        except ValueError:
            sec.problem("resolver", f"{resolver[0]!r} is not an IP address")
            resolver = None
    relay = hostport("relay_host", "")
    if relay and not relay[0]:
        sec.problem("relay_host", "missing host")
        relay = None
    if relay and relay[1] == 0:
        relay = (relay[0], 25)

    def duration(name: str, default: float, minimum: float = 0.0) -> float:
        v = sec.convert(name, parse_duration, default)
        if v < minimum:
            sec.problem(name, f"must be at least {minimum:g} seconds")
            return default
        return v

    retry: tuple[float, ...] = d.retry_schedule
    if "retry_schedule" in sec.data:
        steps = sec.strings("retry_schedule")
        try:
            parsed = tuple(parse_duration(s) for s in steps)
            if not parsed or any(p <= 0 for p in parsed):
                raise ValueError("needs at least one positive duration")
            retry = parsed
        except ValueError as exc:
            sec.problem("retry_schedule", str(exc))

    def positive(name: str, default: int) -> int:
        v = sec.get(name, int, default)
        if v < 1:
            sec.problem(name, "must be at least 1")
            return default
        return v

    port = sec.get("port", int, d.port)
    if not 1 <= port <= 65535:
        sec.problem("port", "must be between 1 and 65535")
        port = d.port
    s = OutboundSettings(
        resolver=resolver,
        port=port,
        relay_host=relay,
        relay_user=sec.get("relay_user", str, ""),
        relay_password=sec.get("relay_password", str, ""),
        relay_tls=sec.choice("relay_tls", RELAY_TLS, d.relay_tls),
        max_lifetime=duration("max_lifetime", d.max_lifetime, 1.0),
        delay_warning=duration("delay_warning", d.delay_warning),
        retry_schedule=retry,
        concurrency=positive("concurrency", d.concurrency),
        per_domain_concurrency=positive("per_domain_concurrency", d.per_domain_concurrency),
        connect_timeout=duration("connect_timeout", d.connect_timeout, 0.1),
        command_timeout=duration("command_timeout", d.command_timeout, 0.1),
        data_timeout=duration("data_timeout", d.data_timeout, 0.1),
        poll_interval=duration("poll_interval", d.poll_interval, 0.05),
        helo_name=sec.get("helo_name", str, "") or cfg.hostname,
        source_address=sec.get("source_address", str, ""),
        connection_idle=duration("connection_idle", d.connection_idle),
        messages_per_connection=positive("messages_per_connection", d.messages_per_connection),
        mta_sts=parse_mta_sts(cfg, problems),
        dane=sec.get("dane", bool, d.dane),
        lease=duration("lease", d.lease, 2.0),
    )
    if s.source_address:
        try:
            ipaddress.ip_address(s.source_address)
        except ValueError:
            sec.problem("source_address", f"{s.source_address!r} is not an IP address")
    if bool(s.relay_user) != bool(s.relay_password):
        sec.problem("relay_user", "relay_user and relay_password go together")
    if s.relay_user and not s.relay_host:
        sec.problem("relay_user", "set relay_host too (AUTH is only used with a smart host)")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def retry_delay(schedule: tuple[float, ...], attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based); the last step repeats."""
    return schedule[min(max(attempts, 1), len(schedule)) - 1]
