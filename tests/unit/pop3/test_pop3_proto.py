"""Table-driven tests of the pure POP3 pieces: parsing, replies, stuffing, TOP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.pop3.proto import (
    Action, Challenge, Code, CommandError, Reply, err, listing, ok, parse_command,
    parse_msg_number, parse_non_negative, top_of,
)
from postroom.wire.dotstuff import DataReader, stuff, stuffed


@pytest.mark.parametrize("line, verb, args, rest", [
    (b"STAT\r\n", "STAT", (), ""),
    (b"stat\r\n", "STAT", (), ""),
    (b"LIST 1\r\n", "LIST", ("1",), "1"),
    (b"TOP 1 10\n", "TOP", ("1", "10"), "1 10"),
    (b"PASS my secret pw\r\n", "PASS", ("my", "secret", "pw"), "my secret pw"),
    (b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", "APOP",
     ("mrose", "c4c9334bac560ecc979e58001b3e22fb"), "mrose c4c9334bac560ecc979e58001b3e22fb"),
    ("USER j\u00f6rg\r\n".encode(), "USER", ("j\u00f6rg",), "j\u00f6rg"),
])
def test_parse_command(line: bytes, verb: str, args: tuple[str, ...], rest: str) -> None:
    cmd = parse_command(line)
    assert (cmd.verb, cmd.args, cmd.rest) == (verb, args, rest)


@pytest.mark.parametrize("line", [b"\r\n", b"\n", b"ST\0AT\r\n", b"1234\r\n", b"LI-ST\r\n",
                                  b"\xff\xfe\r\n", b"STAT\rX\r\n", b"A" * 40 + b"\r\n"])
def test_parse_command_rejects(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse_command(line)


@pytest.mark.parametrize("arg, n", [("1", 1), ("42", 42), ("0", None), ("-1", None), ("x", None),
                                    ("", None), ("\u0661", None), ("1" * 11, None)])
def test_msg_number(arg: str, n: int | None) -> None:
    assert parse_msg_number(arg) == n


def test_non_negative() -> None:
    assert parse_non_negative("0") == 0
    assert parse_non_negative("-0") is None


MSG = b"Subject: x\r\nFrom: a@b\r\n\r\nline1\r\nline2\r\n.line3\r\n"


@pytest.mark.parametrize("n, expected", [
    (0, b"Subject: x\r\nFrom: a@b\r\n\r\n"),
    (1, b"Subject: x\r\nFrom: a@b\r\n\r\nline1\r\n"),
    (3, MSG),
    (100, MSG),
])
def test_top_of(n: int, expected: bytes) -> None:
    assert top_of(MSG, n) == expected


def test_top_of_header_only() -> None:
    assert top_of(b"Subject: x\r\n", 5) == b"Subject: x\r\n"


def test_reply_encoding() -> None:
    assert ok().encode() == b"+OK\r\n"
    assert ok("2 320").encode() == b"+OK 2 320\r\n"
    assert err("locked", Code.IN_USE).encode() == b"-ERR [IN-USE] locked\r\n"
    assert ok("x", listing(["1 2", "3 4"])).encode() == b"+OK x\r\n1 2\r\n3 4\r\n.\r\n"
    assert ok("x", listing([])).encode() == b"+OK x\r\n.\r\n"
    assert Challenge("").encode() == b"+ \r\n"
    assert Reply(True, action=Action.CLOSE).action is Action.CLOSE


@pytest.mark.parametrize("raw", [
    b"", b"a", b".", b"\r\n", b"a\r\n", b".a\r\n", b"a\r\n.b\r\n", b"a\r\n.\r\n", b"a\r\n..\r\n",
    b"no end", b"a\r\nno end", b"a\n.bare LF dot\r\n", b"a\r\n.", b"x" * 5000 + b"\r\n.y\r\n",
    b"Subject: s\r\n\r\n" + b"line.\r\n" * 1000,
])
def test_stuffed_pieces_are_stuff(raw: bytes) -> None:
    # RETR and TOP send the pieces with one writev; they must be exactly stuff()'s bytes.
    parts = stuffed(raw)
    assert b"".join(parts) == stuff(raw)
    assert ok("n octets", parts).encode() == b"+OK n octets\r\n" + stuff(raw)
    if not raw.startswith(b".") and b"\n." not in raw and raw:
        assert parts[0] is raw  # sent as stored: no copy


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b".", b"\n", b"\r", b"a", b"..", b"\r\n.\r\n"]), max_size=30))
def test_stuffed_round_trip(pieces: list[bytes]) -> None:
    # What RETR sends is read back by an un-stuffing reader as the message (CRLF-terminated).
    raw = b"".join(pieces)
    wire = b"".join(stuffed(raw))
    assert wire == stuff(raw)
    reader = DataReader(max_size=1 << 20)
    assert reader.feed(wire) and reader.leftover == b""
    assert reader.body == (raw if not raw or raw.endswith(b"\r\n") else raw + b"\r\n")


def test_settings_problems() -> None:
    from pathlib import Path

    from postroom.config import from_dict
    from postroom.pop3.settings import Pop3Settings, read_settings

    def read(section: dict[str, object]) -> tuple[Pop3Settings, list[str]]:
        cfg = from_dict({"pop3": section}, Path("/tmp/x.toml"))
        problems: list[str] = []
        return read_settings(cfg, problems), problems

    s, problems = read({})
    assert s == Pop3Settings() and problems == []
    s, problems = read({"allow_plaintext_auth": True, "idle_timeout": "30m"})
    assert s.allow_plaintext_auth and s.idle_timeout == 1800 and problems == []
    _, problems = read({"idle_timeout": "soon", "max_bad_commands": 0, "allow_plaintext": True,
                        "allow_plaintext_auth": "yes"})
    assert any(p.startswith("pop3.idle_timeout:") for p in problems)
    assert any(p.startswith("pop3.max_bad_commands:") for p in problems)
    assert any(p.startswith("pop3.allow_plaintext: unknown key") for p in problems)
    assert any(p.startswith("pop3.allow_plaintext_auth:") for p in problems)
