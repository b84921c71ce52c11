"""SEARCH and UID SEARCH: every key, OR/NOT/nesting, sets, charsets (RFC 3501 §6.4.4)."""

from datetime import datetime, timezone

import pytest


def mk(subject, frm="Alice <alice@outside.test>", to="bob@example.test", date="Mon, 5 Feb 2024 10:11:12 +0100",
       body="hello world\r\n", extra=""):
    return (f"From: {frm}\r\nTo: {to}\r\nCc: carol@example.test\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"X-Tag: {subject}-tag\r\n{extra}\r\n{body}").encode()


@pytest.fixture(scope="module")
def box(srv):
    acc = srv.new_user()
    tz = timezone.utc
    srv.call(srv.store.append(acc.id, "INBOX", mk("first", body="the quick brown fox\r\n"),
                              frozenset({"\\Seen"}), datetime(2024, 1, 10, 12, 0, tzinfo=tz)))
    srv.call(srv.store.append(acc.id, "INBOX", mk("second", frm="=?utf-8?q?J=C3=B6rg?= <jorg@outside.test>",
                                                  date="Tue, 6 Feb 2024 10:00:00 +0000"),
                              frozenset({"\\Flagged", "\\Answered", "$Work"}), datetime(2024, 2, 6, 12, 0, tzinfo=tz)))
    srv.call(srv.store.append(acc.id, "INBOX", mk("third", to="dave@example.test", date="Wed, 7 Feb 2024 09:00:00 +0000",
                                                  body="=E2=82=AC price\r\n",
                                                  extra="Content-Type: text/plain; charset=utf-8\r\n"
                                                        "Content-Transfer-Encoding: quoted-printable\r\n")
                              + b"x" * 2000, frozenset({"\\Deleted", "\\Draft"}), datetime(2024, 3, 1, 12, 0, tzinfo=tz)))
    c = srv.imaplib(acc, select="INBOX")
    yield c
    c.logout()


@pytest.mark.parametrize("criteria,expected", [
    ("ALL", "1 2 3"),
    ("SEEN", "1"), ("UNSEEN", "2 3"), ("FLAGGED", "2"), ("UNFLAGGED", "1 3"),
    ("ANSWERED", "2"), ("UNANSWERED", "1 3"), ("DELETED", "3"), ("UNDELETED", "1 2"),
    ("DRAFT", "3"), ("UNDRAFT", "1 2"), ("KEYWORD $Work", "2"), ("UNKEYWORD $Work", "1 3"),
    ("RECENT", "1 2 3"), ("NEW", "2 3"), ("OLD", ""),
    ("FROM alice", "1 3"), ("FROM jörg", "2"), ("TO dave", "3"), ("CC carol", "1 2 3"), ("BCC carol", ""),
    ("SUBJECT SECOND", "2"), ("HEADER X-Tag third-TAG", "3"), ("HEADER X-Tag \"\"", "1 2 3"),
    ("HEADER X-Missing \"\"", ""),
    ("BODY quick", "1"), ("BODY €", "3"), ("TEXT second-tag", "2"), ("TEXT fox", "1"),
    ("LARGER 1000", "3"), ("SMALLER 1000", "1 2"),
    ("BEFORE 6-Feb-2024", "1"), ("ON 6-Feb-2024", "2"), ("SINCE 6-Feb-2024", "2 3"),
    ("SENTBEFORE 6-Feb-2024", "1"), ("SENTON 6-Feb-2024", "2"), ("SENTSINCE 7-Feb-2024", "3"),
    ("2:3", "2 3"), ("1,3", "1 3"), ("*", "3"),
    ("OR SEEN FLAGGED", "1 2"), ("NOT SEEN", "2 3"), ("NOT (SEEN FLAGGED)", "1 2 3"),
    ("(OR DELETED SEEN) SMALLER 1000", "1"), ("OR (FROM alice DRAFT) SUBJECT second", "2 3"),
    ("NOT NOT SEEN", "1"), ("SEEN UNSEEN", ""),
])
def test_search_keys(box, criteria, expected):
    if criteria.isascii():
        typ, data = box.search(None, criteria)
    else:  # 8-bit text goes as a literal with CHARSET UTF-8
        key, _, value = criteria.partition(" ")
        box.literal = value.encode()
        typ, data = box.search("UTF-8", key)
    assert typ == "OK"
    assert data == [expected.encode()]


def test_uid_search(srv, box):
    typ, data = box.uid("SEARCH", "UID 1:2")
    assert typ == "OK" and len(data[0].split()) == 2
    typ, data = box.uid("SEARCH", "FLAGGED")
    uid = data[0]
    typ, data = box.uid("SEARCH", f"UID {uid.decode()}")
    assert data == [uid]


def test_search_errors(box):
    typ, data = box.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    import imaplib

    for bad in ("BOGUS", "OR SEEN", "(SEEN", "SINCE 31-Feb-2024", "9"):
        with pytest.raises(imaplib.IMAP4.error):
            box.search(None, bad)


def test_search_imapclient(srv):
    acc = srv.new_user()
    srv.deliver(acc, mk("Grüße", body="Schöne Grüße\r\n"))
    c = srv.imapclient(acc, select="INBOX")
    assert len(c.search(["TEXT", "Grüße"], charset="UTF-8")) == 1
    assert c.search(["SUBJECT", "nothing"]) == []
    c.logout()
