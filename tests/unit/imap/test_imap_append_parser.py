"""MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) arguments; IMAP URLs (RFC 5092)."""

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.handlers.append import uid_set
from postroom.imap.parser import Reader, imapurl
from postroom.imap.parser import args as A


def parse(text: bytes) -> A.AppendArgs:
    return A.append(Reader(text))


def test_multiappend_messages():
    a = parse(b' Drafts (\\Seen) {1}\r\na "05-Feb-2024 10:11:12 +0100" {2}\r\nbc {1}\r\nd')
    assert [m.message for m in a.messages] == [b"a", b"bc", b"d"]
    assert [m.flags for m in a.messages] == [{"\\Seen"}, set(), set()]
    assert a.messages[0].date is None and a.messages[1].date.year == 2024
    assert a.message == b"a"  # the first message, for older callers


def test_catenate_parts():
    a = parse(b' INBOX CATENATE (TEXT {2}\r\nhi URL "/INBOX;UIDVALIDITY=1/;UID=2" url /x;UIDVALIDITY=1/;UID=3)'
              b" {1}\r\nz")
    m = a.messages[0]
    assert m.message == b"" and m.catenate == (A.CatPart(text=b"hi"), A.CatPart(url=b"/INBOX;UIDVALIDITY=1/;UID=2"),
                                               A.CatPart(url=b"/x;UIDVALIDITY=1/;UID=3"))
    assert a.messages[1].message == b"z"


@pytest.mark.parametrize("bad", [
    b" INBOX {1}\r\na junk",
    b" INBOX {1}\r\na{1}\r\nb",  # no space between messages
    b" INBOX {1}\r\na (\\Recent) {1}\r\nb",
    b" INBOX CATENATE ()",
    b" INBOX CATENATE (TEXT x)",
    b" INBOX CATENATE (BLOB {1}\r\nx)",
    b" INBOX CATENATE (TEXT {1}\r\nx",
    b" INBOX CATENATE(TEXT {1}\r\nx)",
    b" INBOX {1}\r\na ",
])
def test_bad_append(bad):
    with pytest.raises(ParseError):
        parse(bad)


def test_message_urls():
    u = imapurl.parse(b"/Sent%20Items;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2.mime/;PARTIAL=5.10")
    assert (u.user, u.mailbox, u.uidvalidity, u.uid, u.section, u.partial) == (
        None, "Sent Items", 385759045, 20, "1.2.MIME", (5, 10))
    u = imapurl.parse(b"imap://joe%40example.com;AUTH=*@Mail.Example.com:143/inbox/sub;UIDVALIDITY=7/;UID=1"
                      b"/;SECTION=HEADER.FIELDS%20(SUBJECT)")
    assert (u.user, u.host, u.mailbox, u.section) == ("joe@example.com", "mail.example.com", "INBOX/sub",
                                                       "HEADER.FIELDS (SUBJECT)")
    assert imapurl.parse(b"/%C3%A9t%C3%A9;UIDVALIDITY=1/;UID=1/;PARTIAL=3").mailbox == "été"
    assert imapurl.parse(b"/a;UIDVALIDITY=1/;UID=1/;PARTIAL=3").partial == (3, None)


@pytest.mark.parametrize("bad", [
    b"", b"INBOX;UIDVALIDITY=1/;UID=1", b"//host/INBOX;UIDVALIDITY=1/;UID=1",
    b"/INBOX/;UID=1",  # no UIDVALIDITY
    b"/INBOX;UIDVALIDITY=0/;UID=1", b"/INBOX;UIDVALIDITY=1/;UID=0", b"/INBOX;UIDVALIDITY=99999999999/;UID=1",
    b"/INBOX;UIDVALIDITY=1/;UID=1/;URLAUTH=anonymous:internal:91354a473744909de610943775f92038",
    b"/INBOX?SUBJECT%20shopping", b"/INBOX;UIDVALIDITY=1", b"imap://host/INBOX;UIDVALIDITY=1/;UID=1",
    b"imap://joe@host", b"/%FF;UIDVALIDITY=1/;UID=1", b"/a%2;UIDVALIDITY=1/;UID=1", b"/a b;UIDVALIDITY=1/;UID=1",
    "/é;UIDVALIDITY=1/;UID=1".encode(), b"http://x/INBOX;UIDVALIDITY=1/;UID=1",
])
def test_bad_urls(bad):
    with pytest.raises(imapurl.UrlError):
        imapurl.parse(bad)


def test_badurl_echo_is_safe():
    assert imapurl.for_response(b"/a]b\r\n\x00") == b"/a%5Db%0D%0A%00"
    assert imapurl.for_response(b"") == b"%00"
    assert len(imapurl.for_response(b"x" * 5000)) == 512


def test_uid_set():
    assert uid_set([5]) == b"5"
    assert uid_set([5, 6, 7]) == b"5:7"
    assert uid_set([5, 6, 9, 11, 12]) == b"5:6,9,11:12"
