"""Table-driven tests of the ENABLE / CONDSTORE / QRESYNC parsers (RFC 5161, RFC 7162 §7)
and of the range arithmetic behind VANISHED (EARLIER)."""

import pytest
from hypothesis import given, strategies as st

from postroom.imap.errors import ParseError
from postroom.imap.handlers.qresync import clip, fmt, in_ranges, missing
from postroom.imap.parser import Reader
from postroom.imap.parser import condstore as C
from postroom.imap.parser.search import parse_search
from postroom.imap.parser.seqset import SequenceSet
from postroom.storage.models import FlagOp


def parse(fn, text: bytes):
    return fn(Reader(text))


@pytest.mark.parametrize("text,expected", [
    (b" CONDSTORE", ["CONDSTORE"]),
    (b" qresync CONDSTORE X-FOO", ["QRESYNC", "CONDSTORE", "X-FOO"]),
])
def test_enable(text, expected):
    assert parse(C.enable, text) == expected


@pytest.mark.parametrize("text", [b"", b" ", b" (CONDSTORE)", b"  CONDSTORE"])
def test_enable_bad(text):
    with pytest.raises(ParseError):
        parse(C.enable, text)


def test_select_params():
    a = parse(C.select, b" INBOX")
    assert a == C.SelectArgs("INBOX")
    assert parse(C.select, b" foo (CONDSTORE)").condstore
    q = parse(C.select, b" INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))").qresync
    assert q is not None and (q.uidvalidity, q.modseq) == (67890007, 20050715194045000)
    assert str(q.known_uids) == "41,43:211,214:541" and q.seq_match is None
    q = parse(C.select, b" INBOX (QRESYNC (1 2 1:9 (1:3,5 4,5,7,9)) CONDSTORE)").qresync
    assert q is not None and q.seq_match is not None and str(q.seq_match[1]) == "4,5,7,9"
    q = parse(C.select, b" INBOX (QRESYNC (1 2 (3 9)))").qresync
    assert q is not None and q.known_uids is None and q.seq_match is not None


@pytest.mark.parametrize("text", [
    b" INBOX ()", b" INBOX (CONDSTORE", b" INBOX (QRESYNC (1))", b" INBOX (QRESYNC (1 0))",
    b" INBOX (QRESYNC (0 5))", b" INBOX (QRESYNC (1 9223372036854775808))", b" INBOX (QRESYNC (1 2 3 4))",
    b" INBOX (QRESYNC (1 2 (1:2 3)))", b" INBOX (QRESYNC (1 2 (1:* 3:4)))", b" INBOX (QRESYNC (1 2) )",
    b" INBOX CONDSTORE",
])
def test_select_params_bad(text):
    with pytest.raises(ParseError):
        parse(C.select, text)


def test_fetch_modifiers():
    a = parse(C.fetch, b" 1:* (FLAGS)")
    assert a.changedsince is None and not a.vanished and a.atts == ("FLAGS",)
    a = parse(C.fetch, b" 1:* FLAGS (CHANGEDSINCE 12345 VANISHED)")
    assert (a.changedsince, a.vanished, a.atts) == (12345, True, ("FLAGS",))
    assert parse(C.fetch, b" 1 (UID MODSEQ)").atts == ("UID", "MODSEQ")


@pytest.mark.parametrize("text", [
    b" 1 FLAGS (CHANGEDSINCE 0)", b" 1 FLAGS (VANISHED)", b" 1 FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)",
    b" 1 FLAGS ()", b" 1 FLAGS (CHANGEDSINCE 1) x", b" 1 FLAGS(CHANGEDSINCE 1)",
])
def test_fetch_modifiers_bad(text):
    with pytest.raises(ParseError):
        parse(C.fetch, text)


def test_store_modifier():
    a = parse(C.store, b" 1:3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Seen)")
    assert a.unchangedsince == 0 and a.store.op is FlagOp.ADD and a.store.silent
    assert parse(C.store, b" 1 FLAGS \\Seen").unchangedsince is None
    for bad in (b" 1 (UNCHANGEDSINCE) FLAGS x", b" 1 (CHANGEDSINCE 1) FLAGS x", b" 1 (UNCHANGEDSINCE 1 FLAGS x"):
        with pytest.raises(ParseError):
            parse(C.store, bad)


def test_search_modseq():
    assert parse_search(Reader(b"MODSEQ 5"))[1] == ("modseq", 5)
    assert parse_search(Reader(b'MODSEQ "/flags/$Junk" priv 0'))[1] == ("modseq", 0)


def test_ranges():
    assert clip(SequenceSet.from_bytes(b"5:*,1:2,3"), 10) == [(1, 3), (5, 10)]
    assert clip(SequenceSet.from_bytes(b"1:4294967295"), 7) == [(1, 7)]
    assert missing([(1, 10)], [2, 3, 7]) == [(1, 1), (4, 6), (8, 10)]
    assert in_ranges([2, 5, 9], [(1, 5)]) == [(2, 2), (5, 5)]
    assert fmt([(1, 1), (4, 6)]) == b"1,4:6"


@given(st.sets(st.integers(1, 60)), st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=1))
def test_missing_matches_sets(present, pairs):
    s = SequenceSet.from_bytes(b",".join(b"%d:%d" % p for p in pairs))
    ranges = clip(s, 64)
    want = {u for a, b in pairs for u in range(min(a, b), min(max(a, b), 64) + 1)} - present
    got = {u for a, b in missing(ranges, sorted(present)) for u in range(a, b + 1)}
    assert got == want
