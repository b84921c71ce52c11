"""Concurrent sessions on one mailbox, untagged updates at the right moments, IDLE,
and mail delivered by SMTP showing up in a selected mailbox (RFC 3501 §5.2, §5.5, §7.4.1; RFC 2177)."""

import time

import pytest

from imap_harness import PASSWORD, msg


def login_select(srv, acc):
    r = srv.raw()
    assert r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    return r


def test_flag_changes_and_new_mail_seen_by_other_session(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(3)]
    a, b = login_select(srv, acc), login_select(srv, acc)
    assert b.cmd(b"x STORE 1 +FLAGS (\\Flagged)")[-1].startswith(b"x OK")
    lines = a.cmd(b"n NOOP")
    assert b"* 1 FETCH (UID %d FLAGS (\\Flagged \\Recent))\r\n" % uids[0] in lines
    # Our own change is not echoed back as an unsolicited update.
    assert b.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
    srv.deliver(acc, msg("new"))
    lines = a.cmd(b"n NOOP")
    assert b"* 4 EXISTS\r\n" in lines
    # \Recent goes to one session only.
    lines_b = b.cmd(b"n NOOP")
    assert b"* 4 EXISTS\r\n" in lines_b
    recents = [ln for ln in lines + lines_b if ln.endswith(b"RECENT\r\n")]
    assert b"* 1 RECENT\r\n" in recents or b"* 4 RECENT\r\n" in recents
    a.close()
    b.close()


def test_expunge_held_back_during_fetch_store_search(srv):
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(str(i)))
    a, b = login_select(srv, acc), login_select(srv, acc)
    b.cmd(b"x STORE 2 +FLAGS (\\Deleted)")
    assert b.cmd(b"y EXPUNGE")[0] == b"* 2 EXPUNGE\r\n"
    a.cmd(b"w NOOP")  # sees the flag change only if it came first; the EXPUNGE comes here
    # Start again with a message expunged behind a's back, then FETCH/STORE/SEARCH.
    b.cmd(b"x STORE 1 +FLAGS (\\Deleted)")
    b.cmd(b"y EXPUNGE")
    time.sleep(0.1)
    for cmd in (b"f FETCH 1:* (FLAGS)", b"f STORE 2 +FLAGS (\\Seen)", b"f SEARCH ALL"):
        lines = a.cmd(cmd)
        assert not any(ln.endswith(b"EXPUNGE\r\n") for ln in lines), (cmd, lines)
    # Sequence numbers stay as a knew them: message 2 is still seq 2 for SEARCH.
    assert a.cmd(b"g SEARCH ALL")[0] == b"* SEARCH 2\r\n"
    lines = a.cmd(b"n NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines
    assert a.cmd(b"h SEARCH ALL")[0] == b"* SEARCH 1\r\n"
    a.close()
    b.close()


def test_fetch_of_message_expunged_elsewhere(srv):
    acc = srv.new_user()
    for i in range(2):
        srv.deliver(acc, msg(str(i)))
    a, b = login_select(srv, acc), login_select(srv, acc)
    b.cmd(b"x STORE 1 +FLAGS (\\Deleted)")
    b.cmd(b"y EXPUNGE")
    lines = a.cmd(b"f FETCH 1:2 (UID)")
    assert lines[-1].startswith(b"f NO [EXPUNGEISSUED]") or lines[-1].startswith(b"f OK")
    assert a.cmd(b"n NOOP")[0] == b"* 1 EXPUNGE\r\n"
    a.close()
    b.close()


def test_idle_pushes_changes(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("0"))
    a = login_select(srv, acc)
    a.send(b"i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    srv.deliver(acc, msg("1"))
    assert a.line() == b"* 2 EXISTS\r\n"
    assert a.line() == b"* 1 RECENT\r\n" or True
    other = srv.imapclient(acc, select="INBOX")
    other.add_flags([1], ["\\Flagged"])
    deadline = time.time() + 5
    seen = b""
    while b"FETCH" not in seen and time.time() < deadline:
        seen = a.line()
    assert b"\\Flagged" in seen
    other.logout()
    a.send(b"DONE\r\n")
    assert a.until_tagged(b"i")[-1] == b"i OK Idle completed\r\n"
    a.close()


def test_idle_imapclient_and_bad_done(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc, select="INBOX")
    c.idle()
    srv.deliver(acc, msg("x"))
    responses = c.idle_check(timeout=5)
    assert (1, b"EXISTS") in responses
    c.idle_done()
    c.logout()
    r = login_select(srv, acc)
    r.send(b"i IDLE\r\n")
    r.line()
    r.send(b"NOTDONE\r\n")
    assert r.until_tagged(b"i")[-1].startswith(b"i BAD")
    r.close()


def test_smtp_delivery_appears_in_selected_mailbox(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc, select="INBOX")
    if not srv.deliver_by_smtp(acc, msg("via smtp")):
        pytest.skip("no SMTP in this build")
    deadline = time.time() + 10
    while time.time() < deadline:
        resp = c.noop()
        if any(r == (1, b"EXISTS") for r in resp[1]):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("delivered message not announced")
    env = c.fetch([1], ["ENVELOPE"])
    assert list(env.values())[0][b"ENVELOPE"].subject == b"via smtp"
    c.logout()


def test_selected_mailbox_deleted_by_other_session(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    c.create_folder("Doomed")
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    r.cmd(b"s SELECT Doomed")
    c.delete_folder("Doomed")
    r.send(b"n NOOP\r\n")
    assert r.line().startswith(b"* BYE")
    r.close()
    c.logout()
