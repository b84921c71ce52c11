"""Table tests: RFC 4731 RETURN options, RFC 5182 "$", RFC 5032 OLDER/YOUNGER."""

import pytest

from postroom.imap.errors import No, ParseError
from postroom.imap.parser import args
from postroom.imap.parser.base import Reader
from postroom.imap.parser.search import parse_search
from postroom.imap.parser.seqset import SAVED, SequenceSet


def search(text: bytes) -> args.SearchArgs:
    return args.search(Reader(b" " + text))


@pytest.mark.parametrize("text,returns,tree", [
    (b"ALL", None, ("all",)),
    (b"RETURN (MIN MAX) ALL", ("MIN", "MAX"), ("all",)),
    (b"RETURN () ALL", ("ALL",), ("all",)),
    (b"return (count count save) CHARSET UTF-8 SEEN", ("COUNT", "SAVE"), ("flag", "\\Seen", True)),
    (b"RETURN (SAVE) $", ("SAVE",), ("seq", SAVED)),
    (b"UID $", None, ("uid", SAVED)),
    (b"OLDER 10 YOUNGER 20", None, ("and", [("older", 10), ("younger", 20)])),
])
def test_parse(text, returns, tree):
    a = search(text)
    assert a.returns == returns and a.criteria == tree and a.refused is None


@pytest.mark.parametrize("text", [
    b"RETURN (FOO) ALL", b"RETURN (MIN", b"RETURN MIN ALL", b"RETURN (MIN)", b"RETURN ( ) ALL",
    b"RETURN (MIN)ALL", b"$,1", b"$:3", b"1,$", b"OLDER 0", b"YOUNGER", b"OLDER -1",
])
def test_bad(text):
    with pytest.raises(ParseError):
        search(text)


def test_badcharset_with_save_is_deferred():
    a = search(b"RETURN (SAVE) CHARSET KOI8-R ALL")
    assert isinstance(a.refused, No)
    with pytest.raises(No):
        search(b"RETURN (MIN) CHARSET KOI8-R ALL")


def test_seqset_dollar():
    r = Reader(b"$ rest")
    s = SequenceSet.parse(r)
    assert s is SAVED and s.saved and str(s) == "$" and r.pos == 1
    assert not SequenceSet.parse(Reader(b"1:*")).saved
    assert parse_search(Reader(b"NOT $")) == ("US-ASCII", ("not", ("seq", SAVED)))


# -- RFC 5267 §3 ESORT: SORT's RETURN options (the same parser), before the sort keys ----------
def sort(text: bytes):
    from postroom.imap.parser import sort as psort

    return psort.sort(Reader(b" " + text))


@pytest.mark.parametrize("text,returns,keys", [
    (b"(SIZE) UTF-8 ALL", None, (("SIZE", False),)),
    (b"RETURN (MIN MAX) (SIZE) UTF-8 ALL", ("MIN", "MAX"), (("SIZE", False),)),
    (b"RETURN () (REVERSE DATE) UTF-8 ALL", ("ALL",), (("DATE", True),)),
    (b"return (count save count) (arrival) us-ascii ALL", ("COUNT", "SAVE"), (("ARRIVAL", False),)),
])
def test_sort_return(text, returns, keys):
    a = sort(text)
    assert a.returns == returns and a.keys == keys and a.criteria == ("all",) and a.refused is None


@pytest.mark.parametrize("text", [
    b"RETURN (FOO) (SIZE) UTF-8 ALL", b"RETURN (MIN (SIZE) UTF-8 ALL", b"RETURN MIN (SIZE) UTF-8 ALL",
    b"RETURN (MIN)(SIZE) UTF-8 ALL", b"RETURN (PARTIAL 0:5) (SIZE) UTF-8 ALL", b"RETURN (MIN) UTF-8 ALL",
    b"RETURN (MIN) (SIZE) UTF-8", b"RETURN (MIN)",
])
def test_sort_return_bad(text):
    with pytest.raises(ParseError):
        sort(text)


def test_sort_badcharset_with_save_is_deferred():
    a = sort(b"RETURN (SAVE) (SIZE) KOI8-R ALL")
    assert isinstance(a.refused, No) and a.returns == ("SAVE",)
    with pytest.raises(No):
        sort(b"RETURN (MIN) (SIZE) KOI8-R ALL")
