"""``[smtp] milters`` parsing (postroom.abuse.milter.settings)."""

from __future__ import annotations

import pytest

from postroom.abuse.milter.settings import MilterSpec, parse_milters, parse_socket
from postroom.config import Section


def parse(value: object, listeners: tuple[str, ...] | None = ("smtp", "submission")) -> tuple[
        tuple[MilterSpec, ...], list[str]]:
    problems: list[str] = []
    sec = Section({"milters": value}, "smtp", problems)
    return parse_milters(sec, listeners), problems


def test_sockets() -> None:
    assert parse_socket("unix:/run/opendkim.sock") == ("/run/opendkim.sock", "", 0)
    assert parse_socket("inet:127.0.0.1:8891") == (None, "127.0.0.1", 8891)
    assert parse_socket("inet:[::1]:11332") == (None, "::1", 11332)
    assert parse_socket("inet:localhost:1") == (None, "localhost", 1)
    for bad in ("8891", "unix:relative", "inet:host", "inet::1", "inet:h:0", "inet:h:65536", "tcp:h:1"):
        with pytest.raises(ValueError):
            parse_socket(bad)


def test_defaults_are_postfixs() -> None:
    (m,), problems = parse(["inet:127.0.0.1:8891"])
    assert not problems
    assert (m.default_action, m.connect_timeout, m.command_timeout, m.content_timeout, m.listeners) == \
        ("tempfail", 30.0, 30.0, 300.0, ())


def test_table_entries() -> None:
    (m,), problems = parse([{"socket": "unix:/s", "default_action": "accept", "content_timeout": "2m",
                             "listeners": ["smtp"]}])
    assert not problems
    assert (m.unix_path, m.default_action, m.content_timeout, m.listeners) == ("/s", "accept", 120.0, ("smtp",))


def test_problems_are_reported_with_their_key() -> None:
    specs, problems = parse(["nope", 3, {"default_action": "maybe", "socket": "inet:h:1", "listeners": ["imap"],
                                         "command_timeout": 0, "colour": "red"}, {}])
    assert len(specs) == 1
    text = "\n".join(problems)
    assert "smtp.milters[0]" in text and "smtp.milters[1]" in text
    assert "smtp.milters[2].default_action" in text and "smtp.milters[2].colour: unknown key" in text
    assert "smtp.milters[2].listeners: 'imap' is not an SMTP listener" in text
    assert "smtp.milters[2].command_timeout: must be more than 0" in text
    assert "smtp.milters[3].socket: missing" in text
    assert parse("inet:h:1")[1] == ["smtp.milters: expected a list, got 'inet:h:1'"]
