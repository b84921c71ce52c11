"""Framing of commands and literals (tokenizer), table-driven plus hypothesis."""

from hypothesis import given, strategies as st

from postroom.imap.tokenizer import Command, CommandFramer, LiteralTooLarge, NeedLiteral, first_words


def framer(limit=1000, total=10_000):
    return CommandFramer(lambda verb: (limit, total))


def test_single_line():
    f = framer()
    assert f.feed_line(b"a1 NOOP\r\n") == Command(b"a1 NOOP")
    assert not f.in_command


def test_bare_lf_accepted():
    assert framer().feed_line(b"a1 NOOP\n") == Command(b"a1 NOOP")


def test_sync_and_nonsync_literals():
    f = framer()
    assert f.feed_line(b"a LOGIN {5}\r\n") == NeedLiteral(5, True)
    f.feed_literal(b"alice")
    assert f.feed_line(b" {3+}\r\n") == NeedLiteral(3, False)
    f.feed_literal(b"pwd")
    assert f.feed_line(b"\r\n") == Command(b"a LOGIN {5}\r\nalice {3}\r\npwd")


def test_literal_limit_by_verb():
    f = CommandFramer(lambda verb: (100 if verb == b"APPEND" else 10, 10_000))
    assert f.feed_line(b"a APPEND INBOX {50}\r\n") == NeedLiteral(50, True)
    f.reset()
    assert f.feed_line(b"b LOGIN {50}\r\n") == LiteralTooLarge(b"b", 50, True)
    assert not f.in_command


def test_total_limit():
    f = framer(limit=100, total=150)
    assert isinstance(f.feed_line(b"a X {100}\r\n"), NeedLiteral)
    f.feed_literal(b"x" * 100)
    assert isinstance(f.feed_line(b" {100+}\r\n"), LiteralTooLarge)


def test_first_words():
    assert first_words(b"a1 uid fetch 1 flags") == (b"a1", b"UID FETCH")
    assert first_words(b"") == (b"", b"")


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5))
def test_literals_roundtrip(chunks):
    """Any octets in literals come out unchanged in the framed command."""
    f = framer()
    wire = b"t CMD"
    for c in chunks:
        ev = f.feed_line(wire + b" {%d}\r\n" % len(c))
        assert ev == NeedLiteral(len(c), True)
        f.feed_literal(c)
        wire = b""
    ev = f.feed_line(b"\r\n")
    assert isinstance(ev, Command)
    expected = b"t CMD" + b"".join(b" {%d}\r\n" % len(c) + c for c in chunks)
    assert ev.raw == expected
