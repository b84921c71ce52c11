"""``RETR n`` answered without the gate (pop3/handlers.py ``retr_now``, also from the
transport's callback): it must send exactly what the general path sends, and leave every
other line to it. ``retr n`` (lower case) always takes the general path, so each case
compares the two spellings over the same session."""

from __future__ import annotations

import poplib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pop3_harness import Harness, message

from postroom.pop3 import handlers


def _exchange(c: poplib.POP3, line: bytes) -> bytes:
    """Send one command line, return the whole response as sent (multi-line when +OK for RETR)."""
    c.sock.sendall(line + b"\r\n")
    first = c.file.readline()
    out = [first]
    if first.startswith(b"+OK") and line[:4].upper() == b"RETR":
        while True:
            got = c.file.readline()
            out.append(got)
            if got == b".\r\n" or not got:
                break
    return b"".join(out)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The lines the lean path answered (it is looked up when a session starts)."""
    answered: list[bytes] = []
    real = handlers.retr_now

    def counting(s, line):  # type: ignore[no-untyped-def]
        got = real(s, line)
        if got is not None:
            answered.append(line)
        return got
    monkeypatch.setattr(handlers, "retr_now", counting)
    return answered


@pytest.mark.sqlite_only("the lean path reads through SqliteStore.read_message_now; on PostgreSQL it declines")
def test_retr_at_hand_sends_what_the_general_path_sends(srv: Harness, taken: list[bytes]) -> None:
    acc = srv.new_user()
    raws = [message(1), b"Subject: dots\r\n\r\n.first line\r\nmiddle\r\n..two\r\n.\r\nlast", message(3)]
    for raw in raws:
        srv.deliver(acc, raw)
    c = srv.login(acc)
    try:
        # Not "at hand" at first: a segment file not yet open (opening may wait for the disk)
        # and, after a read that waited, the read-ahead of the next message; the general
        # path's reads settle both.
        for n in (1, 2, 3):
            _exchange(c, b"retr %d" % n)
        for n in (1, 2, 3):
            lean = _exchange(c, b"RETR %d" % n)
            assert lean == _exchange(c, b"retr %d" % n)
            assert lean.startswith(b"+OK %d octets\r\n" % len(raws[n - 1])) and lean.endswith(b"\r\n.\r\n")
        assert taken == [b"RETR 1\r\n", b"RETR 2\r\n", b"RETR 3\r\n"]
        # Lines the lean path leaves to the general one, with the same answers for both spellings.
        assert _exchange(c, b"DELE 2").startswith(b"+OK")
        for arg in (b"2", b"0", b"4", b"01", b"99999999999", b"x", b"1 2", b""):
            lean, general = _exchange(c, b"RETR " + arg), _exchange(c, b"retr " + arg)
            assert lean == general, arg
        assert taken[3:] == [b"RETR 01\r\n"]  # the only one answered there: message 1 again
        # RETR marks the messages read at QUIT, as the general path does.
        c.quit()
    finally:
        c.close()
    seen = [m for m in srv.inbox(acc) if "\\Seen" in m.flags]
    assert len(seen) == 2  # 1 and 3 (2 was deleted)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(st.lists(st.sampled_from(["text", ".", "..", ".dot", "", " ", "a.b", "From x"]),
                                min_size=0, max_size=8), min_size=1, max_size=4))
def test_retr_at_hand_property(srv: Harness, bodies: list[list[str]]) -> None:
    acc = srv.new_user()
    raws = [("Subject: %d\r\n\r\n" % i + "\r\n".join(lines)).encode() for i, lines in enumerate(bodies)]
    for raw in raws:
        srv.deliver(acc, raw)
    c = srv.login(acc)
    try:
        for n in range(1, len(raws) + 1):
            assert _exchange(c, b"RETR %d" % n) == _exchange(c, b"retr %d" % n)
        c.quit()
    finally:
        c.close()


@pytest.mark.sqlite_only("the lean path reads through SqliteStore.read_message_now; on PostgreSQL it declines")
def test_retr_at_hand_marks_what_it_sent_read_at_quit(srv: Harness, taken: list[bytes]) -> None:
    acc = srv.new_user()
    for i in (1, 2, 3):
        srv.deliver(acc, message(i))
    first = srv.login(acc)
    for n in (1, 2, 3):  # opens the segment; dropped without QUIT: no UPDATE, nothing marked
        _exchange(first, b"retr %d" % n)
    first.close()
    c = srv.login(acc)
    try:
        assert _exchange(c, b"RETR 1").startswith(b"+OK") and _exchange(c, b"RETR 3").startswith(b"+OK")
        c.quit()
    finally:
        c.close()
    assert taken == [b"RETR 1\r\n", b"RETR 3\r\n"]
    assert [("\\Seen" in m.flags) for m in srv.inbox(acc)] == [True, False, True]
