"""RFC 8514 SAVEDATE in the FETCH and SEARCH parsers."""

from datetime import date

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.parser import Reader
from postroom.imap.parser.fetch import parse_fetch_atts
from postroom.imap.parser.search import parse_search


def test_fetch_savedate():
    assert parse_fetch_atts(Reader(b"SAVEDATE")) == ["SAVEDATE"]
    assert parse_fetch_atts(Reader(b"(uid savedate INTERNALDATE)")) == ["UID", "SAVEDATE", "INTERNALDATE"]


@pytest.mark.parametrize("text,tree", [
    (b"SAVEDBEFORE 1-Feb-2024", ("savedbefore", date(2024, 2, 1))),
    (b"savedon 29-Feb-2024", ("savedon", date(2024, 2, 29))),
    (b"SAVEDSINCE \"01-Jan-2020\"", ("savedsince", date(2020, 1, 1))),
    (b"SAVEDATESUPPORTED", ("all",)),
    (b"NOT SAVEDATESUPPORTED", ("not", ("all",))),
    (b"SAVEDSINCE 1-Jan-2020 SEEN", ("and", [("savedsince", date(2020, 1, 1)), ("flag", "\\Seen", True)])),
])
def test_search_saved_keys(text, tree):
    assert parse_search(Reader(text))[1] == tree


@pytest.mark.parametrize("bad", [b"SAVEDON", b"SAVEDBEFORE 32-Jan-2024", b"SAVEDSINCE x", b"SAVEDATESUPPORTEDX"])
def test_search_saved_keys_bad(bad):
    with pytest.raises(ParseError):
        r = Reader(bad)
        parse_search(r)
        r.end()
