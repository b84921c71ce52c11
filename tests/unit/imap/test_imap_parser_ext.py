"""Table-driven tests of the extension parsers: ID, CREATE (USE), LIST-EXTENDED / LIST-STATUS."""

import pytest

from postroom.imap.errors import No, ParseError
from postroom.imap.parser import Reader
from postroom.imap.parser import args as A
from postroom.imap.parser import ext as X


def parse(fn, text: bytes):
    return fn(Reader(text))


# -- ID (RFC 2971) ----------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    (b" NIL", None),
    (b" nil", None),
    (b" ()", ()),
    (b' ("name" "mutt")', (("name", "mutt"),)),
    (b' ("name" "x" "version" NIL)', (("name", "x"), ("version", None))),
    (b' ({4}\r\nname {2}\r\nab)', (("name", "ab"),)),
])
def test_id(text, expected):
    assert parse(X.id_args, text).fields == expected


@pytest.mark.parametrize("text", [
    b"", b" ", b" (", b' ("name")', b' ("name" "x"', b' ("name" "x") extra', b" NILx", b" (name x)",
    b' ("name"  "x")', b' ("" "x")',
    b' ("' + b"f" * 31 + b'" "x")',
    b' ("f" "' + b"v" * 1025 + b'")',
    b" (" + b" ".join(b'"f%d" "v"' % i for i in range(31)) + b")",
])
def test_id_bad(text):
    with pytest.raises(ParseError):
        parse(X.id_args, text)


def test_id_limits_inclusive():
    text = b" (" + b" ".join(b'"%s" "%s"' % (b"f" * 30, b"v" * 1024) for _ in range(30)) + b")"
    assert len(parse(X.id_args, text).fields) == 30


# -- CREATE (RFC 6154 §3) -----------------------------------------------------------------
@pytest.mark.parametrize("text,name,use", [
    (b" Spam", "Spam", None),
    (b" Spam (USE (\\Junk))", "Spam", ("\\Junk",)),
    (b" Spam (use (\\junk \\Sent))", "Spam", ("\\Junk", "\\Sent")),
    (b" Spam (USE ())", "Spam", ()),
    (b" Spam (USE (\\Custom))", "Spam", ("\\Custom",)),
])
def test_create(text, name, use):
    a = parse(X.create, text)
    assert (a.name, a.use) == (name, use)


@pytest.mark.parametrize("text", [
    b" Spam ()", b" Spam (USE)", b" Spam (USE \\Junk)", b" Spam (USE (Junk))", b" Spam (FOO (x))",
    b" Spam (USE (\\Junk) USE (\\Sent))", b" Spam (USE (\\Junk)", b" Spam (USE (\\Junk)) x", b" Spam  (USE ())",
])
def test_create_bad(text):
    with pytest.raises(ParseError):
        parse(X.create, text)


# -- LIST (RFC 5258, RFC 5819) ------------------------------------------------------------
def test_list_plain_is_not_extended():
    a = parse(X.list_ext, b' "" "*"')
    assert (a.reference, a.patterns, a.extended) == ("", ("*",), False)
    assert parse(X.list_ext, b" ref %").patterns == ("%",)


@pytest.mark.parametrize("text,select,returns,status,patterns", [
    (b' () "" "*"', set(), set(), None, ("*",)),
    (b' (SUBSCRIBED) "" "*"', {"SUBSCRIBED"}, {"SUBSCRIBED"}, None, ("*",)),
    (b' (subscribed recursivematch) "" "%"', {"SUBSCRIBED", "RECURSIVEMATCH"}, {"SUBSCRIBED"}, None, ("%",)),
    (b' (REMOTE) "" ("a" b*)', {"REMOTE"}, set(), None, ("a", "b*")),
    (b' (SPECIAL-USE) "" "*"', {"SPECIAL-USE"}, {"SPECIAL-USE"}, None, ("*",)),
    (b' "" "*" RETURN ()', set(), set(), None, ("*",)),
    (b' "" "*" RETURN (CHILDREN SUBSCRIBED)', set(), {"CHILDREN", "SUBSCRIBED"}, None, ("*",)),
    (b' "" "*" RETURN (STATUS (MESSAGES SIZE))', set(), set(), ("MESSAGES", "SIZE"), ("*",)),
    (b' "" % RETURN (SPECIAL-USE STATUS (UNSEEN))', set(), {"SPECIAL-USE"}, ("UNSEEN",), ("%",)),
])
def test_list_extended(text, select, returns, status, patterns):
    a = parse(X.list_ext, text)
    assert a.extended
    assert (set(a.select), set(a.returns), a.status, a.patterns) == (select, returns, status, patterns)


@pytest.mark.parametrize("text", [
    b' (BOGUS) "" "*"', b' (RECURSIVEMATCH) "" "*"', b' (REMOTE RECURSIVEMATCH) "" "*"', b' ( "" "*"',
    b' () "" ()', b' "" ("a"', b' "" "*" RETURN', b' "" "*" RETURN (BOGUS)', b' "" "*" RETURNS ()',
    b' "" "*" RETURN (STATUS)', b' "" "*" RETURN (STATUS ())', b' "" "*" RETURN (STATUS (BOGUS))',
    b' "" "*" RETURN (STATUS (MESSAGES) STATUS (UNSEEN))', b' "" "*" RETURN (CHILDREN', b' "" "*" x',
    b' (SUBSCRIBED)"" "*"', b' "" "*" RETURN (CHILDREN) x',
])
def test_list_extended_bad(text):
    with pytest.raises(ParseError):
        parse(X.list_ext, text)


def test_list_bad_utf7_is_no():
    with pytest.raises(No):
        parse(X.list_ext, b' "" ("a" "&Jjo")')


def test_status_items_known():
    assert {"SIZE", "APPENDLIMIT"} <= set(A.STATUS_ITEMS)
    assert parse(A.status, b" INBOX (SIZE APPENDLIMIT)") == ("INBOX", ["SIZE", "APPENDLIMIT"])
