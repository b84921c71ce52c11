"""FETCH BINARY / BINARY.PEEK / BINARY.SIZE and APPEND literal8 (RFC 3516 §6 formal syntax)."""

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.parser import Reader
from postroom.imap.parser import args as A
from postroom.imap.parser.fetch import BodySection, parse_fetch_atts


@pytest.mark.parametrize("text,expected,name", [
    (b"BINARY[]", BodySection(peek=False, kind="BINARY"), b"BINARY[]"),
    (b"binary.peek[1.2]", BodySection(peek=True, part=(1, 2), kind="BINARY"), b"BINARY[1.2]"),
    (b"BINARY[3]<10.5>", BodySection(peek=False, part=(3,), partial=(10, 5), kind="BINARY"), b"BINARY[3]<10>"),
    (b"BINARY.SIZE[2]", BodySection(peek=True, part=(2,), kind="BINARY.SIZE"), b"BINARY.SIZE[2]"),
    (b"BINARY.SIZE[]", BodySection(peek=True, kind="BINARY.SIZE"), b"BINARY.SIZE[]"),
])
def test_binary_atts(text, expected, name):
    r = Reader(text)
    [att] = parse_fetch_atts(r)
    assert r.at_end()
    assert att == expected and att.response_name() == name and att.binary
    assert att.sets_seen == (text.upper().startswith(b"BINARY[") )


@pytest.mark.parametrize("text", [b"BINARY[1.MIME]", b"BINARY[TEXT]", b"BINARY[HEADER]", b"BINARY[0]",
                                  b"BINARY[1.]", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE", b"BINARY[1",
                                  b"BINARY.SIZE[1]<0.1>", b"BINARY[1]<0.0>"])
def test_binary_bad(text):
    with pytest.raises(ParseError):
        r = Reader(text)
        parse_fetch_atts(r)
        r.end()


def test_append_literal8():
    r = Reader(b" INBOX (\\Seen) ~{3}\r\na\x00b")
    a = A.append(r)
    assert a.message == b"a\x00b" and a.flags == frozenset({"\\Seen"})
    assert A.append(Reader(b" INBOX {2}\r\nab")).message == b"ab"
    for bad in (b" INBOX ~x", b" INBOX ~", b" INBOX ~~{1}\r\na"):
        with pytest.raises(ParseError):
            A.append(Reader(bad))
