"""SAVEDATE (RFC 8514): FETCH SAVEDATE, SEARCH SAVEDBEFORE / SAVEDON / SAVEDSINCE /
SAVEDATESUPPORTED, and COPY / MOVE giving the copy a new save date."""

import re
import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest

from imap_harness import PASSWORD, msg

OLD = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
OLD_WIRE = b'" 3-Feb-2001 04:05:06 +0200"'
_DATE_TIME = re.compile(rb'SAVEDATE "([ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"')


def _imap_date(d: date) -> bytes:
    return d.strftime("%d-%b-%Y").encode()


def _saved(line: bytes) -> datetime:
    m = _DATE_TIME.search(line)
    assert m is not None, line
    return datetime.strptime(m.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")


def _is_now(d: datetime) -> bool:
    now = datetime.now(timezone.utc)
    return now - timedelta(seconds=60) <= d <= now + timedelta(seconds=5)


@pytest.fixture(scope="module")
def acc(srv):
    a = srv.new_user()
    srv.call(srv.store.append(a.id, "INBOX", msg("old idate"), frozenset(), OLD))
    srv.deliver(a, msg("delivered"))
    return a


@pytest.fixture
def raw(srv, acc):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    yield c
    c.close()


def test_capability(srv):
    c = srv.imaplib()
    try:
        assert "SAVEDATE" in c.capabilities
    finally:
        c.logout()


def test_fetch_savedate_with_imaplib(srv, acc):
    c = srv.imaplib(acc, "INBOX")
    try:
        typ, data = c.fetch("1:2", "(INTERNALDATE SAVEDATE)")
        assert typ == "OK"
        assert OLD_WIRE in data[0]  # INTERNALDATE as given to APPEND
        for line in data:
            assert _is_now(_saved(line)) and _saved(line).utcoffset() == timedelta(0)
        typ, data = c.uid("FETCH", "1", "(SAVEDATE)")
        assert typ == "OK" and b"UID 1" in data[0] and _is_now(_saved(data[0]))
    finally:
        c.logout()


def test_search_saved_keys(raw):
    assert raw.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    today = datetime.now(timezone.utc).date()
    cases = [
        (b"SAVEDON " + _imap_date(today), b" 1 2"),
        (b"SAVEDSINCE " + _imap_date(today), b" 1 2"),
        (b"SAVEDSINCE " + _imap_date(today + timedelta(days=2)), b""),
        (b"SAVEDBEFORE " + _imap_date(today + timedelta(days=2)), b" 1 2"),
        (b"SAVEDBEFORE " + _imap_date(today - timedelta(days=1)), b""),
        (b"SAVEDON 3-Feb-2001", b""),
        (b"ON 3-Feb-2001", b" 1"),  # the internal date is another attribute
        (b"SAVEDATESUPPORTED", b" 1 2"),
        (b"NOT SAVEDATESUPPORTED", b""),
        (b"savedsince 1-Jan-2000 UID 2", b" 2"),
    ]
    for criteria, expected in cases:
        r = raw.cmd(b"t SEARCH " + criteria)
        assert r[0] == b"* SEARCH" + expected + b"\r\n" and r[-1].startswith(b"t OK"), (criteria, r)
    r = raw.cmd(b"e UID SEARCH RETURN (COUNT) SAVEDON " + _imap_date(today))
    assert r[0] == b'* ESEARCH (TAG "e") UID COUNT 2\r\n'
    for bad in (b"SAVEDON", b"SAVEDON 99-Foo-2020", b"SAVEDBEFORE x", b"SAVEDATESUPPORTED 1-Jan-2020"):
        r = raw.cmd(b"b SEARCH " + bad)
        assert len(r) == 1 and r[0].startswith(b"b BAD"), (bad, r)


@pytest.mark.sqlite_only("edits store.db to fake a message stored before the migration")
def test_fetch_savedate_is_nil_when_unknown(srv, raw):
    # A message stored before migration 3 has no save date: FETCH gives NIL (RFC 8514 §4.2),
    # the SAVED* keys use its internal date instead.
    a = srv.new_user()
    srv.call(srv.store.append(a.id, "INBOX", msg("legacy"), frozenset(), OLD))
    mb = srv.call(srv.store.get_mailbox(a.id, "INBOX"))
    conn = sqlite3.connect(srv.store.dir / "store.db")
    conn.execute("UPDATE messages SET savedate = NULL WHERE mailbox_id = ?", (mb.id,))
    conn.commit()
    conn.close()
    c = srv.raw()
    try:
        assert c.cmd(b"l LOGIN %s %s" % (a.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
        assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
        r = c.cmd(b"f FETCH 1 (SAVEDATE INTERNALDATE)")
        assert r[0] == b"* 1 FETCH (SAVEDATE NIL INTERNALDATE " + OLD_WIRE + b")\r\n", r
        assert c.cmd(b"t SEARCH SAVEDON 3-Feb-2001")[0] == b"* SEARCH 1\r\n"
        assert c.cmd(b"t SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1\r\n"
        # A COPY is saved now.
        r = c.cmd(b"c COPY 1 Archive")
        assert r[-1].startswith(b"c OK")
        assert c.cmd(b"x SELECT Archive")[-1].startswith(b"x OK")
        r = c.cmd(b"f FETCH 1 (INTERNALDATE SAVEDATE)")
        assert OLD_WIRE in r[0] and _is_now(_saved(r[0])), r
    finally:
        c.close()


@pytest.mark.sqlite_only("edits store.db to back-date save dates")
def test_copy_and_move_give_a_new_savedate(srv):
    a = srv.new_user()
    srv.call(srv.store.append(a.id, "INBOX", msg("one"), frozenset(), OLD))
    srv.call(srv.store.append(a.id, "INBOX", msg("two"), frozenset(), OLD))
    # Pretend both were saved in 2010, before the session starts (no index cached yet).
    mb = srv.call(srv.store.get_mailbox(a.id, "INBOX"))
    conn = sqlite3.connect(srv.store.dir / "store.db")
    conn.execute("UPDATE messages SET savedate = 1262304000 WHERE mailbox_id = ?", (mb.id,))
    conn.commit()
    conn.close()
    c = srv.imaplib(a, "INBOX")
    try:
        typ, data = c.fetch("1:2", "(SAVEDATE)")
        assert typ == "OK" and all(b'SAVEDATE " 1-Jan-2010 00:00:00 +0000"' in d for d in data), data
        assert c.search(None, "SAVEDON", "1-Jan-2010") == ("OK", [b"1 2"])
        assert c.copy("1", "Archive")[0] == "OK"
        assert c._simple_command("MOVE", "2", "Trash")[0] == "OK"
        for box in ("Archive", "Trash"):
            c.select(box)
            typ, data = c.fetch("1", "(INTERNALDATE SAVEDATE)")
            assert typ == "OK" and OLD_WIRE in data[0] and _is_now(_saved(data[0])), (box, data)
            today = _imap_date(datetime.now(timezone.utc).date()).decode()
            assert c.search(None, "SAVEDON", today) == ("OK", [b"1"])
            assert c.search(None, "SAVEDON", "1-Jan-2010") == ("OK", [b""])
        c.select("INBOX")
        typ, data = c.fetch("1", "(SAVEDATE)")  # the COPY source keeps its save date
        assert b'SAVEDATE " 1-Jan-2010 00:00:00 +0000"' in data[0]
    finally:
        c.logout()
