"""FETCH and UID FETCH: every attribute, sections, partials, \\Seen (RFC 3501 §6.4.5)."""

import imaplib
import re
from datetime import datetime, timedelta, timezone

import pytest

from imap_harness import PASSWORD, msg

NESTED = (b"From: a@x.test\r\nTo: b@y.test\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=\"B1\"\r\n\r\n"
          b"--B1\r\nContent-Type: multipart/alternative; boundary=\"B2\"\r\n\r\n"
          b"--B2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n"
          b"--B2\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--B2--\r\n"
          b"--B1\r\nContent-Type: message/rfc822\r\n\r\n"
          b"From: c@z.test\r\nSubject: inner\r\n\r\ninner body\r\n"
          b"--B1--\r\n")


def test_fetch_simple_atts(srv):
    acc = srv.new_user()
    when = datetime(2024, 2, 5, 10, 11, 12, tzinfo=timezone(timedelta(hours=1)))
    c = srv.imapclient(acc)
    c.append("INBOX", msg("hi"), flags=["\\Flagged", "$Work"], msg_time=when)
    c.select_folder("INBOX")
    c.normalise_times = False
    r = c.fetch([1], ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "UID", "ENVELOPE"])[1]
    assert set(r[b"FLAGS"]) == {b"\\Flagged", b"$Work", b"\\Recent"}
    assert r[b"INTERNALDATE"] == when and r[b"INTERNALDATE"].utcoffset() == timedelta(hours=1)
    assert r[b"RFC822.SIZE"] == len(msg("hi"))
    env = r[b"ENVELOPE"]
    assert env.subject == b"hi" and env.from_[0].mailbox == b"alice" and env.message_id == b"<hi@outside.test>"
    c.logout()


def test_fetch_macros_raw(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("m"))
    c = srv.imaplib(acc, select="INBOX")
    for macro in ("ALL", "FAST", "FULL"):
        typ, data = c.fetch("1", macro)
        assert typ == "OK"
        assert b"INTERNALDATE" in data[0] and b"RFC822.SIZE" in data[0]
    typ, data = c.fetch("1", "FULL")
    assert b"BODY (" in data[0] and b"ENVELOPE (" in data[0]
    assert re.search(rb'INTERNALDATE "[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', data[0])
    c.logout()


def test_body_sections_and_seen(srv):
    acc = srv.new_user()
    srv.deliver(acc, NESTED)
    c = srv.imapclient(acc, select="INBOX")
    r = c.fetch([1], ["BODY.PEEK[1.1]", "BODY.PEEK[1.2.MIME]", "BODY.PEEK[2.HEADER]", "BODY.PEEK[2.TEXT]",
                      "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT TO FROM)]",
                      "BODY.PEEK[TEXT]<0.6>", "BODY.PEEK[9]"])[1]
    assert r[b"BODY[1.1]"] == b"plain body"
    assert r[b"BODY[1.2.MIME]"] == b"Content-Type: text/html\r\n\r\n"
    assert r[b"BODY[2.HEADER]"] == b"From: c@z.test\r\nSubject: inner\r\n\r\n"
    assert r[b"BODY[2.TEXT]"].rstrip(b"\r\n") == b"inner body"  # exact CRLF rule: differential test
    assert r[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: outer\r\n\r\n"
    assert r[b"BODY[HEADER.FIELDS.NOT (SUBJECT TO FROM)]"].startswith(b"MIME-Version: 1.0\r\n")
    assert r[b"BODY[TEXT]<0>"] == b"--B1\r\n"
    assert r[b"BODY[9]"] == b""
    assert b"\\Seen" not in c.get_flags([1])[1]  # PEEK leaves \Seen alone
    r = c.fetch([1], ["BODY[]<0.4>"])[1]
    assert r[b"BODY[]<0>"] == b"From"
    assert b"\\Seen" in r[b"FLAGS"]  # §6.4.5: the implicit \Seen is reported
    c.logout()


def test_bodystructure_nested(srv):
    acc = srv.new_user()
    srv.deliver(acc, NESTED)
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.fetch("1", "(BODYSTRUCTURE)")
    bs = data[0]
    assert b'"alternative"' in bs and b'"message" "rfc822"' in bs and b'"mixed"' in bs
    typ, data = c.fetch("1", "(BODY)")
    assert b"BODY ((" in data[0]
    c.logout()


def test_rfc822_forms(srv):
    acc = srv.new_user()
    raw = msg("r")
    srv.deliver(acc, raw)
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.fetch("1", "(RFC822.HEADER)")
    assert data[0][1] == raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = c.fetch("1", "(RFC822.TEXT)")
    assert data[0][1] == b"Body text\r\n"
    typ, data = c.fetch("1", "(RFC822)")
    assert data[0][1] == raw
    assert b"\\Seen" in c.fetch("1", "(FLAGS)")[1][0]
    c.logout()


def test_uid_fetch_and_ranges(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(4)]
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.uid("FETCH", f"{uids[1]}:*", "(FLAGS)")
    assert typ == "OK" and len(data) == 3 and all(b"UID" in d for d in data)
    typ, data = c.uid("FETCH", "999:*", "(FLAGS)")
    assert len(data) == 1 and b"UID %d" % uids[-1] in data[0]  # n:* includes the last
    typ, data = c.uid("FETCH", "500", "(FLAGS)")
    assert typ == "OK" and data == [None]
    with pytest.raises(imaplib.IMAP4.error, match="out of range"):
        c.fetch("9", "(FLAGS)")
    c.logout()


def test_fetch_bad_syntax(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("x"))
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    r.cmd(b"s SELECT INBOX")
    for bad in (b"a FETCH 1 (FLAGS", b"a FETCH 1 BOGUS", b"a FETCH x FLAGS", b"a FETCH 1 BODY[1.MIMEX]",
                b"a FETCH 0 FLAGS", b"a FETCH"):
        assert r.cmd(bad)[-1].startswith(b"a BAD"), bad
    r.close()


def test_fetch_header_fields_cached_and_fresh(srv):
    """Header sections come from a process-wide cache after the first FETCH: the answers
    must not change, also mixed with sections that need the bytes, and a read-write
    BODY[HEADER.FIELDS] still sets \\Seen."""
    from postroom.imap.handlers.fetch import HEADER_CACHE

    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(f"s{i}"))
    c = srv.imapclient(acc, select="INBOX")
    spec = "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"
    first = c.fetch([1, 2, 3], [spec])
    size = HEADER_CACHE.size
    assert c.fetch([1, 2, 3], [spec]) == first and HEADER_CACHE.size == size  # served from the cache
    key = b"BODY[HEADER.FIELDS (SUBJECT FROM)]"
    assert first[2][key] == b"From: Alice <alice@outside.test>\r\nSubject: s1\r\n\r\n"
    mixed = c.fetch([1, 2, 3], [spec, "BODY.PEEK[TEXT]", "BODY.PEEK[HEADER]"])
    for n in (1, 2, 3):
        assert mixed[n][key] == first[n][key]
        assert mixed[n][b"BODY[HEADER]"] + mixed[n][b"BODY[TEXT]"] == msg(f"s{n - 1}")
    r = c.fetch([2], ["BODY[HEADER.FIELDS (SUBJECT)]"])
    assert r[2][b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: s1\r\n\r\n"
    assert b"\\Seen" in c.get_flags([2])[2]
    c.logout()
