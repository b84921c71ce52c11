"""The ``[smtp]`` configuration section (documented in docs/smtp.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ..abuse.milter.settings import MilterSpec, parse_milters
from ..config import Config, parse_duration
from .policy import Network, parse_networks


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    vrfy: bool = False  # off: VRFY answers 252 without looking (RFC 5321 §3.5.3)
    expn: bool = False  # off: EXPN answers 502 5.5.1
    trusted_networks: tuple[Network, ...] = ()  # may relay without AUTH; none by default
    require_sender_match: bool = True  # submission: MAIL FROM must belong to the login
    allow_plaintext_auth: bool = False  # offer AUTH without TLS (only for tests/lab setups)
    max_recipients: int = 100  # per message; RFC 5321 §4.5.3.1.8 requires at least 100
    max_errors: int = 20  # error replies per session before 421 and disconnect
    data_timeout: float = 600.0  # RFC 5321 §4.5.3.2.6: 10 minutes for the DATA terminator
    # The message must keep arriving at this many bytes/s on average (Postfix's
    # smtpd_min_data_rate): DATA or a BDAT chunk gets data_timeout, plus a second per
    # min_data_rate bytes received. 0: data_timeout per read only, as before Postfix 3.7.
    min_data_rate: int = 500
    add_missing_headers: bool = True  # submission adds Date / Message-ID when missing
    banner: str = "ESMTP Postroom"
    milters: tuple[MilterSpec, ...] = ()  # content filters over the milter protocol (docs/abuse.md)


def parse(cfg: Config, problems: list[str]) -> SmtpSettings:
    sec = cfg.section("smtp", problems)
    d = SmtpSettings()
    nets, bad = parse_networks(sec.strings("trusted_networks"))
    for msg in bad:
        sec.problem("trusted_networks", msg)
    s = SmtpSettings(
        vrfy=sec.get("vrfy", bool, d.vrfy),
        expn=sec.get("expn", bool, d.expn),
        trusted_networks=tuple(nets),
        require_sender_match=sec.get("require_sender_match", bool, d.require_sender_match),
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        max_recipients=sec.get("max_recipients", int, d.max_recipients),
        max_errors=sec.get("max_errors", int, d.max_errors),
        data_timeout=sec.convert("data_timeout", parse_duration, d.data_timeout),
        min_data_rate=sec.get("min_data_rate", int, d.min_data_rate),
        add_missing_headers=sec.get("add_missing_headers", bool, d.add_missing_headers),
        banner=sec.get("banner", str, d.banner),
        milters=parse_milters(sec, tuple(x.name for x in cfg.listeners if x.protocol in ("smtp", "submission"))),
    )
    if s.max_recipients < 1:
        sec.problem("max_recipients", "must be at least 1")
    if s.min_data_rate < 0:
        sec.problem("min_data_rate", "must be 0 (off) or more")
    if s.max_errors < 1:
        sec.problem("max_errors", "must be at least 1")
    if any(c in s.banner for c in "\r\n"):
        sec.problem("banner", "must be one line")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)
