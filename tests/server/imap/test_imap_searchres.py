"""SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) and "$" in FETCH, STORE, COPY, MOVE, SEARCH and
their UID forms; "$" reset by SELECT; NO empties it, BAD leaves it. Raw transcripts."""

import re
from datetime import datetime, timezone

import pytest

from imap_harness import PASSWORD, msg


@pytest.fixture
def sess(srv):
    """Four messages, \\Flagged on 2 and 3; a selected raw session."""
    acc = srv.new_user()
    when = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    flags = [set(), {"\\Flagged"}, {"\\Flagged"}, set()]
    uids = [srv.call(srv.store.append(acc.id, "INBOX", msg(f"m{i}"), frozenset(f), when)).uid
            for i, f in enumerate(flags)]
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    yield c, uids[0], acc
    c.close()


def fetched(lines):
    return [int(m.group(1)) for x in lines if (m := re.match(rb"\* (\d+) FETCH", x))]


def test_save_alone_sends_no_esearch(sess):
    c, u, _ = sess
    assert c.cmd(b"a SEARCH RETURN (SAVE) FLAGGED") == [b"a OK Search completed\r\n"]
    r = c.cmd(b"b FETCH $ (UID)")
    assert r[:-1] == [b"* 2 FETCH (UID %d)\r\n" % (u + 1), b"* 3 FETCH (UID %d)\r\n" % (u + 2)]
    r = c.cmd(b"c UID FETCH $ (FLAGS)")
    assert fetched(r) == [2, 3] and r[-1].startswith(b"c OK")


def test_save_with_other_options(sess):
    c, u, _ = sess
    r = c.cmd(b"a UID SEARCH RETURN (SAVE COUNT) FLAGGED")
    assert r[0] == b'* ESEARCH (TAG "a") UID COUNT 2\r\n'
    assert fetched(c.cmd(b"b FETCH $ (FLAGS)")) == [2, 3]
    # §2.4: with MIN and/or MAX but neither ALL nor COUNT, only those are saved.
    r = c.cmd(b"c SEARCH RETURN (SAVE MIN) FLAGGED")
    assert r[0] == b'* ESEARCH (TAG "c") MIN 2\r\n'
    assert fetched(c.cmd(b"d FETCH $ (FLAGS)")) == [2]
    c.cmd(b"e SEARCH RETURN (MAX SAVE) ALL")
    assert fetched(c.cmd(b"f FETCH $ (FLAGS)")) == [4]
    c.cmd(b"g SEARCH RETURN (MIN MAX SAVE) ALL")
    assert fetched(c.cmd(b"h FETCH $ (FLAGS)")) == [1, 4]
    c.cmd(b"i SEARCH RETURN (MIN ALL SAVE) UNFLAGGED")
    assert fetched(c.cmd(b"j FETCH $ (FLAGS)")) == [1, 4]


def test_dollar_in_search_store_copy_move(sess):
    c, u, _ = sess
    c.cmd(b"a SEARCH RETURN (SAVE) FLAGGED")
    assert c.cmd(b"b SEARCH $")[0] == b"* SEARCH 2 3\r\n"
    assert c.cmd(b"b2 SEARCH NOT $")[0] == b"* SEARCH 1 4\r\n"
    assert c.cmd(b"b3 UID SEARCH UID $")[0] == b"* SEARCH %d %d\r\n" % (u + 1, u + 2)
    assert c.cmd(b"b4 SEARCH OR $ 4")[0] == b"* SEARCH 2 3 4\r\n"
    r = c.cmd(b"c STORE $ +FLAGS (\\Seen)")
    assert fetched(r) == [2, 3] and r[-1].startswith(b"c OK")
    r = c.cmd(b"d UID STORE $ -FLAGS.SILENT (\\Seen)")
    assert r == [b"d OK Store completed\r\n"]
    assert c.cmd(b"e CREATE Other")[-1].startswith(b"e OK")
    r = c.cmd(b"f COPY $ Other")
    assert r[-1].startswith(b"f OK [COPYUID ") and b" %d:%d " % (u + 1, u + 2) in r[-1]
    r = c.cmd(b"g UID COPY $ Other")
    assert r[-1].startswith(b"g OK [COPYUID ")
    r = c.cmd(b"h MOVE $ Other")
    assert b"* 3 EXPUNGE\r\n" in r and b"* 2 EXPUNGE\r\n" in r and r[-1].startswith(b"h OK")
    # The moved (expunged) messages left "$": it is empty now, which is not an error.
    assert c.cmd(b"i FETCH $ (UID)") == [b"i OK Fetch completed\r\n"]
    assert c.cmd(b"j UID MOVE $ Other")[-1].startswith(b"j OK")
    assert c.cmd(b"k SEARCH $")[0] == b"* SEARCH\r\n"
    r = c.cmd(b"l STATUS Other (MESSAGES)")
    assert b"MESSAGES 6" in r[0]


def test_expunged_messages_leave_the_result(sess):
    c, u, _ = sess
    c.cmd(b"a UID SEARCH RETURN (SAVE) ALL")
    c.cmd(b"b STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd(b"c EXPUNGE")[0] == b"* 2 EXPUNGE\r\n"
    r = c.cmd(b"d UID FETCH $ (UID)")
    assert b"UID %d)" % (u + 1) not in b"".join(r) and fetched(r) == [1, 2, 3]
    c.cmd(b"e UID EXPUNGE $")  # nothing flagged \Deleted: expunges nothing
    assert c.cmd(b"f SEARCH $")[0] == b"* SEARCH 1 2 3\r\n"


def test_reset_on_select_and_empty_before(sess):
    c, _, _ = sess
    assert c.cmd(b"a FETCH $ (UID)") == [b"a OK Fetch completed\r\n"]  # empty after SELECT
    assert c.cmd(b"b SEARCH $")[0] == b"* SEARCH\r\n"
    c.cmd(b"c SEARCH RETURN (SAVE) ALL")
    assert fetched(c.cmd(b"d FETCH $ (UID)")) == [1, 2, 3, 4]
    assert c.cmd(b"e EXAMINE INBOX")[-1].startswith(b"e OK")
    assert c.cmd(b"f SEARCH $")[0] == b"* SEARCH\r\n"


def test_no_empties_bad_keeps(sess):
    c, _, _ = sess
    c.cmd(b"a SEARCH RETURN (SAVE) FLAGGED")
    # BAD (syntax, or a message number beyond the mailbox): the saved result is unchanged.
    assert c.cmd(b"b SEARCH RETURN (SAVE) FOO")[-1].startswith(b"b BAD")
    assert c.cmd(b"c SEARCH RETURN (SAVE) 9")[-1].startswith(b"c BAD")
    assert c.cmd(b"d SEARCH $")[0] == b"* SEARCH 2 3\r\n"
    # NO ([BADCHARSET]): it becomes empty (§2.1).
    r = c.cmd(b"e SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert r[-1].startswith(b"e NO [BADCHARSET")
    assert c.cmd(b"f SEARCH $")[0] == b"* SEARCH\r\n"


@pytest.mark.parametrize("cmd", [
    b"FETCH $,1 (UID)", b"FETCH $:2 (UID)", b"FETCH 1,$ (UID)", b"FETCH $$ (UID)", b"STORE $1 +FLAGS (x)",
    b"SEARCH $,2", b"SEARCH UID $:4", b"COPY $x INBOX",
])
def test_dollar_stands_alone(sess, cmd):
    c, _, _ = sess
    r = c.cmd(b"x " + cmd)
    assert len(r) == 1 and r[0].startswith(b"x BAD"), r


def test_dollar_not_in_qresync_select(srv, sess):
    c, _, _ = sess
    c.cmd(b"e ENABLE QRESYNC")
    assert c.cmd(b"s SELECT INBOX (QRESYNC (1 1 $))")[-1].startswith(b"s BAD")


def test_uid_fetch_vanished_dollar(sess):
    c, u, _ = sess
    c.cmd(b"e ENABLE QRESYNC")
    r = c.cmd(b"s SELECT INBOX")
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r)).group(1))
    c.cmd(b"a UID SEARCH RETURN (SAVE) 1:2")
    c.cmd(b"b STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd(b"c EXPUNGE")[0] == b"* VANISHED %d\r\n" % u
    r = c.cmd(b"d UID FETCH $ (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert r[0] == b"* VANISHED (EARLIER) %d\r\n" % u and r[-1].startswith(b"d OK")


def test_imaplib_pipeline(srv, sess):
    _, _, acc = sess
    c = srv.imaplib(acc, select="INBOX")
    assert c.search(None, "RETURN", "(SAVE)", "FLAGGED")[0] == "OK"
    typ, data = c.fetch("$", "(UID)")
    assert typ == "OK" and len(data) == 2
    c.logout()


def test_dollar_in_sort(sess):
    """SORT reuses the SEARCH engine, so its criteria take "$" too (RFC 5182 §2.2)."""
    c, u, _ = sess
    if b"SORT" not in c.cmd(b"c CAPABILITY")[0].split():
        pytest.skip("SORT not advertised")
    c.cmd(b"a SEARCH RETURN (SAVE) FLAGGED")
    r = c.cmd(b"b SORT (REVERSE SUBJECT) UTF-8 $")
    assert r[0] == b"* SORT 3 2\r\n" and r[-1].startswith(b"b OK")
