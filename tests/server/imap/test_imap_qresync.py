"""QRESYNC (RFC 7162 §3.2): SELECT (QRESYNC …), VANISHED (EARLIER), VANISHED instead of
EXPUNGE, [CLOSED], the expunge log's floor, and a small resyncing client (the way
Thunderbird does it) that must reach the state a full re-read gives."""

import random
import re

from imap_harness import msg
from test_imap_condstore import highestmodseq, login

from postroom.storage.models import FlagOp


def qlogin(srv, acc):
    c = login(srv, acc)
    assert c.cmd(b"q ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
    return c


def uidvalidity(lines):
    for line in lines:
        m = re.search(rb"\[UIDVALIDITY (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def expand(text):
    out = set()
    for part in text.split(b","):
        a, _, b = part.partition(b":")
        out.update(range(int(a), int(b or a) + 1))
    return out


def vanished(lines, earlier=True):
    out = set()
    prefix = b"* VANISHED (EARLIER) " if earlier else b"* VANISHED "
    for line in lines:
        if line.startswith(prefix):
            out |= expand(line[len(prefix):].strip())
    return out


def fetched(lines):
    """{uid: (flags, modseq)} from FETCH responses."""
    out = {}
    for line in lines:
        m = re.match(rb"\* \d+ FETCH \(.*?UID (\d+).*?FLAGS \(([^)]*)\).*?MODSEQ \((\d+)\)", line)
        if m:
            flags = frozenset(m.group(2).split()) - {b"\\Recent"}
            out[int(m.group(1))] = (flags, int(m.group(3)))
    return out


def mailbox_id(srv, acc):
    return srv.call(srv.store.get_mailbox(acc.id, "INBOX")).id


def test_qresync_needs_enable(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("a"))
    c = login(srv, acc)
    uv = uidvalidity(c.cmd(b"s SELECT INBOX"))
    r = c.cmd(b"x SELECT INBOX (QRESYNC (%d 1))" % uv)
    assert len(r) == 1 and r[0].startswith(b"x BAD")
    assert c.cmd(b"n NOOP")[-1].startswith(b"n OK")  # still selected: BAD changed nothing
    assert c.cmd(b"f UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"f BAD")
    c.cmd(b"e ENABLE QRESYNC")
    assert c.cmd(b"g FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"g BAD")  # UID FETCH only
    c.close()


def test_resync_after_other_session_changed_flags_and_expunged(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(5)]
    c = qlogin(srv, acc)
    r = c.cmd(b"s SELECT INBOX")
    uv, hms = uidvalidity(r), highestmodseq(r)
    c.cmd(b"l LOGOUT")
    c.close()
    # Offline: another session flags, expunges, and new mail arrives.
    o = login(srv, acc)
    o.cmd(b"s SELECT INBOX")
    o.cmd(b"a UID STORE %d +FLAGS (\\Flagged)" % uids[1])
    o.cmd(b"b UID STORE %d,%d +FLAGS (\\Deleted)" % (uids[2], uids[4]))
    o.cmd(b"c EXPUNGE")
    new = srv.deliver(acc, msg("new"))
    c = qlogin(srv, acc)
    r = c.cmd(b"t SELECT INBOX (QRESYNC (%d %d))" % (uv, hms))
    assert r[-1].startswith(b"t OK [READ-WRITE]")
    assert vanished(r) == {uids[2], uids[4]}
    got = fetched(r)
    assert set(got) == {uids[1], new}
    assert b"\\Flagged" in got[uids[1]][0]
    hms2 = highestmodseq(r)
    assert got[uids[1]][1] <= hms2 and hms2 > hms
    # VANISHED (EARLIER) comes after HIGHESTMODSEQ and before the FETCHes (§3.2.5.1 example).
    first = {}
    for i, x in enumerate(r):
        for kind in (b"[HIGHESTMODSEQ", b"VANISHED", b"FETCH"):
            if kind in x:
                first.setdefault(kind, i)
    assert first[b"[HIGHESTMODSEQ"] < first[b"VANISHED"] < first[b"FETCH"]
    # known-uids narrow the report to what the client says it has.
    c.cmd(b"u UNSELECT")
    r = c.cmd(b"v EXAMINE INBOX (QRESYNC (%d %d %d:%d))" % (uv, hms, uids[0], uids[2]))
    assert vanished(r) == {uids[2]}
    # A wrong UIDVALIDITY: a plain SELECT, no VANISHED, no FETCH.
    r = c.cmd(b"w SELECT INBOX (QRESYNC (%d %d))" % (uv + 1, hms))
    assert r[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    assert not vanished(r) and not fetched(r) and r[-1].startswith(b"w OK")
    c.close()
    o.close()


def test_vanished_replaces_expunge(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(4)]
    a, b = qlogin(srv, acc), login(srv, acc)
    a.cmd(b"s SELECT INBOX")
    b.cmd(b"s SELECT INBOX")
    a.cmd(b"x STORE 1 +FLAGS.SILENT (\\Deleted)")
    r = a.cmd(b"y EXPUNGE")
    assert r[0] == b"* VANISHED %d\r\n" % uids[0] and len(r) == 2
    # With CONDSTORE on, the tagged OK gives the HIGHESTMODSEQ after the expunge.
    assert re.match(rb"y OK \[HIGHESTMODSEQ \d+\] Expunge completed\r\n", r[1])
    # Another session's expunge: VANISHED (no EARLIER) at the next NOOP, not during FETCH.
    assert b.cmd(b"y NOOP")[0] == b"* 1 EXPUNGE\r\n"  # b has no QRESYNC: EXPUNGE
    b.cmd(b"z STORE 2,3 +FLAGS.SILENT (\\Deleted)")
    b.cmd(b"e EXPUNGE")
    r = a.cmd(b"f FETCH 1 (UID)")
    assert not any(x.startswith((b"* VANISHED", b"* 1 EXPUNGE")) for x in r), r
    r = a.cmd(b"n NOOP")
    assert b"* VANISHED %d:%d\r\n" % (uids[2], uids[3]) in r
    assert not any(b"EXPUNGE" in x for x in r)
    # UID FETCH (CHANGEDSINCE VANISHED) reports earlier expunges within the set.
    r = a.cmd(b"g UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert vanished(r) == {uids[0], uids[2], uids[3]}
    assert set(fetched(r)) == {uids[1]}
    # CLOSE expunges silently; the next QRESYNC SELECT learns of it.
    hms = highestmodseq(a.cmd(b"h EXAMINE INBOX"))
    a.cmd(b"i SELECT INBOX")
    a.cmd(b"j STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd(b"l CLOSE") == [b"l OK Close completed\r\n"]
    uv = uidvalidity(a.cmd(b"m EXAMINE INBOX"))
    r = a.cmd(b"o EXAMINE INBOX (QRESYNC (%d %d %d))" % (uv, hms, uids[1]))
    assert vanished(r) == {uids[1]}
    a.close()
    b.close()


def test_vanished_after_expunge_log_gap(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(10)]
    c = qlogin(srv, acc)
    r = c.cmd(b"s SELECT INBOX")
    uv, hms = uidvalidity(r), highestmodseq(r)
    c.cmd(b"u UNSELECT")
    mb = mailbox_id(srv, acc)
    # A selected session that will not look again until after the gap.
    idle = qlogin(srv, acc)
    idle.cmd(b"s SELECT INBOX")
    srv.call(srv.store.store_flags(mb, [uids[3], uids[5]], FlagOp.ADD, frozenset({"\\Deleted"})))
    srv.call(srv.store.expunge(mb))
    srv.call(srv.store.store_flags(mb, [uids[7]], FlagOp.ADD, frozenset({"\\Deleted"})))
    srv.call(srv.store.expunge(mb))
    now = srv.call(srv.store.get_mailbox_by_id(mb)).highestmodseq
    assert srv.call(srv.store.prune_expunge_log(mb, now)) == 3
    ch = srv.call(srv.store.changes_since(mb, hms))
    assert ch.expunged == () and not ch.complete_since(hms)
    # Past the floor the log cannot say; every known UID no longer there is reported.
    r = c.cmd(b"t SELECT INBOX (QRESYNC (%d %d %d:%d))" % (uv, hms, uids[0], uids[9]))
    assert vanished(r) == {uids[3], uids[5], uids[7]}
    # Without known-uids: everything in 1:UIDNEXT-1 that is not there (a superset is allowed).
    r = c.cmd(b"v SELECT INBOX (QRESYNC (%d %d))" % (uv, hms))
    assert {uids[3], uids[5], uids[7]} <= vanished(r)
    assert not vanished(r) & (set(uids) - {uids[3], uids[5], uids[7]})
    r = c.cmd(b"w UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert {uids[3], uids[5], uids[7]} <= vanished(r)
    assert not vanished(r) & (set(uids) - {uids[3], uids[5], uids[7]})
    # A client whose MODSEQ is at or above the floor gets the log's exact answer again.
    r = c.cmd(b"x UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % now)
    assert not vanished(r)
    # The session that slept through the gap still learns what went.
    r = idle.cmd(b"n NOOP")
    assert vanished(r, earlier=False) == {uids[3], uids[5], uids[7]}
    assert idle.cmd(b"f FETCH 1:* (UID)")[-2].startswith(b"* 7 FETCH")
    c.close()
    idle.close()


def test_bad_qresync_parameters(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("a"))
    c = qlogin(srv, acc)
    uv = uidvalidity(c.cmd(b"s SELECT INBOX"))
    bad = [b"(QRESYNC)", b"(QRESYNC ())", b"(QRESYNC (%d))" % uv, b"(QRESYNC (%d 0))" % uv,
           b"(QRESYNC (0 1))", b"(QRESYNC (%d -1))" % uv, b"(QRESYNC (%d 1 0:3))" % uv,
           b"(QRESYNC (%d 1 1:3 (1:2 5)))" % uv,  # seq-match sets of different sizes
           b"(QRESYNC (%d 1 1:3 (1,2 5:*)))" % uv, b"(QRESYNC (%d 1 1:3 (1 5))" % uv,
           b"(QRESYNC (%d 1 x))" % uv, b"(QRESYNC (%d 99999999999999999999))" % uv,
           b"(QRESYNC (%d 1) QRESYNC (%d 1))" % (uv, uv)]
    for p in bad:
        r = c.cmd(b"b SELECT INBOX " + p)
        assert len(r) == 1 and r[0].startswith(b"b BAD"), (p, r)
    # Huge but valid sets are fine and cheap (ranges, never enumerated).
    big = b",".join(b"%d:%d" % (i * 10000 + 1, i * 10000 + 5000) for i in range(150))
    r = c.cmd(b"h SELECT INBOX (QRESYNC (%d 1 1:4294967295 (%s %s)))" % (uv, big, big))
    assert r[-1].startswith(b"h OK") and not vanished(r)
    # Longer than a line may be: refused before parsing, and the connection goes on.
    huge = b",".join(b"%d" % (i * 2 + 1) for i in range(200000))
    c.send(b"i SELECT INBOX (QRESYNC (%d 1 %s))\r\n" % (uv, huge))
    assert c.line() == b"* BAD Line too long\r\n"
    assert c.cmd(b"j NOOP")[-1].startswith(b"j OK")
    c.close()


class QresyncClient:
    """What a disconnected client keeps (Thunderbird's offline store, in small)."""

    def __init__(self) -> None:
        self.uidvalidity = 0
        self.modseq = 0
        self.flags: dict[int, frozenset[bytes]] = {}

    def full_read(self, c):
        r = c.cmd(b"s SELECT INBOX")
        self.uidvalidity, self.modseq = uidvalidity(r), highestmodseq(r)
        self.flags = {u: f for u, (f, _) in fetched(c.cmd(b"f UID FETCH 1:* (FLAGS MODSEQ)")).items()}

    def resync(self, c, with_known_uids):
        known = b",".join(b"%d" % u for u in sorted(self.flags))
        param = b"%d %d" % (self.uidvalidity, self.modseq)
        if with_known_uids and known:
            param += b" " + known
        r = c.cmd(b"r SELECT INBOX (QRESYNC (%s))" % param)
        assert r[-1].startswith(b"r OK"), r
        assert uidvalidity(r) == self.uidvalidity
        for u in vanished(r):
            self.flags.pop(u, None)
        for u, (f, _) in fetched(r).items():
            self.flags[u] = f
        self.modseq = highestmodseq(r)
        # New mail: fetched by UID above the last one known, as Thunderbird does.
        last = max(self.flags, default=0)
        for u, (f, _) in fetched(c.cmd(b"n UID FETCH %d:* (FLAGS MODSEQ)" % (last + 1))).items():
            if u > last:
                self.flags[u] = f


def test_qresync_client_matches_full_reread(srv):
    rnd = random.Random(7162)
    acc = srv.new_user()
    for i in range(30):
        srv.deliver(acc, msg(str(i)))
    mb = mailbox_id(srv, acc)
    client = QresyncClient()
    c = qlogin(srv, acc)
    client.full_read(c)
    c.close()
    words = [b"\\Seen", b"\\Flagged", b"\\Answered", b"$Label1", b"$Junk"]
    for rnd_no in range(6):
        # Offline: another session changes things.
        o = login(srv, acc)
        o.cmd(b"s SELECT INBOX")
        present = sorted(fetched(o.cmd(b"f UID FETCH 1:* (FLAGS MODSEQ)")))
        for _ in range(8):
            u = rnd.choice(present)
            op = rnd.choice([b"+FLAGS", b"-FLAGS", b"FLAGS"])
            o.cmd(b"a UID STORE %d %s (%s)" % (u, op, rnd.choice(words)))
        gone = rnd.sample(present, 3)
        o.cmd(b"b UID STORE %s +FLAGS.SILENT (\\Deleted)" % b",".join(b"%d" % u for u in gone))
        o.cmd(b"c UID EXPUNGE %s" % b",".join(b"%d" % u for u in gone))
        for i in range(2):
            srv.deliver(acc, msg("r%d-%d" % (rnd_no, i)))
        o.close()
        if rnd_no == 3:  # once, the log forgets everything up to now
            now = srv.call(srv.store.get_mailbox_by_id(mb)).highestmodseq
            srv.call(srv.store.prune_expunge_log(mb, now))
            o = login(srv, acc)
            o.cmd(b"s SELECT INBOX")
            o.cmd(b"a UID STORE %d +FLAGS.SILENT (\\Deleted)" % rnd.choice(present[3:]))
            o.cmd(b"b EXPUNGE")
            o.close()
        c = qlogin(srv, acc)
        client.resync(c, with_known_uids=rnd_no % 2 == 0)
        truth = QresyncClient()
        truth.full_read(c)
        assert client.flags == truth.flags, rnd_no
        assert client.modseq == truth.modseq
        c.close()
