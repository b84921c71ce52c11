"""SORT, UID SORT, THREAD, UID THREAD (RFC 5256) and SORT=DISPLAY (RFC 5957)."""

from datetime import datetime, timezone

import pytest

from imap_harness import PASSWORD


def mk(subject, frm, to, date, mid, refs="", cc="", irt=""):
    extra = (f"References: {refs}\r\n" if refs else "") + (f"Cc: {cc}\r\n" if cc else "") + \
        (f"In-Reply-To: {irt}\r\n" if irt else "")
    d = f"Date: {date}\r\n" if date else ""
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n{d}Message-ID: {mid}\r\n{extra}\r\nbody\r\n").encode()


MSGS = [  # seq: subject, from, to, date, message-id, references, cc
    ("Hello", "Zed <zed@b.test>", "amy@x.test", "Mon, 5 Feb 2024 10:00:00 +0000", "<a@t>", "", "c@x.test"),
    ("Re: hello", "=?utf-8?q?=C3=89mile?= <emile@b.test>", "Bob <bob@x.test>", "Mon, 5 Feb 2024 09:00:00 -0300",
     "<b@t>", "<a@t>", ""),
    ("[list] Other topic (fwd)", "amy@a.test", "zoe@x.test", "", "<c@t>", "", "a@x.test"),
    ("Fwd: Re: HELLO", "bob@b.test", "=?utf-8?q?=C3=85sa?= <asa@x.test>", "Sun, 4 Feb 2024 10:00:00 +0000",
     "<d@t>", "<a@t> <b@t>", ""),
    ("other topic", "Carl <carl@c.test>", "", "Tue, 6 Feb 2024 10:00:00 +0000", "<e@t>", "<zz@t>", ""),
]
ARRIVALS = [datetime(2024, 3, d, tzinfo=timezone.utc) for d in (5, 1, 3, 2, 4)]


@pytest.fixture(scope="module")
def raw(srv):
    acc = srv.new_user()
    for (subj, frm, to, date, mid, refs, cc), when in zip(MSGS, ARRIVALS):
        srv.call(srv.store.append(acc.id, "INBOX", mk(subj, frm, to, date, mid, refs, cc), frozenset(), when))
    c = srv.raw()
    c.cmd(b"a LOGIN " + acc.address.encode() + b" " + PASSWORD.encode())
    c.cmd(b"b SELECT INBOX")
    yield c
    c.close()


def one(c, cmd: bytes) -> bytes:
    lines = c.cmd(cmd)
    assert lines[-1].split()[1] == b"OK", lines
    (line,) = [x for x in lines if x.startswith(b"* SORT") or x.startswith(b"* THREAD")]
    return line.rstrip(b"\r\n")


@pytest.mark.parametrize("keys,expected", [
    ("ARRIVAL", "2 4 3 5 1"),
    ("REVERSE ARRIVAL", "1 5 3 4 2"),
    ("DATE", "4 1 2 5 3"),  # seq 3 has no Date: its internal date (3 Mar 2024)
    ("SIZE", None),
    ("SUBJECT", "1 2 4 3 5"),
    ("SUBJECT DATE", "4 1 2 5 3"),
    ("FROM", "3 4 5 2 1"),
    ("TO", "5 1 4 2 3"),
    ("CC", "2 4 5 3 1"),
    # i;unicode-casemap, as Dovecot (threadalg.subject_key): "Émile" sorts with E, "Åsa" with A
    ("DISPLAYFROM", "3 4 5 2 1"),
    ("DISPLAYTO", "5 1 4 2 3"),
    ("REVERSE SUBJECT ARRIVAL", "3 5 2 4 1"),
])
def test_sort_keys(raw, keys, expected):
    line = one(raw, b"s SORT (" + keys.encode() + b") UTF-8 ALL")
    if expected is not None:
        assert line == b"* SORT " + expected.encode()


def test_uid_sort_and_criteria(raw):
    assert one(raw, b"s UID SORT (ARRIVAL) US-ASCII 2:4") == b"* SORT 2 4 3"
    assert one(raw, b"s SORT (SUBJECT) US-ASCII SUBJECT topic") == b"* SORT 3 5"
    assert one(raw, b"s SORT (SUBJECT) UTF-8 FROM {6}\r\n\xc3\x89mile") == b"* SORT 2"
    assert one(raw, b"s SORT (ARRIVAL) UTF-8 SUBJECT nothing") == b"* SORT"


def test_sort_errors(raw):
    assert raw.cmd(b"e SORT (ARRIVAL) KOI8-R ALL")[-1].startswith(b"e NO [BADCHARSET")
    for bad in (b"e SORT (NOPE) UTF-8 ALL", b"e SORT ARRIVAL UTF-8 ALL", b"e SORT (ARRIVAL) UTF-8",
                b"e SORT (REVERSE) UTF-8 ALL", b"e SORT () UTF-8 ALL", b"e THREAD FOO UTF-8 ALL"):
        assert raw.cmd(bad)[-1].startswith(b"e BAD"), bad


def test_thread_orderedsubject(raw):
    # hello group by date: 4 (4 Feb), 1, 2; topic group: 3 (no Date: arrival 3 Mar), 5 (6 Feb) → 5 first
    assert one(raw, b"t THREAD ORDEREDSUBJECT UTF-8 ALL") == b"* THREAD (4 (1)(2))(5 3)"


def test_thread_references(raw):
    # a ← b ← d by References; e's parent <zz@t> is a missing message (dummy with one child,
    # promoted); c, "(fwd)", is a forward of e (same base subject), so its child.
    assert one(raw, b"t THREAD REFERENCES UTF-8 ALL") == b"* THREAD (1 2 4)(5 3)"
    assert one(raw, b"t UID THREAD REFERENCES UTF-8 1:2") == b"* THREAD (1 2)"
    assert one(raw, b"t THREAD REFERENCES UTF-8 SUBJECT nothing") == b"* THREAD"


def test_capabilities(raw):
    caps = raw.cmd(b"c CAPABILITY")[0].split()
    for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
        assert cap in caps
