"""STORE, COPY, MOVE and their UID forms (RFC 3501 §6.4.6-8, RFC 4315, RFC 6851)."""

import imaplib

import pytest

from imap_harness import PASSWORD, msg


def test_store_variants(srv):
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(str(i)))
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.store("1:2", "+FLAGS", "(\\Flagged $Label1)")
    assert typ == "OK" and len(data) == 2
    assert b"\\Flagged" in data[0] and b"$Label1" in data[0]
    typ, data = c.store("1", "-FLAGS", "\\Flagged")
    assert b"\\Flagged" not in data[0] and b"$Label1" in data[0]
    typ, data = c.store("3", "FLAGS", "(\\Answered)")
    assert b"FLAGS (\\Answered \\Recent)" in data[0]
    typ, data = c.store("1:3", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK" and data == [None]
    typ, data = c.fetch("1:3", "(FLAGS)")
    assert all(b"\\Seen" in d for d in data)
    assert c.store("1", "+FLAGS", "(\\Bogus)")[0] == "NO"
    with pytest.raises(imaplib.IMAP4.error):
        c.store("1", "XFLAGS", "(\\Seen)")
    c.logout()


def test_uid_store_includes_uid(srv):
    acc = srv.new_user()
    uid = srv.deliver(acc, msg("u"))
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
    assert typ == "OK" and b"UID %d" % uid in data[0]
    c.logout()
    ic = srv.imapclient(acc, select="INBOX")
    assert b"\\Deleted" in ic.add_flags([uid], [b"\\Seen"])[uid]
    ic.logout()


def test_new_keyword_announced_in_flags(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("k"))
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    r.cmd(b"s SELECT INBOX")
    lines = r.cmd(b"a STORE 1 +FLAGS (NewKeyword)")
    assert lines[0].startswith(b"* FLAGS (") and b"NewKeyword" in lines[0]
    r.close()


def test_copy_with_copyuid_and_trycreate(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i)), flags=frozenset({"\\Flagged"})) for i in range(3)]
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK"
    m = c.untagged_responses  # imaplib keeps the tagged code in the data
    assert b"COPYUID" in data[0]
    _, dv, src, dst = data[0].split(b"]")[0].split(b" ")
    assert src == b"%d:%d" % (uids[0], uids[1]) and dst == b"1:2"
    typ, data = c.copy("1", "NoSuchBox")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    c.select("Archive")
    typ, data = c.fetch("1:*", "(FLAGS)")
    assert len(data) == 2 and all(b"\\Flagged" in d for d in data)
    _ = m
    c.logout()


def test_uid_copy_and_move(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(str(i))) for i in range(4)]
    c = srv.imapclient(acc, select="INBOX")
    c.copy([uids[0]], "Trash")
    assert c.folder_status("Trash", ["MESSAGES"])[b"MESSAGES"] == 1
    c.move([uids[1], uids[2]], "Junk")
    assert c.search() == [uids[0], uids[3]]
    assert c.folder_status("Junk", ["MESSAGES"])[b"MESSAGES"] == 2
    c.logout()


def test_move_transcript(srv):
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(str(i)))
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    r.cmd(b"s SELECT INBOX")
    lines = r.cmd(b"m MOVE 2:3 Trash")
    # RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs.
    assert lines[0].startswith(b"* OK [COPYUID ")
    assert lines[1:3] == [b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    assert lines[-1] == b"m OK Move completed\r\n"
    assert b"TRYCREATE" in r.cmd(b"n MOVE 1 Nope")[-1]
    r.close()
