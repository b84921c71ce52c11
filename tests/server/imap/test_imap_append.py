"""APPEND: flags, date, literals, APPENDUID, TRYCREATE (RFC 3501 §6.3.11, RFC 4315)."""

from datetime import datetime, timedelta, timezone

import pytest
from imap_harness import PASSWORD, msg


def test_append_flags_date(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    typ, data = c.append("Drafts", "(\\Draft \\Seen)", '"14-Jul-2023 08:30:00 -0400"', msg("draft"))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
    c.select("Drafts")
    typ, data = c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE)")
    assert b"\\Draft" in data[0] and b"\\Seen" in data[0]
    assert b'INTERNALDATE "14-Jul-2023 08:30:00 -0400"' in data[0]
    assert b"RFC822.SIZE %d" % len(msg("draft")) in data[0]
    c.logout()


def test_append_missing_mailbox_trycreate(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    typ, data = c.append("Missing", None, None, msg("x"))
    assert typ == "NO" and b"TRYCREATE" in data[0]
    c.logout()


def test_append_to_selected_sends_exists(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc, select="INBOX")
    c.append("INBOX", msg("a"))
    resp = c.noop()
    assert (1, b"EXISTS") in resp[1] or c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 1
    assert len(c.search()) == 1
    c.logout()


def test_append_raw_literals(srv):
    acc = srv.new_user()
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    body = b"Subject: lit\r\n\r\nbinary \x00\xff ok\r\n"
    r.send(b"a APPEND INBOX {%d}\r\n" % len(body))
    assert r.line().startswith(b"+ ")
    r.send(body + b"\r\n")
    assert r.until_tagged(b"a")[-1].startswith(b"a OK [APPENDUID ")
    # LITERAL+ (RFC 7888): no continuation needed.
    r.send(b"b APPEND INBOX (\\Flagged) {%d+}\r\n" % len(body) + body + b"\r\n")
    assert r.until_tagged(b"b")[-1].startswith(b"b OK [APPENDUID ")
    assert r.cmd(b"c APPEND INBOX {0+}\r\n\r\n")[-1] == b"c NO Empty message\r\n"
    r.close()
    when = datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ic = srv.imapclient(acc)
    ic.append("INBOX", b"Subject: x\r\n\r\ny\r\n", msg_time=when)
    assert ic.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 3
    ic.logout()


@pytest.mark.sqlite_only("injects a failing write into the SQLite store's segment files")
def test_append_when_the_disk_is_full_says_overquota_and_keeps_nothing(srv, monkeypatch):
    """NO [OVERQUOTA] as Dovecot answers when its disk is full; the next APPEND works."""
    from diskfault import fail_next_segment_write

    acc = srv.new_user()
    c = srv.imaplib(acc)
    fail_next_segment_write(monkeypatch)
    typ, data = c.append("INBOX", None, None, msg("no room"))
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA] ")
    typ, data = c.append("INBOX", None, None, msg("room again"))
    assert typ == "OK"
    c.select("INBOX")
    typ, data = c.fetch("1:*", "(BODY.PEEK[])")
    assert [d[1] for d in data if isinstance(d, tuple)] == [msg("room again")]
    c.logout()


@pytest.mark.sqlite_only("fakes the free space of the SQLite store's disk")
def test_append_is_refused_before_its_literal_when_the_disk_is_nearly_full(srv, monkeypatch):
    """As SMTP's MAIL: less than 1.5 times the message free on the store's disk gets
    NO [OVERQUOTA] instead of "+", so the client does not upload a message that cannot be kept."""
    from collections import namedtuple

    from postroom.storage.sqlite import store as sqlite_store

    body = msg("big one")
    usage = namedtuple("usage", "total used free")
    free = [int(len(body) * 1.4)]
    monkeypatch.setattr(sqlite_store.shutil, "disk_usage", lambda path: usage(10**9, 0, free[0]))
    monkeypatch.setattr(sqlite_store, "FREE_SPACE_TTL", 0.0)  # each check sees the disk as it is now
    acc = srv.new_user()
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    r.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(body))
    assert r.line() == b"a NO [OVERQUOTA] Not enough disk space\r\n"
    # The connection is in step: the next command is a command, not literal data.
    assert r.cmd(b"b NOOP")[-1].startswith(b"b OK")
    free[0] = int(len(body) * 1.6)
    r.send(b"c APPEND INBOX {%d}\r\n" % len(body))
    assert r.line().startswith(b"+ ")
    r.send(body + b"\r\n")
    assert r.until_tagged(b"c")[-1].startswith(b"c OK [APPENDUID ")
    # Other commands' literals are not the message's: a nearly full disk does not refuse them.
    free[0] = 0
    r.send(b"d SELECT {5}\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b"INBOX\r\n")
    assert r.until_tagged(b"d")[-1].startswith(b"d OK")
    assert b"(\\Seen)" not in b"".join(r.cmd(b"e FETCH 1:* FLAGS"))  # only the message of c was kept
    r.close()
