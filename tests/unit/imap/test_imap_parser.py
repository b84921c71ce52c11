"""Table-driven tests of the command parsers (RFC 3501 §9 formal syntax)."""

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from postroom.imap import mutf7
from postroom.imap.errors import Bad, No, ParseError
from postroom.imap.parser import Reader, split_command
from postroom.imap.parser import args as A
from postroom.imap.parser.fetch import BodySection, parse_fetch_atts
from postroom.imap.parser.search import parse_search
from postroom.imap.parser.seqset import STAR, SequenceSet, compress
from postroom.storage.models import FlagOp


def parse(fn, text: bytes):
    r = Reader(text)
    return fn(r)


# -- lexical ------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    (b'"a b"', b"a b"),
    (b'"a\\"b\\\\"', b'a"b\\'),
    (b"{3}\r\nabc", b"abc"),
    (b"{0}\r\n", b""),
    (b"atom]x", b"atom]x"),
])
def test_astring(text, expected):
    r = Reader(text)
    assert r.astring() == expected
    assert r.at_end()


@pytest.mark.parametrize("text", [b'"unterminated', b"{5}\r\nab", b"(x", b'"a\\x"', b""])
def test_astring_bad(text):
    with pytest.raises(ParseError):
        Reader(text).astring()


def test_split_command():
    tag, verb, r = split_command(b"A001 uid fetch 1:* FLAGS")
    assert (tag, verb) == (b"A001", "UID FETCH")
    assert r.buf[r.pos:] == b" 1:* FLAGS"
    for bad in (b"", b"A001", b"+ NOOP", b"(x NOOP"):
        with pytest.raises(ParseError):
            split_command(bad)


def test_login():
    a = parse(A.login, b' alice "p w"')
    assert (a.user, a.password) == (b"alice", b"p w")
    with pytest.raises(ParseError):
        parse(A.login, b" alice")
    with pytest.raises(ParseError):
        parse(A.login, b" alice pw extra")


def test_authenticate():
    assert parse(A.authenticate, b" plain") == A.AuthenticateArgs("PLAIN", None)
    assert parse(A.authenticate, b" PLAIN AGFsaWNlAHB3") == A.AuthenticateArgs("PLAIN", b"AGFsaWNlAHB3")


# -- mailboxes -------------------------------------------------------------------------
@pytest.mark.parametrize("raw,name", [
    (b"inbox", "INBOX"), (b"InBox/sub", "INBOX/sub"), (b"Sent", "Sent"),
    (b"&AMk-t&AOk-", "\u00c9t\u00e9"), (b"A&-B", "A&B"), (b"&ZeVnLIqe-", "\u65e5\u672c\u8a9e"),
])
def test_mailbox_names(raw, name):
    assert A.mailbox_name(raw) == name


@pytest.mark.parametrize("raw", [b"&", b"&AGE-", b"caf\xc3\xa9", b"&Jjo!-"])
def test_mailbox_names_bad(raw):
    with pytest.raises(No):
        A.mailbox_name(raw)


@given(st.text(max_size=30))
def test_mutf7_roundtrip(s):
    s = s.replace("\x00", "")
    try:
        s.encode("utf-16-be")
    except UnicodeEncodeError:  # lone surrogates cannot be UTF-16 encoded
        return
    assert mutf7.decode(mutf7.encode(s)) == s


def test_status_and_list():
    assert parse(A.status, b" INBOX (MESSAGES unseen)") == ("INBOX", ["MESSAGES", "UNSEEN"])
    with pytest.raises(ParseError):
        parse(A.status, b" INBOX (BOGUS)")
    la = parse(A.list_args, b' "" %')
    assert (la.reference, la.pattern) == ("", "%")
    la = parse(A.list_args, b" Work/ *")
    assert (la.reference, la.pattern) == ("Work/", "*")


def test_append():
    a = parse(A.append, b' Drafts (\\Seen $Label) "05-Feb-2024 10:11:12 +0100" {3}\r\nabc')
    assert a.mailbox == "Drafts"
    assert a.flags == {"\\Seen", "$Label"}
    assert a.date == datetime(2024, 2, 5, 10, 11, 12, tzinfo=timezone(timedelta(hours=1)))
    assert a.message == b"abc"
    a = parse(A.append, b" INBOX {2}\r\nhi")
    assert (a.flags, a.date, a.message) == (frozenset(), None, b"hi")
    a = parse(A.append, b' INBOX " 5-Feb-2024 10:11:12 -0330" {1}\r\nx')
    assert a.date.utcoffset() == -timedelta(hours=3, minutes=30)
    for bad in (b" INBOX abc", b' INBOX "32-Feb-2024 10:11:12 +0000" {1}\r\nx', b" INBOX (\\Recent) {1}\r\nx"):
        with pytest.raises(ParseError):
            parse(A.append, bad)


# -- sequence sets ---------------------------------------------------------------------
def test_seqset_parse():
    assert SequenceSet.from_bytes(b"1,3:5,*").ranges == ((1, 1), (3, 5), (STAR, STAR))
    assert str(SequenceSet.from_bytes(b"2:*")) == "2:*"
    for bad in (b"0", b"1:0", b"a", b"4294967296"):
        with pytest.raises(ParseError):
            SequenceSet.parse(Reader(bad))


def test_seqset_resolve():
    s = SequenceSet.from_bytes
    assert s(b"1:*").seq_indexes(3) == [0, 1, 2]
    assert s(b"*:2").seq_indexes(3) == [1, 2]
    assert s(b"3,1,1:2").seq_indexes(3) == [0, 1, 2]
    assert s(b"*").seq_indexes(0) == []
    with pytest.raises(Bad):
        s(b"4").seq_indexes(3)
    uids = [3, 7, 9, 20]
    assert s(b"1:*").uid_indexes(uids) == [0, 1, 2, 3]
    assert s(b"8:10").uid_indexes(uids) == [2]
    assert s(b"100:*").uid_indexes(uids) == [3]  # §6.4.8: n:* includes the last UID
    assert s(b"4,5,6").uid_indexes(uids) == []
    assert s(b"*").uid_indexes([]) == []


def test_compress():
    assert compress([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    assert compress([]) == ""


# -- fetch -----------------------------------------------------------------------------
def test_fetch_macros_and_atts():
    assert parse_fetch_atts(Reader(b"FAST")) == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert parse_fetch_atts(Reader(b"(uid flags)")) == ["UID", "FLAGS"]
    atts = parse_fetch_atts(Reader(b"(BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<0.100> BODY[] RFC822.HEADER)"))
    assert atts[0] == BodySection(peek=True, part=(1, 2), text="HEADER.FIELDS", fields=(b"SUBJECT", b"FROM"),
                                  partial=(0, 100))
    assert atts[0].response_name() == b"BODY[1.2.HEADER.FIELDS (SUBJECT FROM)]<0>"
    assert atts[1] == BodySection(peek=False)
    assert atts[1].response_name() == b"BODY[]"
    assert atts[2].response_name() == b"RFC822.HEADER" and atts[2].peek
    assert parse_fetch_atts(Reader(b"BODY[3.MIME]"))[0].spec() == b"3.MIME"


@pytest.mark.parametrize("bad", [b"(FLAGS", b"BOGUS", b"BODY[MIME]", b"BODY[1.]", b"BODY[HEADER.FIELDS ()]",
                                 b"BODY[0]", b"BODY[]<1>", b"()", b"BODY[TEXTX]",
                                 b"BODY.PEEK\xff[1.2.MIME]", b"FLAGS\xe9", b"\xc3\xa9"])
def test_fetch_bad(bad):
    with pytest.raises(ParseError):
        r = Reader(bad)
        parse_fetch_atts(r)
        r.end()


def test_store():
    a = parse(A.store, b" 1:3 +FLAGS.SILENT (\\seen $x)")
    assert (a.op, a.silent, a.flags) == (FlagOp.ADD, True, {"\\Seen", "$x"})
    a = parse(A.store, b" 1 -flags \\Deleted \\Flagged")
    assert (a.op, a.silent, a.flags) == (FlagOp.REMOVE, False, {"\\Deleted", "\\Flagged"})
    a = parse(A.store, b" * FLAGS ()")
    assert (a.op, a.flags) == (FlagOp.SET, frozenset())
    with pytest.raises(ParseError):
        parse(A.store, b" 1 *FLAGS (x)")


# -- search ----------------------------------------------------------------------------
def test_search_keys():
    cs, t = parse_search(Reader(b"CHARSET UTF-8 FROM \"J\xc3\xb6rg\" UNSEEN"))
    assert cs == "UTF-8"
    assert t == ("and", [("header", "from", "J\u00f6rg"), ("flag", "\\Seen", False)])
    _, t = parse_search(Reader(b"OR (SEEN FLAGGED) NOT 2:4"))
    assert t[0] == "or" and t[1][0] == "and" and t[2][0] == "not"
    _, t = parse_search(Reader(b"SINCE 1-Feb-2024 LARGER 10 UID 5:* HEADER X-Foo bar"))
    assert t[0] == "and"
    assert ("since", date(2024, 2, 1)) in t[1]
    assert ("header", "x-foo", "bar") in t[1]


def test_search_errors():
    with pytest.raises(No) as e:
        parse_search(Reader(b"CHARSET KOI8-R ALL"))
    assert e.value.code.startswith(b"BADCHARSET")
    for bad in (b"BOGUS", b"OR SEEN", b"(SEEN", b"SINCE 99-Foo-2024", b"(" * 100 + b"ALL" + b")" * 100):
        with pytest.raises(ParseError):
            parse_search(Reader(bad))


@given(st.binary(max_size=60))
def test_parsers_never_crash(data):
    """Arbitrary bytes give a parse result or a ParseError/No, never another exception."""
    _parse_with_every_parser(data)


def _parse_with_every_parser(data):
    for fn in (A.fetch, A.store, A.search, A.append, A.status, A.list_args, A.copy, A.login):
        try:
            r = Reader(b" " + data)
            fn(r)
        except (ParseError, No):
            pass


# Pieces of real commands: random bytes alone seldom get past the first token, so the
# deeper parser states (inside a section, after an attribute name) are reached with these.
_PIECES = [b" ", b"1", b"1:*", b"*", b",", b"(", b")", b"[", b"]", b"<", b">", b".", b"0", b"4294967296",
           b"BODY", b"BODY.PEEK", b"BINARY", b"HEADER.FIELDS", b"MIME", b"TEXT", b"FLAGS", b"UID", b"ENVELOPE",
           b"+FLAGS.SILENT", b"\\Seen", b"OR", b"NOT", b"SINCE", b"1-Jan-2020", b"CHARSET", b"UTF-8",
           b"CHANGEDSINCE", b"{3}", b"{3+}", b'"x"', b"INBOX", b"~{1}", b"NIL"]


@given(st.lists(st.sampled_from(_PIECES) | st.binary(min_size=1, max_size=2), max_size=14))
def test_parsers_never_crash_on_near_valid_commands(pieces):
    """Like the test above, from fragments of valid syntax with stray bytes between them
    (it found a non-ASCII byte after a FETCH attribute name crashing the parser)."""
    _parse_with_every_parser(b"".join(pieces))
