"""Table tests of the sans-I/O ManageSieve core: framing, tokens, response encoding."""

from __future__ import annotations

import pytest

from postroom.managesieve.proto import (
    Args,
    Code,
    Command,
    Framer,
    NeedLiteral,
    ProtocolError,
    TooLarge,
    no,
    ok,
    quote,
    single_string,
    tokenize,
)


@pytest.mark.parametrize("raw,expected", [
    (b"CAPABILITY", Args("CAPABILITY", ())),
    (b"noop", Args("NOOP", ())),
    (b'NOOP "tag"', Args("NOOP", (b"tag",))),
    (b'HAVESPACE "my script" 1000', Args("HAVESPACE", (b"my script", 1000))),
    (b'PUTSCRIPT "a" {5}\r\nkeep;', Args("PUTSCRIPT", (b"a", b"keep;"))),
    (b'PUTSCRIPT {1}\r\na {0}\r\n', Args("PUTSCRIPT", (b"a", b""))),
    (b'RENAMESCRIPT "a\\"b" "c\\\\d"', Args("RENAMESCRIPT", (b'a"b', b"c\\d"))),
    (b'SETACTIVE ""', Args("SETACTIVE", (b"",))),
    (b'GETSCRIPT "\xc3\xa9t\xc3\xa9"', Args("GETSCRIPT", ("été".encode(),))),
])
def test_tokenize(raw: bytes, expected: Args) -> None:
    assert tokenize(raw) == expected


@pytest.mark.parametrize("raw,message", [
    (b"", "command name"),
    (b'"QUOTED"', "command name"),
    (b"NOOP  x", "Expected a string"),
    (b"NOOP x", "Expected a string"),
    (b'NOOP "open', "Unterminated"),
    (b'NOOP "a\\nb"', "Invalid escape"),
    (b'NOOP "a"b', "Expected a space"),
    (b'PUTSCRIPT "a" {9}\r\nkeep;', "shorter than announced"),
    (b'A "1" "2" "3" "4" "5"', "Too many arguments"),
    (b'NOOP "' + b"x" * 1100 + b'"', "too long"),
])
def test_tokenize_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        tokenize(raw)


def test_single_string() -> None:
    assert single_string(b'"AGEAYg=="') == b"AGEAYg=="
    assert single_string(b"{3}\r\nabc") == b"abc"
    for bad in (b"", b"abc", b'"a" "b"'):
        with pytest.raises(ProtocolError):
            single_string(bad)


def test_quote_and_replies() -> None:
    assert quote('a"b\\c') == b'"a\\"b\\\\c"'
    assert quote("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert quote("x" * 2000).startswith(b"{2000}\r\n")
    assert ok().status_line() == b"OK\r\n"
    assert ok("Done", Code.TAG, code_arg="t1").status_line() == b'OK (TAG "t1") "Done"\r\n'
    assert no("too big", Code.QUOTA_MAXSIZE).status_line() == b'NO (QUOTA/MAXSIZE) "too big"\r\n'
    assert ok("x", data=b'"a"\r\n').chunks() == [b'"a"\r\n', b'OK "x"\r\n']


def _limits(verb: bytes) -> tuple[int, int]:
    return (100, 1000) if verb == b"PUTSCRIPT" else (10, 10)


def test_framer_literals() -> None:
    f = Framer(_limits)
    assert f.feed_line(b"NOOP\r\n") == Command(b"NOOP")
    assert f.feed_line(b'PUTSCRIPT "a" {5+}\r\n') == NeedLiteral(5)
    assert f.in_command
    f.feed_literal(b"keep;")
    assert f.feed_line(b"\r\n") == Command(b'PUTSCRIPT "a" {5}\r\nkeep;')
    assert not f.in_command
    # The synchronizing form is read the same way (no continuation in ManageSieve).
    assert f.feed_line(b"PUTSCRIPT {1}\n") == NeedLiteral(1)
    f.feed_literal(b"a")
    assert f.feed_line(b" {0+}\r\n") == NeedLiteral(0)
    f.feed_literal(b"")
    assert tokenize(f.feed_line(b"\r\n").raw) == Args("PUTSCRIPT", (b"a", b""))  # type: ignore[union-attr]


def test_framer_limits() -> None:
    f = Framer(_limits)
    # Over the kept size but worth reading: dropped, and the command is marked.
    assert f.feed_line(b'PUTSCRIPT "a" {500+}\r\n') == NeedLiteral(500, discard=True)
    f.feed_literal(b"")
    assert f.feed_line(b"\r\n") == Command(b'PUTSCRIPT "a" {500}\r\n', oversized=True)
    # Far over: not read at all.
    assert f.feed_line(b'PUTSCRIPT "a" {5000+}\r\n') == TooLarge(5000)
    assert not f.in_command
    assert f.feed_line(b"NOOP {11+}\r\n") == TooLarge(11)
    # A literal marker inside a quoted string that ends the line is not a literal.
    assert f.feed_line(b'NOOP "{3}"\r\n') == Command(b'NOOP "{3}"')
