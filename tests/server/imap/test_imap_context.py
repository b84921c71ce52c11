"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): RETURN (UPDATE) contexts kept up to date with
ADDTO/REMOVEFROM as a second connection appends, stores and expunges; positions in mailbox and
sort order, UIDs and sequence numbers; CANCELUPDATE; PARTIAL (with RFC 9394's negative ranges);
the NOUPDATE limit; updates during IDLE and after the session's own changes. Raw transcripts."""

import re
from datetime import UTC, datetime

import pytest
from imap_harness import PASSWORD, msg

from postroom.imap.handlers.context import MAX_CONTEXTS

WHEN = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
# Body sizes of the five messages: SIZE order is 3,1,4,2,5.
SIZES = [200, 400, 100, 300, 500]


def login(srv, acc, select=b"INBOX"):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    if select:
        assert c.cmd(b"s SELECT " + select)[-1].startswith(b"s OK")
    return c


def fill(srv):
    """A new account with five messages: \\Seen on 1 and 3, \\Flagged on 2 and 4, sizes as SIZES."""
    acc = srv.new_user()
    flags = [{"\\Seen"}, {"\\Flagged"}, {"\\Seen"}, {"\\Flagged"}, set()]
    uids = [srv.call(srv.store.append(acc.id, "INBOX", msg(f"m{i}", body="x" * (n - 2) + "\r\n"),
                                      frozenset(f), WHEN)).uid
            for i, (f, n) in enumerate(zip(flags, SIZES), 1)]
    return acc, uids


@pytest.fixture
def two(srv):
    """Five messages (\\Flagged on 2 and 4, \\Seen on 1 and 3) and two selected sessions:
    ``c`` keeps contexts, ``o`` makes the changes."""
    acc, uids = fill(srv)
    c, o = login(srv, acc), login(srv, acc)
    yield c, o, uids
    c.close()
    o.close()


@pytest.fixture(scope="module")
def ro(srv):
    """The same five messages and one selected session, for tests that change nothing; a
    context "k1" exists (for CANCELUPDATE)."""
    acc, uids = fill(srv)
    c = login(srv, acc)
    assert c.cmd(b"k1 SEARCH RETURN (UPDATE) ALL")[-1].startswith(b"k1 OK")
    yield c, uids
    c.close()


def append(o, raw, flags=b""):
    """APPEND through the other session (LITERAL+); the new UID from APPENDUID."""
    o.send(b"a APPEND INBOX (%s) {%d+}\r\n" % (flags, len(raw)) + raw + b"\r\n")
    r = o.until_tagged(b"a")
    m = re.search(rb"APPENDUID \d+ (\d+)", r[-1])
    assert m, r
    return int(m.group(1))


def esearch(lines, tag):
    return [x for x in lines if x.startswith(b'* ESEARCH (TAG "%s")' % tag)]


def test_capability(srv):
    caps = set(srv.raw().cmd(b"c CAPABILITY")[0].split())
    assert {b"CONTEXT=SEARCH", b"CONTEXT=SORT", b"ESORT", b"ESEARCH"} <= caps


def test_uid_search_context_follows_flags_appends_expunges(two):
    c, o, u = two
    r = c.cmd(b"u1 UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
    assert r == [b'* ESEARCH (TAG "u1") UID COUNT 2\r\n', b"u1 OK Search completed\r\n"]
    # Message 3 becomes flagged: it enters between 2 and 4 (position 2).
    o.cmd(b"f STORE 3 +FLAGS (\\Flagged)")
    r = c.cmd(b"n1 NOOP")
    assert esearch(r, b"u1") == [b'* ESEARCH (TAG "u1") UID ADDTO (2 %d)\r\n' % u[2]]
    # Message 2 is unflagged: it leaves from position 1.
    o.cmd(b"f STORE 2 -FLAGS (\\Flagged)")
    r = c.cmd(b"n2 NOOP")
    assert esearch(r, b"u1") == [b'* ESEARCH (TAG "u1") UID REMOVEFROM (1 %d)\r\n' % u[1]]
    # A flag change that does not change the match sends nothing for the context.
    o.cmd(b"f STORE 3 +FLAGS (\\Answered)")
    r = c.cmd(b"n3 NOOP")
    assert esearch(r, b"u1") == [] and any(b"FETCH" in x for x in r)
    # New flagged mail: ADDTO after the EXISTS, at the end (result is now u3, u4).
    new = append(o, msg("new"), b"\\Flagged")
    r = c.cmd(b"n4 NOOP")
    line = b'* ESEARCH (TAG "u1") UID ADDTO (3 %d)\r\n' % new
    assert line in r and r.index(b"* 6 EXISTS\r\n") < r.index(line)
    # An unflagged one: nothing.
    append(o, msg("plain"))
    r = c.cmd(b"n5 NOOP")
    assert b"* 7 EXISTS\r\n" in r and esearch(r, b"u1") == []
    # Expunge of a member: REMOVEFROM before the EXPUNGE (§4.3.4).
    o.cmd(b"f STORE 4 +FLAGS (\\Deleted)")
    o.cmd(b"e EXPUNGE")
    r = c.cmd(b"n6 NOOP")
    line = b'* ESEARCH (TAG "u1") UID REMOVEFROM (2 %d)\r\n' % u[3]
    assert line in r and r.index(line) < r.index(b"* 4 EXPUNGE\r\n")
    # The context now is u3, new: the same as a fresh search.
    r = c.cmd(b"x UID SEARCH RETURN (ALL) FLAGGED")
    assert r[0] == b'* ESEARCH (TAG "x") UID ALL %d,%d\r\n' % (u[2], new)


def test_seq_context_and_held_expunges(two):
    c, o, _ = two
    r = c.cmd(b"s1 SEARCH RETURN (UPDATE ALL) UNSEEN")
    assert r[0] == b'* ESEARCH (TAG "s1") ALL 2,4:5\r\n'
    o.cmd(b"f STORE 4 +FLAGS (\\Deleted)")
    o.cmd(b"e EXPUNGE")
    # FETCH may not be followed by EXPUNGE (RFC 3501 §7.4.1): no REMOVEFROM for it either.
    r = c.cmd(b"f1 FETCH 1 (FLAGS)")
    assert esearch(r, b"s1") == [] and not any(b"EXPUNGE" in x for x in r)
    # A flag change meanwhile still goes out, with the numbers the client knows (4 is still there).
    o.cmd(b"g STORE 3 -FLAGS (\\Seen)")
    r = c.cmd(b"f2 FETCH 1 (FLAGS)")
    assert esearch(r, b"s1") == [b'* ESEARCH (TAG "s1") ADDTO (2 3)\r\n']
    # NOOP: REMOVEFROM with the old number, then the EXPUNGE.
    r = c.cmd(b"n NOOP")
    line = b'* ESEARCH (TAG "s1") REMOVEFROM (3 4)\r\n'
    assert line in r and r.index(line) < r.index(b"* 4 EXPUNGE\r\n")
    # A new unseen message: its sequence number after the EXISTS.
    append(o, msg("new"))
    r = c.cmd(b"n2 NOOP")
    assert esearch(r, b"s1") == [b'* ESEARCH (TAG "s1") ADDTO (4 5)\r\n']
    assert c.cmd(b"x SEARCH UNSEEN")[0] == b"* SEARCH 2 3 4 5\r\n"


def test_sort_context_positions_in_sort_order(two):
    c, o, u = two
    r = c.cmd(b"t1 UID SORT RETURN (UPDATE ALL) (SIZE) UTF-8 ALL")
    order = [u[2], u[0], u[3], u[1], u[4]]  # sizes 100, 200, 300, 400, 500
    assert r[0] == b'* ESEARCH (TAG "t1") UID ALL %s\r\n' % ",".join(map(str, order)).encode()
    r = c.cmd(b"t2 SORT RETURN (UPDATE COUNT) (REVERSE SIZE) UTF-8 UNFLAGGED")
    assert r[0] == b'* ESEARCH (TAG "t2") COUNT 3\r\n'  # 5, 1, 3 in that order
    # A 250-byte message sorts between 200 and 300: position 3 ascending; position 2 of
    # the reverse context (after 500, before 200).
    new = append(o, msg("mid", body="x" * 248 + "\r\n"))
    r = c.cmd(b"n1 NOOP")
    assert esearch(r, b"t1") + esearch(r, b"t2") == [b'* ESEARCH (TAG "t1") UID ADDTO (3 %d)\r\n' % new,
                                                   b'* ESEARCH (TAG "t2") ADDTO (2 6)\r\n']
    # The reverse context is 5, 6, 1, 3. Flagging 1 (200) takes it out of position 3;
    # unflagging 4 (300) puts it in at position 2: removals first, in one line (§4.3.2).
    o.cmd(b"f STORE 4 -FLAGS (\\Flagged)")
    o.cmd(b"g STORE 1 +FLAGS (\\Flagged)")
    r = c.cmd(b"n2 NOOP")
    assert esearch(r, b"t1") == []  # flags do not move anything in an ALL context
    assert esearch(r, b"t2") == [b'* ESEARCH (TAG "t2") REMOVEFROM (3 1) ADDTO (2 4)\r\n']
    assert c.cmd(b"y SORT RETURN (ALL) (REVERSE SIZE) UTF-8 UNFLAGGED")[0] == b'* ESEARCH (TAG "y") ALL 5,4,6,3\r\n'
    # Expunge of the smallest message: REMOVEFROM at its sort position 1, before the EXPUNGE.
    o.cmd(b"f STORE 3 +FLAGS (\\Deleted)")
    o.cmd(b"e EXPUNGE")
    r = c.cmd(b"n3 NOOP")
    line = b'* ESEARCH (TAG "t1") UID REMOVEFROM (1 %d)\r\n' % u[2]
    assert line in r and r.index(line) < r.index(b"* 3 EXPUNGE\r\n")
    assert b'* ESEARCH (TAG "t2") REMOVEFROM (4 3)\r\n' in r


def test_own_changes_and_content_keys(two):
    c, o, u = two
    c.cmd(b"h1 UID SEARCH RETURN (UPDATE) SUBJECT hot")  # UPDATE alone: answered as ALL
    c.cmd(b"h2 UID SEARCH RETURN (UPDATE MIN) SEEN")
    # The session's own STORE changes its contexts too, after the STORE's own FETCH.
    r = c.cmd(b"st STORE 2 +FLAGS (\\Seen)")
    assert esearch(r, b"h2") == [b'* ESEARCH (TAG "h2") UID ADDTO (2 %d)\r\n' % u[1]]
    assert esearch(r, b"h1") == []
    hot = append(o, msg("hot news"))
    append(o, msg("cold news"))
    r = c.cmd(b"n NOOP")
    assert esearch(r, b"h1") == [b'* ESEARCH (TAG "h1") UID ADDTO (1 %d)\r\n' % hot]


def test_update_alone_answers_all(two):
    c, _, u = two
    assert c.cmd(b"a SEARCH RETURN (UPDATE) FLAGGED")[0] == b'* ESEARCH (TAG "a") ALL 2,4\r\n'
    assert c.cmd(b"b UID SEARCH RETURN (CONTEXT UPDATE) FLAGGED")[0] == \
        b'* ESEARCH (TAG "b") UID ALL %d,%d\r\n' % (u[1], u[3])
    # CONTEXT alone is a hint: the answer is RETURN ()'s.
    assert c.cmd(b"c SEARCH RETURN (CONTEXT) FLAGGED")[0] == b'* ESEARCH (TAG "c") ALL 2,4\r\n'


def test_frozen_sequence_numbers(two):
    """``SEARCH RETURN (UPDATE) 2:3`` follows those two messages through renumbering."""
    c, o, u = two
    assert c.cmd(b"q UID SEARCH RETURN (UPDATE) 2:3 UNSEEN")[0] == b'* ESEARCH (TAG "q") UID ALL %d\r\n' % u[1]
    o.cmd(b"f STORE 1 +FLAGS (\\Deleted)")
    o.cmd(b"e EXPUNGE")
    c.cmd(b"n1 NOOP")
    # Old message 3 (now 2) becomes unseen: it is one of the two.
    o.cmd(b"g STORE 2 -FLAGS (\\Seen)")
    r = c.cmd(b"n2 NOOP")
    assert esearch(r, b"q") == [b'* ESEARCH (TAG "q") UID ADDTO (2 %d)\r\n' % u[2]]
    # Old message 4 (now 3, unseen already) is not, whatever its number now.
    o.cmd(b"h STORE 3 +FLAGS (\\Answered)")
    assert esearch(c.cmd(b"n3 NOOP"), b"q") == []


def test_modseq_context(two):
    c, o, u = two
    r = c.cmd(b"f FETCH 1:5 (MODSEQ)")
    top = max(int(m.group(1)) for x in r if (m := re.search(rb"MODSEQ \((\d+)\)", x)))
    r = c.cmd(b"m UID SEARCH RETURN (UPDATE COUNT) MODSEQ %d" % (top + 1))
    assert r[0] == b'* ESEARCH (TAG "m") UID COUNT 0\r\n'
    o.cmd(b"s STORE 5 +FLAGS (\\Answered)")
    r = c.cmd(b"n NOOP")
    got = esearch(r, b"m")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", next(x for x in r if b"FETCH" in x)).group(1))
    assert got == [b'* ESEARCH (TAG "m") UID ADDTO (1 %d) MODSEQ %d\r\n' % (u[4], modseq)]


def lines_until(c, last):
    """Lines pushed to an idling session, up to and including ``last``."""
    out = [c.line()]
    while out[-1] != last:
        out.append(c.line())
    return out


def test_updates_during_idle(two):
    c, o, u = two
    c.cmd(b"i1 UID SEARCH RETURN (UPDATE) FLAGGED")
    c.send(b"i IDLE\r\n")
    assert c.line().startswith(b"+")
    new = append(o, msg("urgent"), b"\\Flagged")
    addto = b'* ESEARCH (TAG "i1") UID ADDTO (3 %d)\r\n' % new
    got = lines_until(c, addto)
    assert got.index(b"* 6 EXISTS\r\n") < got.index(addto)
    o.cmd(b"f STORE 2 -FLAGS (\\Flagged)")
    got = lines_until(c, b'* ESEARCH (TAG "i1") UID REMOVEFROM (1 %d)\r\n' % u[1])
    assert got[0].startswith(b"* 2 FETCH")
    o.cmd(b"g STORE 4 +FLAGS (\\Deleted)")
    o.cmd(b"e EXPUNGE")
    got = lines_until(c, b"* 4 EXPUNGE\r\n")
    assert got[-2] == b'* ESEARCH (TAG "i1") UID REMOVEFROM (1 %d)\r\n' % u[3]
    c.send(b"DONE\r\n")
    assert c.until_tagged(b"i")[-1].startswith(b"i OK")


def test_cancelupdate(two):
    c, o, _ = two
    c.cmd(b"k1 UID SEARCH RETURN (UPDATE) FLAGGED")
    c.cmd(b"k2 SEARCH RETURN (UPDATE) FLAGGED")
    c.cmd(b"k3 UID SORT RETURN (UPDATE) (SIZE) UTF-8 FLAGGED")
    assert c.cmd(b'x CANCELUPDATE "k1" "k3"') == [b"x OK CANCELUPDATE completed\r\n"]
    o.cmd(b"f STORE 1 +FLAGS (\\Flagged)")
    r = c.cmd(b"n NOOP")
    assert esearch(r, b"k1") == [] and esearch(r, b"k3") == []
    assert esearch(r, b"k2") == [b'* ESEARCH (TAG "k2") ADDTO (1 1)\r\n']
    # A cancelled tag names no context: BAD, and nothing else is cancelled either.
    assert c.cmd(b'y CANCELUPDATE "k2" "k1"')[0].startswith(b"y BAD")
    o.cmd(b"g STORE 1 -FLAGS (\\Flagged)")
    assert esearch(c.cmd(b"n2 NOOP"), b"k2") == [b'* ESEARCH (TAG "k2") REMOVEFROM (1 1)\r\n']
    # Its tag is free again after a cancel (§4.3.5: the client may search again).
    assert c.cmd(b'z CANCELUPDATE "k2"')[-1].startswith(b"z OK")
    assert c.cmd(b"k2 SEARCH RETURN (UPDATE) FLAGGED")[-1].startswith(b"k2 OK")


@pytest.mark.parametrize("cmd", [
    b"CANCELUPDATE",            # at least one tag
    b"CANCELUPDATE k1",         # tags are quoted strings
    b'CANCELUPDATE "k1" ',
    b'CANCELUPDATE "k1""k2"',
    b'CANCELUPDATE "nope"',     # no such context
])
def test_cancelupdate_bad(ro, cmd):
    c, _ = ro
    r = c.cmd(b"b " + cmd)
    assert len(r) == 1 and r[0].startswith(b"b BAD"), r


def test_tag_reuse_is_bad(two):
    c, _, _ = two
    assert c.cmd(b"r1 SEARCH RETURN (UPDATE) FLAGGED")[-1].startswith(b"r1 OK")
    r = c.cmd(b"r1 UID SEARCH RETURN (UPDATE COUNT) SEEN")
    assert len(r) == 1 and r[0].startswith(b"r1 BAD"), r
    r = c.cmd(b"r1 SORT RETURN (UPDATE) (SIZE) UTF-8 ALL")
    assert len(r) == 1 and r[0].startswith(b"r1 BAD"), r
    # Without UPDATE the tag is an ordinary tag.
    assert c.cmd(b"r1 SEARCH RETURN (COUNT) ALL")[0] == b'* ESEARCH (TAG "r1") COUNT 5\r\n'


def test_too_many_contexts(two):
    c, o, _ = two
    for i in range(MAX_CONTEXTS):
        r = c.cmd(b"c%d SEARCH RETURN (UPDATE COUNT) FLAGGED" % i)
        assert not any(b"NOUPDATE" in x for x in r), r
    r = c.cmd(b"over SEARCH RETURN (UPDATE COUNT) FLAGGED")
    # §4.3.1: an untagged NO [NOUPDATE], the other options still answered, tagged OK.
    assert r == [b'* NO [NOUPDATE "over"] Too many contexts\r\n', b'* ESEARCH (TAG "over") COUNT 2\r\n',
                 b"over OK Search completed\r\n"]
    r = c.cmd(b"over2 SORT RETURN (UPDATE MIN) (SIZE) UTF-8 FLAGGED")
    assert r[0] == b'* NO [NOUPDATE "over2"] Too many contexts\r\n' and r[1] == b'* ESEARCH (TAG "over2") MIN 4\r\n'  # SIZE: 4 before 2
    o.cmd(b"f STORE 1 +FLAGS (\\Flagged)")
    r = c.cmd(b"n NOOP")
    assert esearch(r, b"over") == [] and len(esearch(r, b"c0")) == 1
    assert c.cmd(b'x CANCELUPDATE "c0"')[-1].startswith(b"x OK")
    assert not any(b"NOUPDATE" in x for x in c.cmd(b"again SEARCH RETURN (UPDATE) FLAGGED"))


def test_time_dependent_criteria_refused(two):
    c, _, _ = two
    r = c.cmd(b"w SEARCH RETURN (UPDATE COUNT) YOUNGER 3600")
    assert r[0].startswith(b'* NO [NOUPDATE "w"]') and r[1] == b'* ESEARCH (TAG "w") COUNT 0\r\n'
    assert r[-1].startswith(b"w OK")


def test_update_needs_selected_mailbox(srv):
    acc = srv.new_user()
    c = login(srv, acc, select=None)
    assert c.cmd(b"a SEARCH RETURN (UPDATE) ALL")[0].startswith(b"a BAD")
    assert c.cmd(b'b CANCELUPDATE "a"')[0].startswith(b"b BAD")
    c.close()


def test_reselect_ends_contexts(two):
    c, o, _ = two
    c.cmd(b"e1 SEARCH RETURN (UPDATE) FLAGGED")
    c.cmd(b"s2 SELECT INBOX")
    o.cmd(b"f STORE 1 +FLAGS (\\Flagged)")
    assert esearch(c.cmd(b"n NOOP"), b"e1") == []
    assert c.cmd(b'x CANCELUPDATE "e1"')[0].startswith(b"x BAD")
    assert c.cmd(b"e1 SEARCH RETURN (UPDATE) FLAGGED")[-1].startswith(b"e1 OK")  # the tag is free


@pytest.mark.parametrize("cmd,expected", [
    (b"SEARCH RETURN (PARTIAL 1:2) ALL", b"PARTIAL (1:2 1:2)"),
    (b"SEARCH RETURN (PARTIAL 2:1) ALL", b"PARTIAL (2:1 1:2)"),  # §4.4: 2:1 is 1:2
    (b"SEARCH RETURN (PARTIAL 2:4) UNSEEN", b"PARTIAL (2:4 4:5)"),  # results 2, 4, 5
    (b"SEARCH RETURN (PARTIAL 4:100) ALL", b"PARTIAL (4:100 4:5)"),  # runs past the end
    (b"SEARCH RETURN (PARTIAL 6:10) ALL", b"PARTIAL (6:10 NIL)"),
    (b"SEARCH RETURN (PARTIAL 1:5) DELETED", b"PARTIAL (1:5 NIL)"),
    # RFC 9394 §3.1: counted from the end, -1 the last result; answered in mailbox order.
    (b"SEARCH RETURN (PARTIAL -1:-2) ALL", b"PARTIAL (-1:-2 4:5)"),
    (b"SEARCH RETURN (PARTIAL -3:-1) UNSEEN", b"PARTIAL (-3:-1 2,4:5)"),
    (b"SEARCH RETURN (PARTIAL -4:-9) ALL", b"PARTIAL (-4:-9 1:2)"),
    (b"SEARCH RETURN (PARTIAL -6:-9) ALL", b"PARTIAL (-6:-9 NIL)"),
    (b"SEARCH RETURN (COUNT PARTIAL 1:1 MAX) FLAGGED", b"MAX 4 PARTIAL (1:1 2) COUNT 2"),
    # CONTEXT=SORT: the window is of the sort order (SIZE: 3,1,4,2,5).
    (b"SORT RETURN (PARTIAL 2:3) (SIZE) UTF-8 ALL", b"PARTIAL (2:3 1,4)"),
    (b"SORT RETURN (PARTIAL -1:-2) (REVERSE SIZE) UTF-8 ALL", b"PARTIAL (-1:-2 1,3)"),
    (b"SORT RETURN (PARTIAL 1:9) (SIZE) UTF-8 FLAGGED", b"PARTIAL (1:9 4,2)"),
])
def test_partial(ro, cmd, expected):
    c, _ = ro
    r = c.cmd(b"p " + cmd)
    assert r[0] == b'* ESEARCH (TAG "p") ' + expected + b"\r\n", r
    assert r[-1].startswith(b"p OK")


def test_partial_uid_and_save(two):
    c, _, u = two
    r = c.cmd(b"p UID SEARCH RETURN (PARTIAL 2:3) ALL")
    assert r[0] == b'* ESEARCH (TAG "p") UID PARTIAL (2:3 %d:%d)\r\n' % (u[1], u[2])
    # SAVE with PARTIAL keeps the window (as with MIN/MAX, RFC 5182 §2.4).
    c.cmd(b"q SEARCH RETURN (SAVE PARTIAL -1:-1) ALL")
    assert c.cmd(b"f FETCH $ (UID)")[0] == b"* 5 FETCH (UID %d)\r\n" % u[4]


@pytest.mark.parametrize("cmd", [
    b"SEARCH RETURN (PARTIAL) ALL",
    b"SEARCH RETURN (PARTIAL 0:5) ALL",
    b"SEARCH RETURN (PARTIAL 1:0) ALL",
    b"SEARCH RETURN (PARTIAL 1:*) ALL",
    b"SEARCH RETURN (PARTIAL 5) ALL",
    b"SEARCH RETURN (PARTIAL 1:-3) ALL",
    b"SEARCH RETURN (PARTIAL -1:3) ALL",
    b"SEARCH RETURN (PARTIAL 1:4294967296) ALL",
    b"SEARCH RETURN (PARTIAL 1:2,4) ALL",
    b"SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
    b"SEARCH RETURN (PARTIAL 1:2 ALL) ALL",  # §4.4: not both
    b"SEARCH RETURN (ALL PARTIAL 1:2) ALL",
    b"UID SORT RETURN (PARTIAL 1:x) (SIZE) UTF-8 ALL",
    b"SEARCH RETURN (UPDATE FOO) ALL",
])
def test_partial_malformed_is_bad(ro, cmd):
    c, _ = ro
    r = c.cmd(b"b " + cmd)
    assert len(r) == 1 and r[0].startswith(b"b BAD"), r


def expand(s):
    out = []
    for part in s.split(b","):
        lo, _, hi = part.partition(b":")
        out += range(int(lo), int(hi or lo) + 1) if int(hi or lo) >= int(lo) else [int(lo)]
    return out


def apply(result, line):
    """A client's reading of one update line (§4.3.2–§4.3.4): the pairs in order."""
    for kind, body in re.findall(rb"(ADDTO|REMOVEFROM) \(([^)]*)\)", line):
        words = body.split()
        for pos, nums in zip(words[::2], words[1::2]):
            pos, nums = int(pos), expand(nums)
            if kind == b"ADDTO":
                result[pos - 1:pos - 1] = nums
            else:
                assert result[pos - 1:pos - 1 + len(nums)] == nums, (result, line)
                del result[pos - 1:pos - 1 + len(nums)]
    return result


def all_of(lines, tag):
    (line,) = esearch(lines, tag)
    m = re.search(rb" ALL (\S+)", line)
    return expand(m.group(1)) if m else []


def test_many_changes_kept_in_step(srv):
    """Bulk changes (past the in-place limit: the lists are rebuilt) and a mix of appends, flag
    changes and expunges: a client applying every update keeps exactly what a new SEARCH or
    SORT finds, for UID and sequence-number contexts."""
    acc = srv.new_user()
    for i in range(40):
        srv.call(srv.store.append(acc.id, "INBOX", msg(f"b{i % 7}", body="y" * (i * 37 % 300) + "\r\n"),
                                  frozenset({"\\Seen"} if i % 3 else set()), WHEN))
    c, o = login(srv, acc), login(srv, acc)
    queries = {b"q1": b"UID SEARCH RETURN (UPDATE ALL) UNSEEN",
               b"q2": b"SEARCH RETURN (UPDATE ALL) OR FLAGGED SUBJECT b3",
               b"q3": b"UID SORT RETURN (UPDATE ALL) (REVERSE SIZE SUBJECT) UTF-8 UNFLAGGED",
               b"q4": b"SORT RETURN (UPDATE ALL) (SUBJECT REVERSE ARRIVAL) UTF-8 ALL",
               b"q5": b"UID SEARCH RETURN (UPDATE ALL) UNSEEN SUBJECT b2",
               b"q6": b"UID SORT RETURN (UPDATE ALL) (SIZE) UTF-8 NOT OR SEEN BODY zzz"}
    kept = {t: all_of(c.cmd(t + b" " + q), t) for t, q in queries.items()}
    steps = [b"STORE 1:40 -FLAGS (\\Seen)", b"STORE 2:30 +FLAGS (\\Flagged)", None,
             b"STORE 5,9,11:14 +FLAGS (\\Deleted)", b"EXPUNGE", b"STORE 1:* +FLAGS (\\Seen)",
             None, b"STORE 3:20 -FLAGS (\\Flagged \\Seen)", b"STORE 1:* +FLAGS (\\Deleted)", b"EXPUNGE"]
    for n, step in enumerate(steps):
        if step is None:  # a burst of new mail, more than the in-place limit
            for i in range(35):
                append(o, msg(f"b{i % 5}", body="z" * (i * 53 % 400) + "\r\n"), b"\\Flagged" if i % 2 else b"")
        else:
            assert o.cmd(b"o " + step)[-1].startswith(b"o OK")
        for line in c.cmd(b"n%d NOOP" % n):  # in order: a REMOVEFROM comes before its EXPUNGE
            if m := re.match(rb'\* ESEARCH \(TAG "(\w+)"\)', line):
                apply(kept[m.group(1)], line)
            elif m := re.match(rb"\* (\d+) EXPUNGE", line):  # sequence numbers above it move down
                gone = int(m.group(1))
                for t in (b"q2", b"q4"):
                    assert gone not in kept[t]
                    kept[t] = [x - 1 if x > gone else x for x in kept[t]]
        for t, q in queries.items():
            fresh = c.cmd(b"f " + q.replace(b"UPDATE ", b""))
            assert kept[t] == all_of(fresh, b"f"), (step, t)


def test_qresync_and_own_move(srv):
    """With QRESYNC, REMOVEFROM comes before VANISHED; the session's own MOVE updates its
    contexts before its EXPUNGE lines."""
    acc, u = fill(srv)
    c = login(srv, acc, select=None)
    c.cmd(b"e ENABLE QRESYNC")
    c.cmd(b"s SELECT INBOX")
    c.cmd(b"v1 UID SEARCH RETURN (UPDATE) FLAGGED")
    c.cmd(b"v2 SEARCH RETURN (UPDATE PARTIAL 1:1) ALL")  # PARTIAL does not narrow the updates
    r = c.cmd(b"m UID MOVE %d Trash" % u[3])
    assert r.index(b'* ESEARCH (TAG "v1") UID REMOVEFROM (2 %d)\r\n' % u[3]) < r.index(b"* VANISHED %d\r\n" % u[3])
    assert b'* ESEARCH (TAG "v2") REMOVEFROM (4 4)\r\n' in r
    o = login(srv, acc)
    o.cmd(b"d STORE 2 +FLAGS (\\Deleted)")
    o.cmd(b"x EXPUNGE")
    r = c.cmd(b"n NOOP")
    assert r.index(b'* ESEARCH (TAG "v1") UID REMOVEFROM (1 %d)\r\n' % u[1]) < r.index(b"* VANISHED %d\r\n" % u[1])
    c.close()
    o.close()
