"""Table tests for the RFC 5464 command arguments (imap/parser/metadata.py)."""

from __future__ import annotations

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.parser.base import Reader
from postroom.imap.parser.metadata import (
    GetMetadataArgs,
    SetMetadataArgs,
    getmetadata,
    setmetadata,
)

G = GetMetadataArgs
S = SetMetadataArgs


@pytest.mark.parametrize("raw, want", [
    (b" INBOX /private/comment", G("INBOX", ("/private/comment",))),
    (b' "" (/shared/admin /Shared/Comment)', G("", ("/shared/admin", "/shared/comment"))),
    (b' inbox ("/private/a b" {9}\r\n/shared/x)', G("INBOX", ("/private/a b", "/shared/x"))),
    (b" (DEPTH infinity) INBOX (/private /shared)", G("INBOX", ("/private", "/shared"), None, None)),
    (b" (MAXSIZE 1024 depth 1) Sent /private", G("Sent", ("/private",), 1024, 1)),
    (b" (DEPTH 0) Sent /private", G("Sent", ("/private",), None, 0)),
    # After the mailbox, as in RFC 5464's examples before errata 1691/1692.
    (b" INBOX (DEPTH 1) (/private)", G("INBOX", ("/private",), None, 1)),
    (b" INBOX (MAXSIZE 5) /private", G("INBOX", ("/private",), 5, 0)),
    (b" INBOX (" + b" ".join(b"/private/%d" % i for i in range(1000)) + b")",
     G("INBOX", tuple(f"/private/{i}" for i in range(1000)))),
    # The same entry twice is asked once.
    (b" INBOX (/private/a /PRIVATE/A /private/b)", G("INBOX", ("/private/a", "/private/b"))),
])
def test_getmetadata(raw: bytes, want: GetMetadataArgs) -> None:
    assert getmetadata(Reader(raw)) == want


@pytest.mark.parametrize("raw, want", [
    (b' INBOX (/private/comment "hi")', S("INBOX", (("/private/comment", b"hi"),))),
    (b" INBOX (/private/comment NIL /shared/Comment nil)",
     S("INBOX", (("/private/comment", None), ("/shared/comment", None)))),
    (b' "" (/shared/comment {3}\r\na\r\n /private/x ~{3}\r\n\x00\x01\x02 /private/y "")',
     S("", (("/shared/comment", b"a\r\n"), ("/private/x", b"\x00\x01\x02"), ("/private/y", b"")))),
    (b' INBOX (/private/q "say \\"hi\\" \\\\o/")', S("INBOX", (("/private/q", b'say "hi" \\o/'),))),
    (b' INBOX (/shared/vendor/v.x/a "1" /private/vendor/v.x/a/b "2" /shared/a/b/c "3")',
     S("INBOX", (("/shared/vendor/v.x/a", b"1"), ("/private/vendor/v.x/a/b", b"2"), ("/shared/a/b/c", b"3")))),
])
def test_setmetadata(raw: bytes, want: SetMetadataArgs) -> None:
    assert setmetadata(Reader(raw)) == want


@pytest.mark.parametrize("raw", [
    b"", b" ", b" INBOX", b" INBOX ", b" INBOX ()", b" INBOX (/private/a", b" INBOX /private/a x",
    b" INBOX private/a", b" INBOX /private/a*", b" INBOX /private/%", b" INBOX /private//a", b" INBOX /private/a/",
    b" INBOX /vendor/a", b" INBOX /privatex", b" INBOX {6}\r\n/priv\xc3\xa9",
    b" () INBOX /private", b" (DEPTH 2) INBOX /private", b" (DEPTH infinite) INBOX /private",
    b" (DEPTH 1 DEPTH 1) INBOX /private", b" (MAXSIZE) INBOX /private", b" (MAXSIZE 4294967296) INBOX /private",
    b" (SCOPE 1) INBOX /private", b" (DEPTH 1) (DEPTH 1) INBOX /private", b" (DEPTH 1) INBOX (DEPTH 1) /private",
    b" (DEPTH 1)INBOX /private",
    b" INBOX (" + b" ".join(b"/private/%d" % i for i in range(1001)) + b")",
])
def test_getmetadata_bad(raw: bytes) -> None:
    with pytest.raises(ParseError):
        getmetadata(Reader(raw))


@pytest.mark.parametrize("raw", [
    b"", b" INBOX", b" INBOX ()", b" INBOX (/private/a)", b" INBOX (/private/a )", b" INBOX (/private/a x)",
    b' INBOX /private/a "x"', b' INBOX (/private/a "x"', b' INBOX (/private/a "x") extra',
    b' INBOX (/private "x")', b' INBOX (/SHARED "x")', b' INBOX (/private/a* "x")', b' INBOX (/x/a "x")',
    b" INBOX (/private/a ~{3}\r\nab)", b' INBOX (/private/vendor "x")', b' INBOX (/private/vendor/v.x "x")',
    b' INBOX (/shared/Vendor/v.x "x")', b" INBOX (/private/a ~3)", b' INBOX (/private/a "x"/private/b "y")',
])
def test_setmetadata_bad(raw: bytes) -> None:
    with pytest.raises(ParseError):
        setmetadata(Reader(raw))
