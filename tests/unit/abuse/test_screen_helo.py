"""HELO sanity helpers and the ``[screen]`` section's problems (``postroom check``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.abuse.screen import helo_literal, is_fqdn
from postroom.abuse.screen_settings import ScreenSettings, parse
from postroom.config import from_dict
from postroom.protocols import settings_parsers


@pytest.mark.parametrize("helo, ok", [
    ("mail.example.org", True), ("mail.example.org.", True), ("a-b.c_d.example", True),
    ("localhost", False), ("", False), ("1.2.3.4", False), ("mail..example.org", False),
    ("-mail.example.org", False), ("mäil.example.org", False), ("x" * 64 + ".org", False),
    ("[192.0.2.1]", False),
])
def test_is_fqdn(helo: str, ok: bool) -> None:
    assert is_fqdn(helo) is ok


@pytest.mark.parametrize("helo, address", [
    ("[192.0.2.1]", "192.0.2.1"), ("[IPv6:2001:db8::1]", "2001:db8::1"), ("[ipv6:2001:DB8::1]", "2001:db8::1"),
    ("192.0.2.1", "192.0.2.1"), ("mail.example.org", None), ("[mail.example.org]", None), ("[]", None),
])
def test_helo_literal(helo: str, address: str | None) -> None:
    assert helo_literal(helo) == address


def _cfg(screen: dict[str, object]) -> object:
    return from_dict({"hostname": "mx.example.org", "listeners": {"mx": {"protocol": "smtp", "address": "0.0.0.0:25"},
                      "sub": {"protocol": "submission", "address": "0.0.0.0:587"}},
                      "screen": screen}, Path("/nonexistent/postroom.toml"))


def test_defaults_screen_the_smtp_listeners_only() -> None:
    problems: list[str] = []
    s = parse(_cfg({}), problems)  # type: ignore[arg-type]
    assert problems == []
    assert s.listeners == ("mx",) and s.active and s.greet_pause == 0 and not s.greylist.enabled
    assert s == ScreenSettings(listeners=("mx",))


def test_problems_are_reported_by_postroom_check() -> None:
    cfg = _cfg({"dnsbl_sites": ["zen.spamhaus.org=127.0.0.[2..11]*3", "zen.spamhaus.org=127.0.0"],
                "no_ptr": "maybe", "listeners": ["sub"], "greet_pause": "2m", "colour": "blue",
                "greylist": {"delay": "5h", "ipv4_prefix": 40}})
    problems: list[str] = []
    for check in settings_parsers():
        check(cfg, problems)
    mine = [p for p in problems if p.startswith("screen.")]
    assert any(p.startswith("screen.dnsbl_sites[1]: ") and "four octets" in p for p in mine), mine
    assert any(p.startswith("screen.no_ptr: must be one of off, log, reject") for p in mine), mine
    assert any(p.startswith("screen.listeners: 'sub' is a submission listener") for p in mine), mine
    assert any(p.startswith("screen.greet_pause: ") for p in mine), mine
    assert "screen.colour: unknown key" in mine, mine
    assert any(p.startswith("screen.greylist.retry_window: must be longer") for p in mine), mine
    assert any(p.startswith("screen.greylist.ipv4_prefix: ") for p in mine), mine
