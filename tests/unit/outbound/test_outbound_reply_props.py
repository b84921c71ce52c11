"""Property tests of the SMTP client's reply parser: a remote server controls every byte it reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.outbound.reply import MAX_LINE, Reply, ReplyError, ReplyParser, parse_ehlo

_codes = st.integers(min_value=200, max_value=599)
# Reply text: no line ends (they delimit lines); anything else a server might send.
_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=60)
_replies = st.lists(st.tuples(_codes, st.lists(_text, min_size=1, max_size=5)), min_size=1, max_size=6)


def _wire(code: int, lines: list[str]) -> bytes:
    out = b""
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out += f"{code}{sep}{line}\r\n".encode()
    return out


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@given(_replies, st.lists(st.integers(min_value=0), max_size=10))
@settings(max_examples=400)
def test_replies_come_back_whole_however_the_bytes_are_split(replies: list[tuple[int, list[str]]],
                                                            cuts: list[int]) -> None:
    data = b"".join(_wire(code, lines) for code, lines in replies)
    parser = ReplyParser()
    got: list[Reply] = []
    for chunk in _chunks(data, cuts):
        got += parser.feed(chunk)
    assert [(r.code, list(r.lines)) for r in got] == replies
    assert not parser.pending


@given(st.lists(st.binary(max_size=300), max_size=8))
@settings(max_examples=600)
def test_any_bytes_give_replies_or_a_reply_error(chunks: list[bytes]) -> None:
    parser = ReplyParser()
    try:
        for chunk in chunks:
            for reply in parser.feed(chunk):
                assert 200 <= reply.code <= 599
                assert reply.lines
                reply.status()  # the DSN status never fails on what a server sent
                parse_ehlo(reply).size_limit  # nor do the capabilities read from it
    except ReplyError:
        pass


@given(st.integers(min_value=1, max_value=3))
def test_a_line_without_end_is_bounded(parts: int) -> None:
    parser = ReplyParser()
    raised = False
    try:
        for _ in range(parts):
            parser.feed(b"2" * (MAX_LINE // 2 + 1))
    except ReplyError:
        raised = True
    assert raised == (parts * (MAX_LINE // 2 + 1) > MAX_LINE)


@given(st.lists(_text, max_size=8), st.text(max_size=12))
def test_ehlo_capabilities_never_fail(lines: list[str], size: str) -> None:
    caps = parse_ehlo(Reply(250, ("mx.example", *lines, f"SIZE {size}")))
    limit = caps.size_limit
    assert limit is None or limit > 0
    assert all(m == m.upper() for m in caps.auth_mechanisms)
