"""The pure parts of the NNTP engine (postroom.nntp.proto): no server needed."""

from __future__ import annotations

import calendar

import pytest

from postroom.nntp.proto import (
    MAX_NUMBER,
    CommandError,
    Reply,
    is_message_id,
    listing,
    parse_command,
    parse_date_time,
    parse_range,
    split_article,
)


def test_parse_command() -> None:
    cmd = parse_command(b"authinfo pass two  words\r\n")
    assert cmd.verb == "AUTHINFO" and cmd.args == ("pass", "two", "words") and cmd.rest == "pass two  words"
    assert parse_command(b"LIST\tACTIVE\r\n").args == ("ACTIVE",)
    for bad in (b"\r\n", b"  \r\n", b"GR\x00UP\r\n", b"\xff\r\n", b"L-IST\r\n", b"A" * 30 + b"\r\n"):
        with pytest.raises(CommandError):
            parse_command(bad)


def test_parse_range() -> None:
    assert parse_range("5") == (5, 5)
    assert parse_range("5-") == (5, MAX_NUMBER)
    assert parse_range("5-9") == (5, 9)
    assert parse_range("9-5") == (9, 5)  # valid, empty
    for bad in ("", "-5", "a", "5-a", "1" * 17, "5--6", "+5"):
        assert parse_range(bad) is None


def test_message_id() -> None:
    assert is_message_id("<a@b>")
    for bad in ("a@b", "<>", "<a b@c>", "<a>b>", "<" + "a" * 250 + ">", "<\x7f@b>"):
        assert not is_message_id(bad)


def test_dates() -> None:
    assert parse_date_time("20261206", "101112", "GMT") == calendar.timegm((2026, 12, 6, 10, 11, 12, 0, 0, 0))
    assert parse_date_time("261206", "101112", "gmt") == parse_date_time("20261206", "101112", "GMT")
    assert parse_date_time("991231", "000000", "GMT") == calendar.timegm((1999, 12, 31, 0, 0, 0, 0, 0, 0))
    for args in (("2026120", "101112", None), ("20261206", "1011", None), ("20261306", "000000", None),
                 ("20261206", "250000", None), ("20261206", "000000", "EST"), ("2026120a", "000000", None)):
        assert parse_date_time(*args) is None
    assert parse_date_time("20261206", "101112", None) is not None  # local time


def test_replies_and_listing() -> None:
    assert Reply(211, "1 2 3 g").encode() == b"211 1 2 3 g\r\n"
    assert Reply(500, "bad\r\ninjected").encode() == b"500 bad  injected\r\n"
    assert listing([".a", "b"]) == b"..a\r\nb\r\n.\r\n"
    assert listing([]) == b".\r\n"
    assert split_article(b"A: 1\r\nB: 2\r\n\r\nbody\r\n") == (b"A: 1\r\nB: 2", b"body\r\n")
    assert split_article(b"A: 1\r\n") == (b"A: 1", b"")
