"""RFC 8474 OBJECTID in the FETCH, SEARCH and STATUS parsers."""

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.parser import Reader
from postroom.imap.parser.args import status_atts
from postroom.imap.parser.fetch import parse_fetch_atts
from postroom.imap.parser.search import parse_search


def test_fetch_objectid_items():
    assert parse_fetch_atts(Reader(b"EMAILID")) == ["EMAILID"]
    assert parse_fetch_atts(Reader(b"(uid emailid ThreadId)")) == ["UID", "EMAILID", "THREADID"]


def test_status_mailboxid():
    assert status_atts(Reader(b"(MESSAGES mailboxid)")) == ["MESSAGES", "MAILBOXID"]


@pytest.mark.parametrize("text,tree", [
    (b"EMAILID E12", ("emailid", "E12")),
    (b"emailid abc_DEF-09", ("emailid", "abc_DEF-09")),
    (b"THREADID T1", ("threadid", "T1")),
    (b"EMAILID " + b"x" * 255, ("emailid", "x" * 255)),
    (b"(EMAILID E1) SEEN", ("and", [("emailid", "E1"), ("flag", "\\Seen", True)])),
    (b"OR EMAILID E1 EMAILID E2", ("or", ("emailid", "E1"), ("emailid", "E2"))),
    (b"NOT THREADID T-1", ("not", ("threadid", "T-1"))),
])
def test_search_objectid_keys(text, tree):
    r = Reader(text)
    assert parse_search(r)[1] == tree
    r.end()


@pytest.mark.parametrize("bad", [b"EMAILID", b"EMAILID ", b"EMAILID E.1", b"EMAILID \"E1\"",
                                 b"EMAILID " + b"x" * 256, b"THREADID T1*", b"EMAILID E\xff"])
def test_search_objectid_keys_bad(bad):
    with pytest.raises(ParseError):
        r = Reader(bad)
        parse_search(r)
        r.end()
