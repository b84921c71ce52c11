"""ENABLE (RFC 5161) and CONDSTORE (RFC 7162 §3.1): MODSEQ, HIGHESTMODSEQ, CHANGEDSINCE,
UNCHANGEDSINCE, SEARCH MODSEQ. Raw transcripts, so every byte of the answers is checked."""

import re

from imap_harness import PASSWORD, msg


def login(srv, acc):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return c


def modseqs(lines):
    """{uid: modseq} from FETCH responses carrying UID and MODSEQ."""
    out = {}
    for line in lines:
        m = re.search(rb"UID (\d+)", line)
        n = re.search(rb"MODSEQ \((\d+)\)", line)
        if m and n:
            out[int(m.group(1))] = int(n.group(1))
    return out


def highestmodseq(lines):
    for line in lines:
        m = re.search(rb"\[HIGHESTMODSEQ (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def test_enable(srv):
    acc = srv.new_user()
    c = srv.raw()
    assert c.cmd(b"a ENABLE CONDSTORE")[-1].startswith(b"a BAD")  # not authenticated yet
    c.close()
    c = login(srv, acc)
    caps = c.cmd(b"k CAPABILITY")[0].split()
    assert {b"ENABLE", b"CONDSTORE", b"QRESYNC"} <= set(caps)
    assert c.cmd(b"b ENABLE")[-1].startswith(b"b BAD")
    r = c.cmd(b"c ENABLE CONDSTORE X-UNKNOWN")
    assert r == [b"* ENABLED CONDSTORE\r\n", b"c OK Enable completed\r\n"]
    r = c.cmd(b"d ENABLE CONDSTORE QRESYNC")  # already on: not listed again
    assert r[0] == b"* ENABLED QRESYNC\r\n" and r[-1].startswith(b"d OK")
    assert c.cmd(b"e ENABLE qresync")[0] == b"* ENABLED\r\n"
    c.close()


def test_select_status_highestmodseq(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("a"))
    c = login(srv, acc)
    r = c.cmd(b"s1 SELECT INBOX")
    hms = highestmodseq(r)
    assert not any(b"NOMODSEQ" in x for x in r)
    r = c.cmd(b"s2 EXAMINE INBOX (CONDSTORE)")
    assert r[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    assert highestmodseq(r) == hms and r[-1].startswith(b"s2 OK [READ-ONLY]")
    r = c.cmd(b"s3 STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
    assert r[-2] == b'* STATUS "INBOX" (MESSAGES 1 HIGHESTMODSEQ %d)\r\n' % hms
    assert c.cmd(b"s4 SELECT INBOX (CONDSTORE CONDSTORE)")[-1].startswith(b"s4 BAD")
    assert c.cmd(b"s5 SELECT INBOX (FOO)")[-1].startswith(b"s5 BAD")
    c.close()


def test_fetch_modseq_and_changedsince(srv):
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(str(i)))
    c = login(srv, acc)
    c.cmd(b"s SELECT INBOX")
    r = c.cmd(b"f1 FETCH 1:* (UID FLAGS)")
    assert all(b"MODSEQ" not in x for x in r)  # CONDSTORE not enabled yet
    r = c.cmd(b"f2 FETCH 1:* (UID MODSEQ)")
    # The first CONDSTORE enabling command in selected state reports HIGHESTMODSEQ (§3.1).
    hms = highestmodseq(r)
    ms = modseqs(r)
    assert len(ms) == 3 and max(ms.values()) == hms
    r = c.cmd(b"f3 FETCH 1 FLAGS")  # an explicit FETCH gets what it asks for
    assert re.match(rb"\* 1 FETCH \(FLAGS \([^)]*\)\)\r\n", r[0])
    r = c.cmd(b"f6 FETCH 3 BODY[TEXT]")  # \Seen set as a side effect: with its MODSEQ (§3.1.4.1)
    assert re.search(rb"FLAGS \(\\Recent \\Seen\) MODSEQ \(%d\)\)\r\n" % (hms + 1), r[-2])
    hms += 1
    r = c.cmd(b"f7 STORE 1 +FLAGS (\\Answered)")  # STORE responses carry MODSEQ once CONDSTORE is on
    assert re.match(rb"\* 1 FETCH \(MODSEQ \(%d\) FLAGS \(\\Answered \\Recent\)\)\r\n" % (hms + 1), r[0]), r
    hms += 1
    c.cmd(b"st STORE 2 +FLAGS.SILENT (\\Flagged)")
    r = c.cmd(b"f4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
    assert len(r) == 2 and b"\\Flagged" in r[0] and b"MODSEQ (%d)" % (hms + 1) in r[0]
    # Beyond HIGHESTMODSEQ: nothing changed since, an OK without FETCH responses.
    assert c.cmd(b"f5 FETCH 1:* (FLAGS) (CHANGEDSINCE 99999999999)") == [b"f5 OK Fetch completed\r\n"]
    for bad in (b"(CHANGEDSINCE 0)", b"(CHANGEDSINCE 9223372036854775808)", b"(CHANGEDSINCE x)",
                b"(CHANGEDSINCE)", b"(CHANGEDSINCE 5 CHANGEDSINCE 6)", b"(FOO 1)", b"(VANISHED)",
                b"(CHANGEDSINCE 5 VANISHED)", b"()"):
        r = c.cmd(b"fb FETCH 1:* (FLAGS) " + bad)
        assert len(r) == 1 and r[0].startswith(b"fb BAD"), (bad, r)
    c.close()


def test_store_unchangedsince_conflict(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(3)]
    a, b = login(srv, acc), login(srv, acc)
    a.cmd(b"s SELECT INBOX")
    b.cmd(b"s SELECT INBOX")
    before = modseqs(a.cmd(b"f UID FETCH 1:* (MODSEQ)"))
    base = max(before.values())
    # Another session changes message 2 meanwhile.
    assert b.cmd(b"x STORE 2 +FLAGS (\\Answered)")[-1].startswith(b"x OK")
    r = a.cmd(b"y STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % base)
    assert r[-1] == b"y OK [MODIFIED 2] Conditional STORE failed\r\n"
    fetched = [x for x in r if b" FETCH " in x]
    assert [x.split()[1] for x in fetched if b"\\Seen" in x] == [b"1", b"3"]
    assert all(b"MODSEQ (" in x for x in fetched)
    # Message 2 kept its flags: the conflicting change was not overwritten.
    r = a.cmd(b"z FETCH 2 (FLAGS)")
    assert b"\\Answered" in r[-2] and b"\\Seen" not in r[-2]
    # UID STORE names UIDs in MODIFIED; UNCHANGEDSINCE 0 fails for every message (§3.1.3).
    r = a.cmd(b"u UID STORE %d,%d (UNCHANGEDSINCE 0) +FLAGS (\\Flagged)" % (uids[0], uids[2]))
    assert r == [b"u OK [MODIFIED %d,%d] Conditional STORE failed\r\n" % (uids[0], uids[2])]
    # .SILENT with CONDSTORE on still reports the new MODSEQ.
    r = a.cmd(b"v UID STORE %d (UNCHANGEDSINCE 999999999) +FLAGS.SILENT (\\Flagged)" % uids[0])
    assert re.match(rb"\* 1 FETCH \(UID %d MODSEQ \(\d+\)\)\r\n" % uids[0], r[0]) and r[-1].startswith(b"v OK")
    for bad in (b"(UNCHANGEDSINCE -1)", b"(UNCHANGEDSINCE)", b"(CHANGEDSINCE 1)", b"(UNCHANGEDSINCE 1"):
        assert a.cmd(b"w STORE 1 " + bad + b" +FLAGS (\\Seen)")[-1].startswith(b"w BAD"), bad
    a.close()
    b.close()


def test_unsolicited_fetch_has_modseq(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("x"))
    a, b = login(srv, acc), login(srv, acc)
    a.cmd(b"e ENABLE CONDSTORE")
    a.cmd(b"s SELECT INBOX")
    b.cmd(b"s SELECT INBOX")
    b.cmd(b"x STORE 1 +FLAGS (\\Flagged)")
    r = a.cmd(b"n NOOP")
    assert re.match(rb"\* 1 FETCH \(UID \d+ FLAGS \(\\Flagged[^)]*\) MODSEQ \(\d+\)\)\r\n", r[0]), r
    a.close()
    b.close()


def test_search_modseq(srv):
    acc = srv.new_user()
    for i in range(4):
        srv.deliver(acc, msg(str(i)))
    c = login(srv, acc)
    c.cmd(b"s SELECT INBOX")
    hms = highestmodseq(c.cmd(b"f FETCH 1 (MODSEQ)"))
    c.cmd(b"a STORE 2,4 +FLAGS (\\Seen)")
    r = c.cmd(b"b SEARCH MODSEQ %d" % (hms + 1))
    assert r[0] == b"* SEARCH 2 4 (MODSEQ %d)\r\n" % (hms + 1)
    r = c.cmd(b'c UID SEARCH MODSEQ "/flags/\\\\Seen" all %d NOT 4' % (hms + 1))
    assert re.match(rb"\* SEARCH \d+ \(MODSEQ %d\)\r\n" % (hms + 1), r[0])
    assert c.cmd(b"d SEARCH MODSEQ 99999999")[0] == b"* SEARCH\r\n"  # no hits: no tail
    assert c.cmd(b"e SEARCH MODSEQ 0")[0].startswith(b"* SEARCH 1 2 3 4 (MODSEQ")
    for bad in (b"MODSEQ", b"MODSEQ x", b'MODSEQ "/foo" all 1', b'MODSEQ "/flags/\\\\Seen" some 1',
                b"MODSEQ 99999999999999999999"):
        assert c.cmd(b"g SEARCH " + bad)[-1].startswith(b"g BAD"), bad
    c.close()
