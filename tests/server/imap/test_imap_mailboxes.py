"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, NAMESPACE (RFC 3501 §6.3)."""

import imaplib

import pytest

from imap_harness import msg


def names(client, pattern="*", ref=""):
    return sorted(f[2] for f in client.list_folders(ref, pattern))


def test_default_mailboxes_and_special_use(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    folders = {f[2]: f[0] for f in c.list_folders()}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(folders)
    assert b"\\Sent" in folders["Sent"] and b"\\HasNoChildren" in folders["INBOX"]
    c.logout()


def test_create_delete_hierarchy(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    c.create_folder("Work/Projects/2024")
    assert {"Work", "Work/Projects", "Work/Projects/2024"} <= set(names(c))
    assert names(c, "Work/%") == ["Work/Projects"]
    assert names(c, "%") == sorted(["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work"])
    with pytest.raises(Exception, match="ALREADYEXISTS"):
        c.create_folder("Work")
    with pytest.raises(Exception):
        c.create_folder("INBOX")
    with pytest.raises(Exception, match="CANNOT"):
        c.create_folder("bad*name")
    c.create_folder("Trailing/")  # §6.3.3: trailing separator creates "Trailing"
    assert "Trailing" in names(c)
    # Deleting a parent keeps its children; the parent shows as \Noselect.
    c.delete_folder("Work/Projects")
    flags = {f[2]: f[0] for f in c.list_folders()}
    assert b"\\Noselect" in flags["Work/Projects"] and "Work/Projects/2024" in flags
    with pytest.raises(Exception, match="NONEXISTENT"):
        c.delete_folder("Work/Projects")
    with pytest.raises(Exception):
        c.delete_folder("INBOX")
    c.logout()


def test_utf7_names(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    assert c.create('"&AMk-t&AOk-"')[0] == "OK"   # "Été"
    typ, data = c.list()
    assert any(b'"&AMk-t&AOk-"' in d for d in data)
    typ, data = c.create("bad&name")
    c.logout()
    ic = srv.imapclient(acc)
    assert "\u00c9t\u00e9" in names(ic)  # imapclient decodes modified UTF-7
    ic.create_folder("\u65e5\u672c\u8a9e/sub")
    assert "\u65e5\u672c\u8a9e/sub" in names(ic)
    ic.logout()


def test_list_special_forms(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    c.create("A/B")
    typ, data = c.list("A/", "%")
    assert data == [b'(\\HasNoChildren) "/" "A/B"']
    typ, data = c.list('""', "inbox")
    assert data == [b'(\\HasNoChildren) "/" "INBOX"']
    typ, data = c.list('""', "nomatch*")
    assert data == [None]
    c.logout()


def test_rename(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    c.create_folder("Old/Child")
    c.append("Old", msg("in old"))
    c.rename_folder("Old", "New/Place")
    got = names(c)
    assert "New/Place" in got and "New/Place/Child" in got and "Old" not in got
    st = c.folder_status("New/Place", ["MESSAGES"])
    assert st[b"MESSAGES"] == 1
    with pytest.raises(Exception, match="NONEXISTENT"):
        c.rename_folder("Nope", "Other")
    with pytest.raises(Exception, match="ALREADYEXISTS"):
        c.rename_folder("New/Place", "Sent")
    c.logout()


def test_rename_inbox_moves_messages(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("a"))
    srv.deliver(acc, msg("b"))
    c = srv.imapclient(acc)
    c.rename_folder("INBOX", "Saved")
    assert c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 0
    assert c.folder_status("Saved", ["MESSAGES"])[b"MESSAGES"] == 2
    assert "INBOX" in names(c)
    c.logout()


def test_subscribe_lsub(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    c.create("P/Q")
    c.unsubscribe("P")
    assert c.subscribe("P/Q")[0] == "OK"
    typ, data = c.lsub('""', "*")
    assert b'() "/" "P/Q"' in data and b'() "/" "INBOX"' in data
    typ, data = c.lsub('""', "P")
    # §6.3.9: a non-subscribed parent of a subscribed name matched via % is \Noselect.
    typ, data = c.lsub('""', "%")
    assert b'(\\Noselect) "/" "P"' in data
    assert c.unsubscribe("P/Q")[0] == "OK"
    typ, data = c.lsub('""', "P*")
    assert data == [None]
    typ, data = c.subscribe("Missing")
    assert typ == "NO"
    c.logout()


def test_status(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("1"))
    srv.deliver(acc, msg("2"), flags=frozenset({"\\Seen"}))
    c = srv.imaplib(acc)
    typ, data = c.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK"
    line = data[0].decode()
    assert line.startswith('"INBOX" (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY ')
    assert line.endswith("UNSEEN 1)")
    typ, data = c.status("Nope", "(MESSAGES)")
    assert typ == "NO"
    with pytest.raises(imaplib.IMAP4.error):
        c.status("INBOX", "(BOGUS)")
    c.logout()


def test_namespace(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    ns = c.namespace()
    assert ns.personal == (("", "/"),) and ns.other is None and ns.shared is None
    c.logout()
