"""OBJECTID (RFC 8474): MAILBOXID after SELECT/EXAMINE and CREATE and as a STATUS item;
EMAILID and THREADID as FETCH items; SEARCH EMAILID / THREADID. Raw exchanges."""

import re

import pytest

from postroom.storage.models import DeliveryTarget
from imap_harness import PASSWORD, msg

_OBJECTID = re.compile(rb"^[A-Za-z0-9_-]{1,255}$")  # RFC 8474 §7


def _login(srv, acc):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return c


@pytest.fixture
def acc(srv):
    return srv.new_user()


@pytest.fixture
def raw(srv, acc):
    c = _login(srv, acc)
    yield c
    c.close()


def _one(pattern: bytes, lines: list[bytes]) -> bytes:
    found = [m.group(1) for m in (re.search(pattern, ln) for ln in lines) if m]
    assert len(found) == 1, (pattern, lines)
    assert _OBJECTID.match(found[0]), found[0]
    return found[0]


def _select_id(c, name: bytes, verb: bytes = b"SELECT") -> bytes:
    lines = c.cmd(b"s " + verb + b" " + name)
    assert lines[-1].startswith(b"s OK"), lines
    return _one(rb"^\* OK \[MAILBOXID \(([^)]*)\)\]", lines)


def _status_id(c, name: bytes) -> bytes:
    lines = c.cmd(b"t STATUS " + name + b" (MAILBOXID UIDVALIDITY)")
    assert lines[-1].startswith(b"t OK"), lines
    return _one(rb"MAILBOXID \(([^)]*)\)", lines)


def _create_id(c, name: bytes) -> bytes:
    lines = c.cmd(b"c CREATE " + name)
    return _one(rb"^c OK \[MAILBOXID \(([^)]*)\)\]", lines)


def _emailids(c, seqs: bytes = b"1:*") -> list[bytes]:
    lines = c.cmd(b"f FETCH " + seqs + b" (EMAILID)")
    assert lines[-1].startswith(b"f OK"), lines
    out = [m.group(1) for m in (re.search(rb"EMAILID \(([^)]*)\)", ln) for ln in lines) if m]
    assert all(_OBJECTID.match(x) for x in out), out
    return out


def test_capability(srv):
    c = srv.imaplib()
    try:
        assert "OBJECTID" in c.capabilities
    finally:
        c.logout()


def test_mailboxid_select_examine_status_create(raw):
    inbox = _select_id(raw, b"INBOX")
    assert _select_id(raw, b"INBOX", b"EXAMINE") == inbox
    assert _status_id(raw, b"INBOX") == inbox
    new = _create_id(raw, b"Projects")
    assert new != inbox
    assert _status_id(raw, b"Projects") == new
    assert _select_id(raw, b"Projects") == new
    # LIST-STATUS (RFC 5819) shares STATUS's items
    lines = raw.cmd(b'ls LIST "" "Projects" RETURN (STATUS (MAILBOXID))')
    assert lines[-1].startswith(b"ls OK") and b"MAILBOXID (" + new + b")" in b"".join(lines)


def test_mailboxid_stable_across_rename_and_not_reused(raw):
    old = _create_id(raw, b"Before")
    child = _create_id(raw, b"Before/Child")
    assert raw.cmd(b"r RENAME Before After")[-1].startswith(b"r OK")
    assert _status_id(raw, b"After") == old
    assert _status_id(raw, b"After/Child") == child  # inferiors are renamed, not re-created
    # A mailbox made afterwards under the old name (or after DELETE) is another mailbox.
    again = _create_id(raw, b"Before")
    assert again not in (old, child)
    assert raw.cmd(b"d DELETE Before")[-1].startswith(b"d OK")
    third = _create_id(raw, b"Before")
    assert third not in (old, child, again)


def test_rename_inbox_keeps_inbox_id(raw):
    inbox = _select_id(raw, b"INBOX")
    assert raw.cmd(b"u UNSELECT")[-1].startswith(b"u OK")
    assert raw.cmd(b"r RENAME INBOX Old-Inbox")[-1].startswith(b"r OK")
    assert _status_id(raw, b"INBOX") == inbox
    assert _status_id(raw, b"Old-Inbox") != inbox


def test_mailboxid_unique_across_accounts(srv, raw):
    other = srv.new_user()
    c2 = _login(srv, other)
    try:
        mine = {_status_id(raw, n) for n in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive")}
        theirs = {_status_id(c2, n) for n in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive")}
        assert len(mine) == 6 and len(theirs) == 6
        assert not mine & theirs
    finally:
        c2.close()


def test_emailid_copy_move_and_distinct(srv, acc, raw):
    srv.deliver(acc, msg("one"))
    srv.deliver(acc, msg("two"))
    raw.cmd(b"s SELECT INBOX")
    one, two = _emailids(raw)
    assert one != two
    assert raw.cmd(b"c COPY 1 Archive")[-1].startswith(b"c OK")
    assert raw.cmd(b"m MOVE 2 Trash")[-1].startswith(b"m OK")
    raw.cmd(b"s SELECT Archive")
    assert _emailids(raw) == [one]
    raw.cmd(b"s SELECT Trash")
    assert _emailids(raw) == [two]
    # UID FETCH, and together with other items
    lines = raw.cmd(b"f UID FETCH 1:* (FLAGS EMAILID THREADID)")
    assert lines[-1].startswith(b"f OK")
    assert re.search(rb"EMAILID \(" + two + rb"\) THREADID NIL", lines[0]), lines


def test_emailid_not_reused_after_expunge(srv, acc, raw):
    srv.deliver(acc, msg("first"))
    raw.cmd(b"s SELECT INBOX")
    (first,) = _emailids(raw)
    assert raw.cmd(b"x STORE 1 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"x OK")
    assert raw.cmd(b"e EXPUNGE")[-1].startswith(b"e OK")
    srv.deliver(acc, msg("second"))  # the store's newest bytes were freed just before
    raw.cmd(b"n NOOP")
    (second,) = _emailids(raw)
    assert second != first


def test_emailid_shared_by_one_delivery_to_several_accounts(srv, acc, raw):
    # One stored copy of the bytes for several recipients: the same EMAILID for each.
    other = srv.new_user()
    srv.call(srv.store.deliver(msg("to both"), [DeliveryTarget(acc.id), DeliveryTarget(other.id)]))
    raw.cmd(b"s SELECT INBOX")
    c2 = _login(srv, other)
    try:
        c2.cmd(b"s SELECT INBOX")
        assert _emailids(raw) == _emailids(c2)
    finally:
        c2.close()


def test_search_emailid_and_threadid(srv, acc, raw):
    srv.deliver(acc, msg("a"))
    srv.deliver(acc, msg("b"))
    srv.deliver(acc, msg("c"))
    raw.cmd(b"s SELECT INBOX")
    ids = _emailids(raw)
    lines = raw.cmd(b"q SEARCH EMAILID " + ids[1])
    assert lines[0] == b"* SEARCH 2\r\n" and lines[-1].startswith(b"q OK")
    assert raw.cmd(b"q UID SEARCH EMAILID " + ids[2])[0] == b"* SEARCH 3\r\n"
    assert raw.cmd(b"q SEARCH OR EMAILID " + ids[0] + b" EMAILID " + ids[2])[0] == b"* SEARCH 1 3\r\n"
    assert raw.cmd(b"q SEARCH NOT EMAILID " + ids[0])[0] == b"* SEARCH 2 3\r\n"
    assert raw.cmd(b"q SEARCH EMAILID Enosuch")[0] == b"* SEARCH\r\n"
    assert raw.cmd(b"q SEARCH THREADID T1")[0] == b"* SEARCH\r\n"
    assert raw.cmd(b"q SEARCH NOT THREADID T1")[0] == b"* SEARCH 1 2 3\r\n"
    assert raw.cmd(b"q SEARCH EMAILID " + ids[1] + b" SUBJECT b")[0] == b"* SEARCH 2\r\n"
    # objectid grammar: 1*255 of A-Za-z0-9_-
    for bad in (b"E.1", b"", b"E" * 256, b'"E1"', b"E1*"):
        assert raw.cmd(b"q SEARCH EMAILID " + bad)[-1].startswith(b"q BAD"), bad


def test_fetch_threadid_nil(srv, acc, raw):
    srv.deliver(acc, msg("thread"))
    raw.cmd(b"s SELECT INBOX")
    lines = raw.cmd(b"f FETCH 1 (THREADID)")
    assert lines[0] == b"* 1 FETCH (THREADID NIL)\r\n" and lines[-1].startswith(b"f OK")
