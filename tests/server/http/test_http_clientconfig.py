"""Table tests of the pure part: which servers are offered, and which domain a request names."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config import from_dict
from postroom.http.clientconfig import domain_from_host, offers, split_address


def config(listeners: dict[str, dict[str, str]]) -> object:
    return from_dict({"hostname": "mail.example.org", "domains": ["example.org"], "listeners": listeners},
                     Path("/nonexistent/postroom.toml"))


def test_offers_tls_only_best_first() -> None:
    cfg = config({
        "smtp": {"address": "0.0.0.0:25"},
        "submission": {"address": "0.0.0.0:587"},
        "submissions": {"address": "0.0.0.0:465"},
        "imap": {"address": "0.0.0.0:143", "tls": "none"},
        "imaps": {"address": "0.0.0.0:993"},
        "pop3": {"address": "0.0.0.0:110"},
        "pop3s": {"address": "0.0.0.0:0"},          # port 0: offered on the port it got
        "extra": {"address": "0.0.0.0:0", "protocol": "imap", "tls": "implicit"},  # not bound: left out
        "https": {"address": "0.0.0.0:443"},
    })
    got = [(o.kind, o.port, o.tls) for o in offers(cfg, {"pop3s": ("0.0.0.0", 40995)})]  # type: ignore[arg-type]
    assert got == [("imap", 993, "implicit"), ("pop3", 40995, "implicit"), ("pop3", 110, "starttls"),
                   ("smtp", 465, "implicit"), ("smtp", 587, "starttls")]
    assert {o.host for o in offers(cfg, {})} == {"mail.example.org"}  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("joe@example.org", ("joe", "example.org")),
    ("Joe.Bloggs+tag@EXAMPLE.org.", ("Joe.Bloggs+tag", "example.org")),
    ("  joe@example.org ", ("joe", "example.org")),
    ("jörg@bücher.example", ("jörg", "xn--bcher-kva.example")),
    ("joe", None),
    ("@example.org", None),
    ("joe@", None),
    ("joe@localhost", None),           # no dot: not a domain anyone configures a client for
    ("joe@-bad.example", None),
    ("jo e@example.org", None),
    ('"quoted"@example.org', None),
    ("a" * 65 + "@example.org", None),
    ("joe@exa_mple.org", None),
])
def test_split_address(text: str, expected: tuple[str, str] | None) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize("host,expected", [
    ("autoconfig.example.org", "example.org"),
    ("autodiscover.example.org:443", "example.org"),
    ("mta-sts.example.org", "example.org"),
    ("Example.Org.", "example.org"),
    ("[::1]:443", None),
    ("", None),
    (None, None),
    ("bad host", None),
])
def test_domain_from_host(host: str | None, expected: str | None) -> None:
    assert domain_from_host(host) == expected
