"""MULTIAPPEND (RFC 3502): several messages in one APPEND, stored all or none; APPENDUID with a
UID set (RFC 4315). Raw transcripts: imaplib cannot send these."""

import re

from imap_harness import PASSWORD, msg

LIMITS = 'message_size = "4k"'


def _login(srv, acc):
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    return r


def _count(srv, acc, mailbox="INBOX"):
    mb = srv.call(srv.store.get_mailbox(acc.id, mailbox))
    return len(srv.call(srv.store.list_messages(mb.id)))


def _sync(r, data):
    """Send one line ending in a synchronizing literal and wait for the continuation."""
    r.send(data)
    line = r.line()
    assert line.startswith(b"+ "), line


def test_capability_advertises_multiappend(srv):
    r = srv.raw()
    caps = r.cmd(b"a CAPABILITY")[0].split()
    assert b"MULTIAPPEND" in caps and b"CATENATE" in caps
    r.close()


def test_three_messages_with_literal_plus_get_consecutive_uids(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("first"))
    r = _login(srv, acc)
    a, b, c = msg("a"), msg("b"), msg("c")
    out = r.cmd(b"t APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"14-Jul-2023 08:30:00 -0400\" {%d+}\r\n%s {%d+}\r\n%s\r\n"
                % (len(a), a, len(b), b, len(c), c))
    m = re.match(rb"t OK \[APPENDUID (\d+) 2:4\] ", out[-1])
    assert m, out
    assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    lines = b"".join(r.cmd(b"f UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert b"Subject: a" in lines and b"Subject: b" in lines and b"Subject: c" in lines
    assert re.search(rb"UID 2 FLAGS \([^)]*\\Seen", lines) and re.search(rb"UID 3 FLAGS \([^)]*\\Flagged", lines)
    assert b'"14-Jul-2023 08:30:00 -0400"' in lines
    r.close()


def test_synchronizing_literals_each_get_a_continuation(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    a, b = msg("a"), msg("b")
    _sync(r, b"t APPEND Drafts {%d}\r\n" % len(a))
    _sync(r, a + b" {%d}\r\n" % len(b))
    r.send(b + b"\r\n")
    assert re.match(rb"t OK \[APPENDUID \d+ 1:2\] ", r.until_tagged(b"t")[-1])
    assert _count(srv, acc, "Drafts") == 2
    r.close()


def test_second_message_too_big_stores_nothing_and_stays_in_step(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    a = msg("a")
    _sync(r, b"t APPEND INBOX {%d}\r\n" % len(a))
    r.send(a + b" {5000}\r\n")  # over message_size: refused before the "+"
    assert r.line().startswith(b"t NO [TOOBIG]")
    assert _count(srv, acc) == 0
    assert r.cmd(b"n NOOP")[-1].startswith(b"n OK")
    r.close()


def test_non_synchronizing_too_big_second_message_closes_and_stores_nothing(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    a = msg("a")
    r.send(b"t APPEND INBOX {%d+}\r\n%s {5000+}\r\n" % (len(a), a))
    assert r.line().startswith(b"* BYE")  # RFC 7888 §4: the data is on its way; we will not read it
    r.close()
    assert _count(srv, acc) == 0


def test_a_bad_second_message_after_literals_stores_nothing(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    a, b = msg("a"), msg("b")
    # Bad syntax after both literals were read: BAD, nothing stored, the next command works.
    out = r.cmd(b"t APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s junk" % (len(a), a, len(b), b))
    assert out[-1].startswith(b"t BAD")
    # \Recent in the second message's flags, an empty second message (RFC 3502's cancel).
    out = r.cmd(b"u APPEND INBOX {%d+}\r\n%s (\\Recent) {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))
    assert out[-1].startswith(b"u BAD")
    out = r.cmd(b"v APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n" % (len(a), a))
    assert out[-1] == b"v NO Empty message\r\n"
    assert _count(srv, acc) == 0
    assert r.cmd(b"w APPEND Missing {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))[-1].startswith(b"w NO [TRYCREATE]")
    assert r.cmd(b"n NOOP")[-1].startswith(b"n OK")
    r.close()


def test_over_quota_on_the_second_message_stores_nothing(srv):
    acc = srv.new_user()
    srv.call(srv.store.set_quota(acc.address, None, 1))
    r = _login(srv, acc)
    a, b = msg("a"), msg("b")
    out = r.cmd(b"t APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))
    assert out[-1].startswith(b"t NO [OVERQUOTA]")
    # A synchronizing second literal is refused before its "+" (the first one counts).
    srv.call(srv.store.set_quota(acc.address, len(a) + 10, None))
    _sync(r, b"u APPEND INBOX {%d}\r\n" % len(a))
    r.send(a + b" {%d}\r\n" % len(b))
    assert r.line().startswith(b"u NO [OVERQUOTA]")
    assert _count(srv, acc) == 0
    assert r.cmd(b"n NOOP")[-1].startswith(b"n OK")
    r.close()


def test_append_to_the_selected_mailbox_reports_every_new_message(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    r.cmd(b"s SELECT INBOX")
    a, b = msg("a"), msg("b")
    out = r.cmd(b"t APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))
    assert b"* 2 EXISTS\r\n" in out and out[-1].startswith(b"t OK [APPENDUID")
    r.close()
