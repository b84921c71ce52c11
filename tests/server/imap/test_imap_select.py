"""SELECT, EXAMINE, CHECK, CLOSE, UNSELECT, EXPUNGE; \\Recent; UIDVALIDITY (RFC 3501 §6.3.1-2, §6.4.1-3)."""

from imap_harness import PASSWORD, msg


def login_raw(srv, acc):
    r = srv.raw()
    assert r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return r


def test_select_responses(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("1"), flags=frozenset({"\\Seen"}))
    srv.deliver(acc, msg("2"))
    r = login_raw(srv, acc)
    lines = r.cmd(b"s SELECT inbox")
    text = b"".join(lines)
    assert b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen)\r\n" in text
    assert b"* OK [PERMANENTFLAGS (\\* \\Answered \\Deleted \\Draft \\Flagged \\Seen)]" in text
    assert b"* 2 EXISTS\r\n" in text and b"* 2 RECENT\r\n" in text
    assert b"* OK [UNSEEN 2]" in text and b"* OK [UIDVALIDITY " in text and b"* OK [UIDNEXT 3]" in text
    assert lines[-1] == b"s OK [READ-WRITE] Select completed\r\n"
    # \Recent belongs to the first session only (§2.3.2).
    r2 = login_raw(srv, acc)
    assert b"* 0 RECENT\r\n" in r2.cmd(b"s SELECT INBOX")
    r.close()
    r2.close()


def test_examine_is_read_only(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("1"))
    c = srv.imapclient(acc)
    info = c.select_folder("INBOX", readonly=True)
    assert info[b"READ-ONLY"] == [b""] and info[b"PERMANENTFLAGS"] == ()
    c.fetch([1], ["BODY[]"])  # must not set \Seen in a read-only mailbox
    assert c.get_flags([1])[1] == ()
    try:
        c.add_flags([1], ["\\Flagged"])
        raise AssertionError("STORE allowed in EXAMINE")
    except Exception as exc:
        assert "READ-ONLY" in str(exc)
    c.close_folder()
    c.logout()


def test_select_missing_leaves_no_selection(srv):
    acc = srv.new_user()
    r = login_raw(srv, acc)
    assert r.cmd(b"a SELECT INBOX")[-1].startswith(b"a OK")
    assert b"NONEXISTENT" in r.cmd(b"b SELECT Nope")[-1]
    assert r.cmd(b"c FETCH 1 FLAGS")[-1].startswith(b"c BAD")
    r.close()


def test_uidvalidity_stable(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    v1 = c.select_folder("INBOX")[b"UIDVALIDITY"]
    c.logout()
    c = srv.imapclient(acc)
    assert c.select_folder("INBOX")[b"UIDVALIDITY"] == v1
    c.logout()


def test_expunge_close_unselect_check(srv):
    acc = srv.new_user()
    for i in range(5):
        srv.deliver(acc, msg(str(i)))
    c = srv.imaplib(acc, select="INBOX")
    c.store("2,4", "+FLAGS", "\\Deleted")
    assert c.check()[0] == "OK"
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"4", b"2"]  # from the top down, each valid when read
    assert c.select("INBOX")[1] == [b"3"]
    c.store("1", "+FLAGS", "\\Deleted")
    assert c.close()[0] == "OK"  # silent expunge
    assert c.select("INBOX")[1] == [b"2"]
    c.store("1", "+FLAGS", "\\Deleted")
    assert c._simple_command("UNSELECT")[0] == "OK"  # RFC 3691: no expunge
    assert c.select("INBOX")[1] == [b"2"]
    c.logout()


def test_uid_expunge(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(3)]
    c = srv.imapclient(acc, select="INBOX")
    c.add_flags(uids, ["\\Deleted"])
    c.uid_expunge(uids[1])
    assert c.search() == [uids[0], uids[2]]  # imapclient uses UID SEARCH
    c.use_uid = False
    got = c.fetch([1, 2], ["UID"])
    assert {k: v[b"UID"] for k, v in got.items()} == {1: uids[0], 2: uids[2]}
    c.logout()
