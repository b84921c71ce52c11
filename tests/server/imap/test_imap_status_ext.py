"""STATUS=SIZE (RFC 8438), APPENDLIMIT (RFC 7889), and the LITERAL+/LITERAL- choice (RFC 7888)."""

import pytest
from imap_harness import msg

LIMITS = "message_size = 200000"


def test_capabilities(srv):
    r = srv.raw()
    caps = r.greeting.split(b"]")[0].split()
    assert b"APPENDLIMIT=200000" in caps and b"STATUS=SIZE" in caps
    # RFC 7888 §5: a server advertises LITERAL+ or LITERAL-, never both; LITERAL+ allows more.
    assert b"LITERAL+" in caps and b"LITERAL-" not in caps
    r.close()


def test_status_size_and_appendlimit(srv):
    acc = srv.new_user()
    a, b = msg("one"), msg("two", body="x" * 5000 + "\r\n")
    srv.deliver(acc, a)
    srv.deliver(acc, b)
    c = srv.imapclient(acc)
    st = c.folder_status("INBOX", ["MESSAGES", "SIZE", "APPENDLIMIT"])
    assert st == {b"MESSAGES": 2, b"SIZE": len(a) + len(b), b"APPENDLIMIT": 200000}
    # SIZE is the sum of the messages' RFC822.SIZE (RFC 8438 §3).
    c.select_folder("INBOX")
    sizes = c.fetch(c.search("ALL"), ["RFC822.SIZE"])
    assert sum(v[b"RFC822.SIZE"] for v in sizes.values()) == st[b"SIZE"]
    c.delete_messages([min(sizes)])
    c.expunge()
    assert c.folder_status("Sent", ["SIZE"]) == {b"SIZE": 0}
    assert c.folder_status("INBOX", ["SIZE"]) == {b"SIZE": len(b)}
    c.logout()


def test_append_over_the_advertised_limit(srv):
    acc = srv.new_user()
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "secret"' % acc.address.encode())
    r.send(b"a APPEND INBOX {200001}\r\n")
    assert r.line() == b"a NO [TOOBIG] Literal too large\r\n"  # RFC 7889 §4: before the upload
    r.close()


@pytest.mark.parametrize("items", [b"(SIZE", b"(SIZES)", b"SIZE", b"()", b"(SIZE APPENDLIMIT X)", b"(APPENDLIMIT=1)"])
def test_status_malformed(srv, items):
    acc = srv.new_user()
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "secret"' % acc.address.encode())
    got = r.cmd(b"s STATUS INBOX " + items)
    assert len(got) == 1 and got[0].startswith(b"s BAD "), got
    r.close()
