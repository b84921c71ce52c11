"""The [clamav] section and the forged-field removal of postroom.abuse.clamav (no clamd needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from postroom.abuse.clamav import ClamavSettings, parse, strip_our_fields
from postroom.config import from_dict

BASE: dict[str, Any] = {
    "hostname": "mx.example.test", "domains": ["example.test"], "storage": {"path": "data"},
    "listeners": {"mx": {"protocol": "smtp", "address": "127.0.0.1:25"},
                  "sub": {"protocol": "submission", "address": "127.0.0.1:587"},
                  "imap": {"protocol": "imap", "address": "127.0.0.1:143"}},
}


def settings(section: dict[str, Any]) -> tuple[ClamavSettings, list[str]]:
    problems: list[str] = []
    return parse(from_dict({**BASE, "clamav": section}, Path("/x.toml")), problems), problems


def test_off_by_default() -> None:
    s, problems = settings({})
    assert problems == [] and not s.enabled and s.on_error == "tempfail" and s.listeners is None


def test_every_key() -> None:
    s, problems = settings({"socket": "unix:/run/clamav/clamd.ctl", "timeout": "10s", "max_size": "5M",
                            "listeners": ["mx"], "on_error": "accept"})
    assert problems == []
    assert s == ClamavSettings("unix:/run/clamav/clamd.ctl", 10.0, 5 << 20, ("mx",), "accept")
    assert settings({"socket": "[::1]:3310"})[0].socket == "[::1]:3310"


def test_problems_are_reported() -> None:
    _, problems = settings({"socket": "unix:relative.sock", "timeout": "0s", "max_size": "lots",
                            "listeners": ["imap", "nope"], "on_error": "ignore", "sockett": "x"})
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == ["clamav.listeners", "clamav.listeners", "clamav.max_size", "clamav.on_error",
                    "clamav.socket", "clamav.sockett", "clamav.timeout"], problems
    assert settings({"socket": "127.0.0.1:99999"})[1] and settings({"socket": 3310})[1]


def test_forged_fields_are_removed_with_their_folded_lines() -> None:
    msg = (b"Received: by x\r\nX-Virus-Status: Clean\r\n\tstill the forged field\r\nSubject: hi\r\n"
           b"x-virus-scanned : by me\r\nX-Virus-Other: kept\r\n\r\nX-Virus-Status: body text stays\r\n")
    assert strip_our_fields(msg) == (b"Received: by x\r\nSubject: hi\r\nX-Virus-Other: kept\r\n\r\n"
                                     b"X-Virus-Status: body text stays\r\n")
    no_header = b"\r\nX-Virus-Status: in the body\r\n\r\n"
    assert strip_our_fields(no_header) == no_header
    plain = b"Subject: hi\r\n\r\nbody\r\n"
    assert strip_our_fields(plain) is plain  # the common case costs one search


@given(st.lists(st.sampled_from([b"X-Virus-Status: Clean\r\n", b" folded\r\n", b"Subject: s\r\n",
                                 b"X-Virus-Scanned: x\r\n", b"To: a@b\r\n"]), max_size=12),
       st.binary(max_size=50))
def test_strip_keeps_every_other_field_and_the_body(fields: list[bytes], body: bytes) -> None:
    msg = b"".join(fields) + b"\r\n" + body
    out = strip_our_fields(msg)
    assert out.endswith(b"\r\n" + body)
    assert b"x-virus-" not in out[: len(out) - len(body)].lower()
    kept = [f for f in fields if f in (b"Subject: s\r\n", b"To: a@b\r\n")]
    assert all(out.count(f) >= 1 for f in kept)
