"""The ``[nntp]`` config section.

```toml
[nntp]
allow_plaintext_auth = false   # AUTHINFO USER/PASS and SASL PLAIN/LOGIN only over TLS (RFC 4643 §2.2)
idle_timeout = "10m"           # after login; before it the [limits] pre-login timeouts apply
max_bad_commands = 20          # unknown or malformed commands before the server hangs up
max_auth_failures = 5          # failed logins on one connection before the server hangs up
path_host = ""                 # the name prepended to Path: (default: the server's hostname)
max_article_size = "1M"        # POST/IHAVE/TAKETHIS: larger articles are read and refused (441/437/439)
max_crosspost = 25             # groups one article may be posted to (Newsgroups:)
anonymous_read = false         # true: anonymous clients may also read groups whose read is "accounts"
history_days = 30              # how long rejected/expired Message-IDs stay in the history
admins = []                    # addresses that may cancel any article and approve moderated posts
feed_retry = ["30s", "1m", "5m", "15m", "1h"]   # outgoing feed: waits after a failed offer (last repeats)
feed_max_attempts = 100        # then the article is dropped from that peer's feed (logged)

[[nntp.peers]]                 # one table per peer (docs/nntp.md, "Peering")
name = "news.example.net"      # its Path identity: articles already carrying it are not sent
host = "news.example.net:119"  # where we feed it; empty: it only feeds us
tls = "none"                   # none | starttls | implicit
groups = "*,!local.*"          # wildmat of the groups we send it
streaming = true               # CHECK/TAKETHIS when it advertises STREAMING, else IHAVE
accept_from = ["192.0.2.7"]    # addresses/networks that may IHAVE/stream to us
account = ""                   # or: a logged-in account that counts as this peer
```

The first four keys mean what they mean in ``[pop3]`` and ``[managesieve]``
(:mod:`postroom.auth.session_settings`); NNTP has more keys, so it reads the section
itself. Other NNTP modules (peering) add their keys here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..auth.session_settings import LoginSessionSettings
from ..config import (
    TLS_MODES,
    Config,
    Section,
    parse_duration,
    parse_hostport,
    parse_size,
)
from ..news.wildmat import WildmatError, compile_wildmat

DEFAULT_MAX_ARTICLE_SIZE = 1024 * 1024
DEFAULT_FEED_RETRY = (30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True, slots=True)
class PeerSettings:
    """One ``[[nntp.peers]]`` table: a news server we exchange articles with (peering.py, feed.py)."""

    name: str  # its path identity (RFC 5537 §3.2)
    host: str = ""  # "" when we do not feed it
    port: int = 119
    tls: str = "none"
    groups: str = "*"
    streaming: bool = True
    accept_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    account: str = ""


@dataclass(frozen=True, slots=True)
class NntpSettings(LoginSessionSettings):
    # RFC 3977 §3.1 advises at least 3 minutes; readers keep sessions open while users read.
    idle_timeout: float = 600.0
    path_host: str = ""
    max_article_size: int = DEFAULT_MAX_ARTICLE_SIZE
    max_crosspost: int = 25
    anonymous_read: bool = False
    history_days: float = 30.0
    admins: tuple[str, ...] = ()
    peers: tuple[PeerSettings, ...] = ()
    feed_retry: tuple[float, ...] = DEFAULT_FEED_RETRY
    feed_max_attempts: int = 100


def read_settings(cfg: Config, problems: list[str]) -> NntpSettings:
    sec = cfg.section("nntp", problems)
    d = NntpSettings()
    path_host = sec.get("path_host", str, "").strip() or cfg.hostname
    s = NntpSettings(
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        idle_timeout=sec.convert("idle_timeout", parse_duration, d.idle_timeout),
        max_bad_commands=sec.get("max_bad_commands", int, d.max_bad_commands),
        max_auth_failures=sec.get("max_auth_failures", int, d.max_auth_failures),
        path_host=path_host,
        max_article_size=sec.convert("max_article_size", parse_size, d.max_article_size),
        max_crosspost=sec.get("max_crosspost", int, d.max_crosspost),
        anonymous_read=sec.get("anonymous_read", bool, d.anonymous_read),
        history_days=float(sec.get("history_days", (int, float), d.history_days)),
        peers=_peers(sec),
        feed_retry=_durations(sec, "feed_retry", d.feed_retry),
        feed_max_attempts=sec.get("feed_max_attempts", int, d.feed_max_attempts),
    )
    if s.idle_timeout < 180:
        sec.problem("idle_timeout", "must be at least 3m (RFC 3977 §3.1)")
    for name in ("max_bad_commands", "max_auth_failures", "max_crosspost", "feed_max_attempts"):
        if getattr(s, name) < 1:
            sec.problem(name, "must be at least 1")
    if s.max_article_size < 1024:
        sec.problem("max_article_size", "must be at least 1K")
    if s.history_days <= 0:
        sec.problem("history_days", "must be positive")
    # Path: entries are path-identities (RFC 5536 §3.1.5): no "!", spaces or controls.
    if not all(33 <= ord(c) <= 126 and c != "!" for c in path_host):
        sec.problem("path_host", f"not a valid Path identity: {path_host!r}")
    for i, a in enumerate(s.admins):
        if "@" not in a or " " in a:
            sec.problem(f"admins[{i}]", f"not an address: {a!r}")
    sec.finish()
    return s


def _durations(sec: Section, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    out = []
    for i, item in enumerate(sec.get(name, list, list(default))):
        try:
            out.append(parse_duration(item))
        except ValueError as exc:
            sec.problem(f"{name}[{i}]", str(exc))
    return tuple(out) or default


def _peers(sec: Section) -> tuple[PeerSettings, ...]:
    """The ``[[nntp.peers]]`` tables (peering.py accepts from them, feed.py sends to them)."""
    items = sec.get("peers", list, [])
    peers: list[PeerSettings] = []
    for i, item in enumerate(items):
        p = Section(item, f"{sec.key('peers')}[{i}]", sec.problems)
        name = p.get("name", str, "").strip()
        if not name or not all(33 <= ord(c) <= 126 and c != "!" for c in name):
            p.problem("name", f"a peer needs its Path identity (no '!' or spaces), got {name!r}")
        elif any(q.name == name for q in peers):
            p.problem("name", f"peer {name!r} is configured twice")
        host, port = "", 119
        tls = p.choice("tls", TLS_MODES, "none")
        if p.get("host", str, "").strip():
            try:
                host, port = parse_hostport(p.get("host", str, ""), "")
            except ValueError as exc:
                p.problem("host", str(exc))
            if not host:
                p.problem("host", "missing host name")
            if port == 0:
                port = 563 if tls == "implicit" else 119
        groups = p.get("groups", str, "*")
        try:
            compile_wildmat(groups)
        except WildmatError as exc:
            p.problem("groups", str(exc))
        nets = []
        for a in p.strings("accept_from"):
            try:
                nets.append(ipaddress.ip_network(a.strip(), strict=False))
            except ValueError:
                p.problem("accept_from", f"{a!r} is not an address or network")
        peers.append(PeerSettings(name=name, host=host, port=port, tls=tls, groups=groups,
                                  streaming=p.get("streaming", bool, True), accept_from=tuple(nets),
                                  account=p.get("account", str, "").strip().lower()))
        p.finish()
    return tuple(peers)


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)
