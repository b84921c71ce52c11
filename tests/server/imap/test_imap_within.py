"""WITHIN (RFC 5032): SEARCH OLDER n / YOUNGER n against the internal date."""

from datetime import datetime, timedelta, timezone

import pytest

from imap_harness import PASSWORD, msg


@pytest.fixture(scope="module")
def box(srv):
    acc = srv.new_user()
    now = datetime.now(timezone.utc)
    for i, age in enumerate([timedelta(days=10), timedelta(hours=2), timedelta(minutes=1)]):
        srv.call(srv.store.append(acc.id, "INBOX", msg(f"w{i}"), frozenset(), now - age))
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    yield c
    c.close()


@pytest.mark.parametrize("criteria,expected", [
    (b"OLDER 3600", b"1 2"), (b"YOUNGER 3600", b"3"), (b"YOUNGER 86400", b"2 3"),
    (b"OLDER 86400", b"1"), (b"YOUNGER 4294967295", b"1 2 3"), (b"OLDER 4294967295", b""),
    (b"NOT YOUNGER 3600", b"1 2"), (b"OR OLDER 864000 YOUNGER 120", b"1 3"),
    (b"younger 86400 older 3600", b"2"), (b"YOUNGER 86400 FLAGGED", b""),
])
def test_within(box, criteria, expected):
    r = box.cmd(b"w SEARCH " + criteria)
    assert r[0] == b"* SEARCH" + (b" " + expected if expected else b"") + b"\r\n" and r[-1].startswith(b"w OK")


def test_within_esearch_and_uid(box):
    r = box.cmd(b"e SEARCH RETURN (COUNT) YOUNGER 86400")
    assert r[0] == b'* ESEARCH (TAG "e") COUNT 2\r\n'
    assert box.cmd(b"u UID SEARCH OLDER 3600")[-1].startswith(b"u OK")


@pytest.mark.parametrize("criteria", [b"OLDER", b"OLDER 0", b"YOUNGER -5", b"YOUNGER x", b"OLDER 99999999999"])
def test_within_malformed(box, criteria):
    r = box.cmd(b"b SEARCH " + criteria)
    assert len(r) == 1 and r[0].startswith(b"b BAD"), r
