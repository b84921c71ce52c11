"""FETCH responses kept for reuse (handlers/fetch.py RESPONSES) and SELECT before the message index
is built (Store.select_view): what a client is told must never be stale.

A header-and-flags FETCH answered again from kept responses must show flags changed meanwhile
(by this session, by another, by \\Seen set through BODY[]), \\Recent only to the session holding it,
and each session's sequence numbers; the first SELECT after the index was dropped must give the same
counts as later ones.
"""

import re

from imap_harness import msg

HEADERS = "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"


def _flags(data) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    """seq -> the FLAGS list of each FETCH response imaplib returned."""
    out = {}
    for item in data:
        if isinstance(item, tuple):
            m = re.match(rb"(\d+) \(.*?FLAGS \(([^)]*)\)", item[0])  # imaplib drops the word FETCH
            if m:
                out[int(m.group(1))] = m.group(2)
    return out


def test_repeated_header_fetch_follows_flag_changes(srv):
    acc = srv.new_user()
    for i in range(6):
        srv.deliver(acc, msg(f"reuse {i}"))
    first = srv.imaplib(acc, select="INBOX")  # claims \Recent for all six
    other = srv.imaplib(acc, select="INBOX")
    a1 = first.fetch("1:6", HEADERS)[1]
    a2 = first.fetch("1:6", HEADERS)[1]  # answered from kept responses
    assert a1 == a2 and len(_flags(a1)) == 6 and all(b"\\Recent" in f for f in _flags(a1).values())
    assert b"Subject: reuse 3" in a1[6][1]
    b1 = _flags(other.fetch("1:6", HEADERS)[1])
    assert len(b1) == 6 and all(b"\\Recent" not in f for f in b1.values())  # the same messages, \Recent not held here

    first.store("2", "+FLAGS", "(\\Flagged)")  # this session
    other.store("3", "+FLAGS", "($Work)")  # another one
    first.fetch("4", "(BODY[TEXT])")  # sets \Seen as a side effect
    for c in (first, other):
        f = _flags(c.fetch("1:6", HEADERS)[1])
        assert b"\\Flagged" in f[2] and b"$Work" in f[3] and b"\\Seen" in f[4]
        assert b"\\Flagged" not in f[1] and b"$Work" not in f[1] and b"\\Seen" not in f[1]

    # An expunge renumbers: the kept responses carry no sequence number.
    first.store("1", "+FLAGS", "(\\Deleted)")
    first.expunge()
    data = first.fetch("1:5", HEADERS)[1]
    assert b"Subject: reuse 1" in data[0][1] and b"\\Flagged" in _flags(data)[1]
    first.logout()
    other.logout()


async def _forget_indexes(store) -> None:  # type: ignore[no-untyped-def]
    store._indexes.clear()


def test_select_counts_before_and_after_the_index(srv):
    acc = srv.new_user()
    for i in range(40):
        srv.deliver(acc, msg(f"count {i}"))
    c = srv.imaplib(acc, select="INBOX")
    c.store("1:10", "+FLAGS", "(\\Seen)")
    c.store("20,25", "+FLAGS", "(\\Deleted)")
    c.expunge()  # UIDs with gaps: the view reads them
    c.logout()
    answers = []
    for _ in range(2):
        srv.call(_forget_indexes(srv.store))  # as after a restart: nothing of the mailbox in memory
        r = srv.imaplib(acc)
        for _ in range(3):
            typ, data = r.select("INBOX")
            assert typ == "OK"
            answers.append((data[0], r.untagged_responses.get("UNSEEN"), r.untagged_responses.get("UIDNEXT")))
        uids = r.uid("SEARCH", None, "ALL")[1][0].split()
        assert len(uids) == 38 and b"20" not in uids and b"25" not in uids
        r.logout()
    assert all(a == (b"38", [b"11"], [b"41"]) for a in answers), answers
