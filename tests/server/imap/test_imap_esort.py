"""ESORT (RFC 5267 §3): SORT / UID SORT RETURN (MIN MAX ALL COUNT) answered with one ESEARCH
line (MIN/MAX first/last in sort order, ALL in sort order), SAVE (RFC 5182) with SORT, MODSEQ,
and malformed RETURN options. Raw transcripts."""

import re
from datetime import datetime, timezone

import pytest

from imap_harness import PASSWORD, msg

# Sequence number → body size; SIZE order is 3,1,2,6,4,5 (REVERSE: 5,4,6,2,1,3).
BODIES = [200, 300, 100, 500, 600, 400]
FLAGGED = {2, 4, 5}


@pytest.fixture(scope="module")
def box(srv):
    acc = srv.new_user()
    when = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    uids = []
    for i, n in enumerate(BODIES, 1):
        flags = frozenset({"\\Flagged"} if i in FLAGGED else set())
        raw = msg(f"s{i}", body="x" * (n - 2) + "\r\n")
        uids.append(srv.call(srv.store.append(acc.id, "INBOX", raw, flags, when)).uid)
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    yield c, uids, acc
    c.close()


def test_capability(srv):
    caps = set(srv.raw().cmd(b"c CAPABILITY")[0].split())
    assert b"ESORT" in caps
    assert {b"CONTEXT=SORT", b"CONTEXT=SEARCH"} <= caps  # RFC 5267 §4: test_imap_context.py
    assert b"PARTIAL" not in caps  # RFC 9394's UID FETCH PARTIAL is not done


def test_plain_sort_unchanged(box):
    c, _, _ = box
    assert c.cmd(b"p SORT (SIZE) UTF-8 ALL") == [b"* SORT 3 1 2 6 4 5\r\n", b"p OK Sort completed\r\n"]


@pytest.mark.parametrize("cmd,expected", [
    # MIN/MAX are the first/last in sort order, not the lowest/highest numbers (§3).
    (b"SORT RETURN (MIN) (SIZE) UTF-8 ALL", b"MIN 3"),
    (b"SORT RETURN (MAX) (SIZE) UTF-8 ALL", b"MAX 5"),
    (b"SORT RETURN (MIN MAX) (REVERSE SIZE) UTF-8 ALL", b"MIN 5 MAX 3"),
    # ALL in sort order: ranges only for ascending runs in that order.
    (b"SORT RETURN (ALL) (SIZE) UTF-8 ALL", b"ALL 3,1:2,6,4:5"),
    (b"SORT RETURN (ALL) (REVERSE SIZE) UTF-8 ALL", b"ALL 5,4,6,2,1,3"),
    (b"SORT RETURN () (SIZE) UTF-8 FLAGGED", b"ALL 2,4:5"),  # () means ALL
    (b"SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", b"ALL 1:6"),  # ties: sequence order
    (b"SORT RETURN (COUNT) (SIZE) UTF-8 FLAGGED", b"COUNT 3"),
    (b"SORT RETURN (COUNT MAX ALL MIN MIN) (REVERSE SIZE) UTF-8 FLAGGED", b"MIN 5 MAX 2 ALL 5,4,2 COUNT 3"),
    (b"sort return (min) (size) us-ascii not flagged", b"MIN 3"),
    # Nothing found: MIN, MAX and ALL left out, COUNT 0 (RFC 4731 §3.1).
    (b"SORT RETURN (MIN MAX ALL COUNT) (SIZE) UTF-8 DELETED", b"COUNT 0"),
    (b"SORT RETURN (MIN MAX ALL) (SIZE) UTF-8 DELETED", b""),
])
def test_esort_seq(box, cmd, expected):
    c, _, _ = box
    r = c.cmd(b"t1 " + cmd)
    line = b'* ESEARCH (TAG "t1")' + (b" " + expected if expected else b"") + b"\r\n"
    assert r == [line, b"t1 OK Sort completed\r\n"]


def test_esort_uid(box):
    c, uids, _ = box
    u = dict(enumerate(uids, 1))
    r = c.cmd(b"t2 UID SORT RETURN (MIN MAX ALL COUNT) (SIZE) UTF-8 ALL")
    assert r[0] == b'* ESEARCH (TAG "t2") UID MIN %d MAX %d ALL %d,%d:%d,%d,%d:%d COUNT 6\r\n' % (
        u[3], u[5], u[3], u[1], u[2], u[6], u[4], u[5])
    assert r[-1] == b"t2 OK Sort completed\r\n"
    r = c.cmd(b"t3 UID SORT RETURN (ALL) (REVERSE SIZE) UTF-8 FLAGGED")
    assert r[0] == b'* ESEARCH (TAG "t3") UID ALL %d,%d,%d\r\n' % (u[5], u[4], u[2])
    r = c.cmd(b"t4 UID SORT RETURN (COUNT) (SIZE) UTF-8 DELETED")
    assert r[0] == b'* ESEARCH (TAG "t4") UID COUNT 0\r\n'


def test_save(box):
    """RFC 5182 SAVE with SORT: the found set (order does not matter for $); with only MIN
    and/or MAX, just those messages; SAVE alone sends no ESEARCH (§2.4)."""
    c, _, _ = box
    assert c.cmd(b"v1 SORT RETURN (SAVE) (REVERSE SIZE) UTF-8 FLAGGED") == [b"v1 OK Sort completed\r\n"]
    assert c.cmd(b"v2 SEARCH $")[0] == b"* SEARCH 2 4 5\r\n"
    r = c.cmd(b"v3 SORT RETURN (SAVE MIN) (SIZE) UTF-8 ALL")
    assert r == [b'* ESEARCH (TAG "v3") MIN 3\r\n', b"v3 OK Sort completed\r\n"]
    assert c.cmd(b"v4 SEARCH $")[0] == b"* SEARCH 3\r\n"
    c.cmd(b"v5 UID SORT RETURN (SAVE MIN MAX) (REVERSE SIZE) UTF-8 ALL")
    assert c.cmd(b"v6 SEARCH $")[0] == b"* SEARCH 3 5\r\n"
    c.cmd(b"v7 SORT RETURN (SAVE COUNT MIN) (SIZE) UTF-8 FLAGGED")  # COUNT: every message found
    assert c.cmd(b"v8 SEARCH $")[0] == b"* SEARCH 2 4 5\r\n"
    # A BAD leaves the saved result; a NO ([BADCHARSET]) empties it (RFC 5182 §2.1).
    assert c.cmd(b"v9 SORT RETURN (SAVE) (NOSUCHKEY) UTF-8 ALL")[-1].startswith(b"v9 BAD")
    assert c.cmd(b"va SEARCH $")[0] == b"* SEARCH 2 4 5\r\n"
    r = c.cmd(b"vb SORT RETURN (SAVE) (SIZE) X-UNKNOWN ALL")
    assert r[-1].startswith(b"vb NO [BADCHARSET")
    assert c.cmd(b"vc SEARCH $")[0] == b"* SEARCH\r\n"


def test_modseq_item(box):
    c, _, _ = box
    r = c.cmd(b"f FETCH 1:6 (MODSEQ)")
    ms = {int(x.split()[1]): int(re.search(rb"MODSEQ \((\d+)\)", x).group(1)) for x in r if b"FETCH" in x}
    assert len(ms) == 6
    r = c.cmd(b"m1 SORT RETURN (MIN) (SIZE) UTF-8 MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "m1") MIN 3 MODSEQ %d\r\n' % ms[3]
    r = c.cmd(b"m2 SORT RETURN (ALL) (SIZE) UTF-8 MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "m2") ALL 3,1:2,6,4:5 MODSEQ %d\r\n' % max(ms.values())
    r = c.cmd(b"m3 SORT RETURN (COUNT) (SIZE) UTF-8 MODSEQ %d" % (max(ms.values()) + 1))
    assert r[0] == b'* ESEARCH (TAG "m3") COUNT 0\r\n'


@pytest.mark.parametrize("cmd", [
    b"SORT RETURN (FOO) (SIZE) UTF-8 ALL",            # unknown option
    b"SORT RETURN (MIN (SIZE) UTF-8 ALL",             # unclosed
    b"SORT RETURN MIN (SIZE) UTF-8 ALL",              # no parentheses
    b"SORT RETURN (MIN)(SIZE) UTF-8 ALL",             # no space
    b"SORT RETURN ( ) (SIZE) UTF-8 ALL",
    b"SORT RETURN (MIN) UTF-8 ALL",                   # no sort criteria
    b"SORT RETURN (MIN) (SIZE) UTF-8",                # no search criteria
    b"SORT RETURN (MIN) (SIZE)",
    b"SORT RETURN (MIN)",
    b"SORT RETURN (PARTIAL 1:*) (SIZE) UTF-8 ALL",    # RFC 5267 §4.4: no "*" (test_imap_context.py)
    b"SORT RETURN (PARTIAL 1:2 ALL) (SIZE) UTF-8 ALL",  # §4.4: not both
    b"SORT RETURN (UPDATE (SIZE) UTF-8 ALL",
    b"UID SORT RETURN (COUNT (SIZE) UTF-8 ALL",
])
def test_malformed_return_is_bad(box, cmd):
    c, _, _ = box
    r = c.cmd(b"b1 " + cmd)
    assert len(r) == 1 and r[0].startswith(b"b1 BAD"), r


def test_return_after_keys(box):
    """RETURN comes before the sort criteria (RFC 5267 §5); after them it is read as the
    charset, which is unknown: NO [BADCHARSET], as for a plain SORT."""
    c, _, _ = box
    assert c.cmd(b"b2 SORT (SIZE) RETURN (MIN) UTF-8 ALL")[-1].startswith(b"b2 NO [BADCHARSET")


def test_not_selected(srv, box):
    _, _, acc = box
    c = srv.raw()
    c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))
    assert c.cmd(b"n SORT RETURN (ALL) (SIZE) UTF-8 ALL")[-1].startswith(b"n BAD")
    c.close()
