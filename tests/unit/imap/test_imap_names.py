"""Mailbox names on the wire (RFC 3501 §5.1.3 modified UTF-7; RFC 6855 §3 UTF-8 after ENABLE)."""

import contextvars

import pytest
from hypothesis import given, strategies as st

from postroom.imap import names
from postroom.imap.errors import No, ParseError
from postroom.imap.parser import Reader
from postroom.imap.parser import args as A


def in_utf8(fn):
    """Run ``fn`` as a command of a session that enabled UTF8=ACCEPT (a fresh context)."""
    def run():
        names.set_utf8(True)
        return fn()
    return contextvars.copy_context().run(run)


def test_default_is_modified_utf7():
    assert names.encode("Entwürfe") == b"Entw&APw-rfe"
    assert names.decode(b"R&-D") == "R&D"
    assert names.quoted("a b") == b'"a b"'


def test_utf8_mode():
    assert in_utf8(lambda: names.decode("Entwürfe".encode())) == "Entwürfe"
    assert in_utf8(lambda: names.decode(b"R&D")) == "R&D"
    assert in_utf8(lambda: names.quoted('Entwürfe "x"')) == '"Entwürfe \\"x\\""'.encode()
    for bad in (b"a\xff", "a\u2028".encode(), b"a\x7f", "a\u0085".encode()):
        with pytest.raises(names.BadName):
            in_utf8(lambda: names.decode(bad))
    with pytest.raises(No):
        in_utf8(lambda: A.one_mailbox(Reader(b' "a\xff"')))
    assert not names.utf8()  # the context of the test itself is untouched


@given(st.text(min_size=1, max_size=40).filter(lambda s: not names._FORBIDDEN.search(s)))
def test_utf8_round_trip(name):
    assert in_utf8(lambda: names.decode(names.encode(name))) == name


def test_search_charset_and_append_utf8():
    with pytest.raises(ParseError):
        in_utf8(lambda: A.search(Reader(b" CHARSET UTF-8 ALL")))
    assert in_utf8(lambda: A.search(Reader(' SUBJECT "Grüße"'.encode()))).charset == "UTF-8"
    with pytest.raises(ParseError):
        A.append(Reader(b" INBOX UTF8 (~{1}\r\na)"))  # not enabled
    a = in_utf8(lambda: A.append(Reader(b" INBOX UTF8 (~{2}\r\n\xc3\xa9)")))
    assert a.message == b"\xc3\xa9"
    with pytest.raises(ParseError):
        in_utf8(lambda: A.append(Reader(b" INBOX UTF8 ({2}\r\n\xc3\xa9)")))
