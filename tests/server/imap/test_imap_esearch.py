"""ESEARCH (RFC 4731): SEARCH / UID SEARCH RETURN (MIN MAX ALL COUNT), the ESEARCH response,
RFC 7162 §3.1.5's MODSEQ item, and malformed RETURN options. Raw transcripts and imaplib."""

import re
from datetime import datetime, timezone

import pytest

from imap_harness import PASSWORD, msg


@pytest.fixture(scope="module")
def box(srv):
    """Five messages: UIDs u..u+4, \\Flagged on 2 and 4, \\Seen on 1, 2, 5."""
    acc = srv.new_user()
    when = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    flags = [{"\\Seen"}, {"\\Seen", "\\Flagged"}, set(), {"\\Flagged"}, {"\\Seen"}]
    uids = [srv.call(srv.store.append(acc.id, "INBOX", msg(f"m{i}"), frozenset(f), when)).uid
            for i, f in enumerate(flags)]
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    yield c, uids[0], acc
    c.close()


def test_capability(srv):
    caps = srv.raw().cmd(b"c CAPABILITY")[0].split()
    assert {b"ESEARCH", b"SEARCHRES", b"WITHIN"} <= set(caps)


@pytest.mark.parametrize("cmd,expected", [
    (b"SEARCH RETURN (MIN) FLAGGED", b'* ESEARCH (TAG "t1") MIN 2'),
    (b"SEARCH RETURN (MAX) FLAGGED", b'* ESEARCH (TAG "t1") MAX 4'),
    (b"SEARCH RETURN (COUNT) SEEN", b'* ESEARCH (TAG "t1") COUNT 3'),
    (b"SEARCH RETURN (ALL) SEEN", b'* ESEARCH (TAG "t1") ALL 1:2,5'),
    (b"SEARCH RETURN () SEEN", b'* ESEARCH (TAG "t1") ALL 1:2,5'),  # §3.1: () means ALL
    (b"SEARCH RETURN (MIN MAX COUNT ALL) ALL", b'* ESEARCH (TAG "t1") MIN 1 MAX 5 ALL 1:5 COUNT 5'),
    (b"search return (count min) charset utf-8 seen", b'* ESEARCH (TAG "t1") MIN 1 COUNT 3'),
    # Nothing found: MIN, MAX and ALL are left out, COUNT is 0 (§3.1).
    (b"SEARCH RETURN (MIN MAX ALL COUNT) DELETED", b'* ESEARCH (TAG "t1") COUNT 0'),
    (b"SEARCH RETURN (MIN MAX ALL) DELETED", b'* ESEARCH (TAG "t1")'),
])
def test_esearch_seq(box, cmd, expected):
    c, _, _ = box
    r = c.cmd(b"t1 " + cmd)
    assert r == [expected + b"\r\n", b"t1 OK Search completed\r\n"]


def test_esearch_uid(box):
    c, u, _ = box
    r = c.cmd(b"t2 UID SEARCH RETURN (MIN MAX ALL COUNT) UNSEEN")
    assert r[0] == b'* ESEARCH (TAG "t2") UID MIN %d MAX %d ALL %d:%d COUNT 2\r\n' % (u + 2, u + 3, u + 2, u + 3)
    r = c.cmd(b"t3 UID SEARCH RETURN (ALL) UID %d:%d" % (u + 1, u + 3))
    assert r[0] == b'* ESEARCH (TAG "t3") UID ALL %d:%d\r\n' % (u + 1, u + 3)
    r = c.cmd(b"t4 UID SEARCH RETURN (COUNT) DELETED")
    assert r[0] == b'* ESEARCH (TAG "t4") UID COUNT 0\r\n'


def test_plain_search_unchanged(box):
    c, _, _ = box
    assert c.cmd(b"p SEARCH FLAGGED")[0] == b"* SEARCH 2 4\r\n"


@pytest.mark.parametrize("cmd", [
    b"SEARCH RETURN (FOO) ALL",          # unknown option (RFC 4466 extension not supported)
    b"SEARCH RETURN (MIN",               # unclosed
    b"SEARCH RETURN MIN ALL",            # no parentheses
    b"SEARCH RETURN (MIN) ",             # no criteria
    b"SEARCH RETURN (MIN)",
    b"SEARCH RETURN ( ) ALL",
    b"SEARCH RETURN (MIN  MAX) ALL",
    b"SEARCH RETURN (MIN)ALL",
    b"SEARCH RETURN (PARTIAL 1:*) ALL",  # RFC 5267 §4.4: no "*" (more in test_imap_context.py)
    b"SEARCH CHARSET UTF-8 RETURN (MIN) ALL",  # RETURN comes first (RFC 4466 §2.6)
    b"UID SEARCH RETURN (COUNT",
])
def test_malformed_return_is_bad(box, cmd):
    c, _, _ = box
    r = c.cmd(b"b1 " + cmd)
    assert len(r) == 1 and r[0].startswith(b"b1 BAD"), r


def test_modseq_item(box):
    """RFC 7162 §3.1.5: MODSEQ ends the ESEARCH response: the highest of the messages it
    reports (all of them with ALL or COUNT; only the MIN/MAX ones otherwise)."""
    c, u, _ = box
    r = c.cmd(b"f FETCH 1:5 (MODSEQ)")
    ms = [int(re.search(rb"MODSEQ \((\d+)\)", x).group(1)) for x in r if b"FETCH" in x]
    assert len(ms) == 5
    r = c.cmd(b"m1 SEARCH RETURN (ALL) MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "m1") ALL 1:5 MODSEQ %d\r\n' % max(ms)
    r = c.cmd(b"m2 SEARCH RETURN (MIN) MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "m2") MIN 1 MODSEQ %d\r\n' % ms[0]
    r = c.cmd(b"m3 UID SEARCH RETURN (MIN MAX) MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "m3") UID MIN %d MAX %d MODSEQ %d\r\n' % (u, u + 4, max(ms[0], ms[4]))
    r = c.cmd(b"m4 SEARCH RETURN (COUNT) MODSEQ %d" % (max(ms) + 1))
    assert r[0] == b'* ESEARCH (TAG "m4") COUNT 0\r\n'  # nothing found: no MODSEQ


def test_imaplib(srv, box):
    _, _, acc = box
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.search(None, "RETURN", "(COUNT)", "FLAGGED")
    assert typ == "OK" and data == [None]  # imaplib wants * SEARCH; the answer is kept apart:
    assert c.untagged_responses.pop("ESEARCH")[-1].endswith(b") COUNT 2")
    typ, data = c.uid("SEARCH", "RETURN", "(MAX)", "ALL")
    assert typ == "OK"
    got = c.untagged_responses.pop("ESEARCH")[-1]
    assert re.fullmatch(rb'\(TAG "\w+"\) UID MAX \d+', got), got
    c.logout()


def test_not_selected(srv, box):
    _, _, acc = box
    c = srv.raw()
    c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))
    assert c.cmd(b"n SEARCH RETURN (ALL) ALL")[-1].startswith(b"n BAD")
    c.close()
