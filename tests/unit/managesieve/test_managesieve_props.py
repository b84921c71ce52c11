"""Property tests of the ManageSieve command framer and tokenizer (RFC 5804 §4): what a client
sends before and after login, so anything at all must end as a command or a ProtocolError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.managesieve.proto import (
    MAX_QUOTED,
    Args,
    Command,
    Framer,
    NeedLiteral,
    ProtocolError,
    TooLarge,
    literal,
    quote,
    single_string,
    text_arg,
    tokenize,
)

_verb = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,10}\Z")
_arg_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_args = st.lists(st.one_of(_arg_text, st.integers(min_value=0, max_value=9_999_999_999)), max_size=4)


def _limits(verb: bytes) -> tuple[int, int]:
    return 1000, 100_000


def _frame(wire: bytes, framer: Framer) -> list[Command | TooLarge]:
    """Feed ``wire`` as a server reads it: lines, and announced literals by their size."""
    out: list[Command | TooLarge] = []
    pos = 0
    while pos < len(wire):
        end = wire.find(b"\n", pos)
        if end < 0:
            break  # an unfinished line: the server would wait for more
        event = framer.feed_line(wire[pos:end + 1])
        pos = end + 1
        while isinstance(event, NeedLiteral):
            framer.feed_literal(wire[pos:pos + event.size])
            pos += event.size
            end = wire.find(b"\n", pos)
            if end < 0:
                return out
            event = framer.feed_line(wire[pos:end + 1])
            pos = end + 1
        out.append(event)
    return out


@given(_verb, _args)
@settings(max_examples=400)
def test_quoted_and_literal_arguments_round_trip(verb: str, args: list[str | int]) -> None:
    wire = verb.encode() + b"".join(
        b" " + (b"%d" % a if isinstance(a, int) else quote(a)) for a in args) + b"\r\n"
    [cmd] = _frame(wire, Framer(_limits))
    assert isinstance(cmd, Command) and not cmd.oversized
    parsed = tokenize(cmd.raw)
    assert parsed == Args(verb.upper(), tuple(a if isinstance(a, int) else a.encode() for a in args))
    for a, got in zip(args, parsed.args):
        if isinstance(a, str):
            assert text_arg(got) == a


@given(st.binary(max_size=2000))
def test_literal_bytes_come_back_exactly(data: bytes) -> None:
    [cmd] = _frame(b'PUTSCRIPT "s" ' + literal(data) + b"\r\n", Framer(lambda verb: (len(data), len(data))))
    assert isinstance(cmd, Command)
    assert tokenize(cmd.raw) == Args("PUTSCRIPT", (b"s", data))


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_any_command_line_tokenizes_or_fails_cleanly(raw: bytes) -> None:
    try:
        args = tokenize(raw)
    except ProtocolError as exc:
        assert str(exc)  # said to the client as it is
        return
    assert args.verb == args.verb.upper()
    assert all(not isinstance(a, bytes) or len(a) <= len(raw) for a in args.args)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_any_sasl_line_is_one_string_or_fails_cleanly(raw: bytes) -> None:
    try:
        value = single_string(raw)
    except ProtocolError as exc:
        assert str(exc)  # said to the client as it is
        return
    assert len(value) <= len(raw)
    assert raw.startswith((b'"', b"{"))  # only a quoted string or a literal is one string


@given(st.lists(st.binary(max_size=80).map(lambda b: b + b"\r\n"), max_size=6),
       st.integers(min_value=0, max_value=200))
@settings(max_examples=500)
def test_the_framer_keeps_every_literal_within_its_limits(lines: list[bytes], keep: int) -> None:
    framer = Framer(lambda verb: (keep, keep * 10))
    for line in lines:
        event = framer.feed_line(line)
        if isinstance(event, NeedLiteral):
            assert event.size <= keep * 10
            assert event.discard == (event.size > keep)
            framer.feed_literal(b"x" * event.size)
        elif isinstance(event, TooLarge):
            assert event.size > keep * 10
            assert not framer.in_command
        else:
            assert not framer.in_command
            try:
                tokenize(event.raw)
            except ProtocolError:
                pass


def test_quote_switches_to_a_literal_past_the_quoted_limit() -> None:
    assert quote("a" * MAX_QUOTED).startswith(b'"')
    assert quote("a" * (MAX_QUOTED + 1)).startswith(b"{")
    assert quote("two\r\nlines").startswith(b"{")
