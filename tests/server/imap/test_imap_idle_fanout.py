"""Many sessions of one user in IDLE (docs/imap.md, "10,000 idle clients"): one delivery reaches
every one of them, \\Recent goes to exactly one (RFC 3501 §2.3.2) although they share the read of the
mailbox's changes and settle the claim among themselves, and an idling session holds its connection's
task and no other."""

from __future__ import annotations

import asyncio

from imap_harness import PASSWORD, RawClient, msg

SESSIONS = 8


def _idling(srv, acc, n: int) -> list[RawClient]:
    out = []
    for _ in range(n):
        r = srv.raw()
        assert r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
        assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
        r.send(b"i IDLE\r\n")
        assert r.line().startswith(b"+ ")
        out.append(r)
    return out


def _tasks(srv) -> int:
    async def count() -> int:  # the store's and the runtime's own background tasks are named postroom-*
        return sum(1 for t in asyncio.all_tasks() if not t.get_name().startswith("postroom-"))

    return int(srv.call(count()))


def test_delivery_reaches_every_idling_session_and_recent_goes_to_one(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("before"))
    sessions = _idling(srv, acc, SESSIONS)
    for round_, exists in ((1, 2), (2, 3)):
        assert srv.deliver_by_smtp(acc, msg(f"new {round_}"))
        recent = []
        for r in sessions:
            assert r.line() == b"* %d EXISTS\r\n" % exists
            line = r.line()
            assert line.startswith(b"* ") and line.endswith(b" RECENT\r\n"), line
            recent.append(int(line.split()[1]))
        # Each message is \Recent in exactly one session: the first SELECT claimed "before", the
        # first session to learn of each new one claimed it (RECENT counts a session's claims).
        assert sum(recent) == 1 + round_, recent
    for r in sessions:
        r.send(b"DONE\r\n")
        assert r.until_tagged(b"i")[-1] == b"i OK Idle completed\r\n"
        # After IDLE the session's view is current: NOOP has nothing more to say.
        assert r.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
        r.close()


def test_an_idling_session_holds_one_task(srv):
    acc = srv.new_user()
    before = _tasks(srv)
    sessions = _idling(srv, acc, SESSIONS)
    # One task per connection (the runtime's), none added by IDLE: no reader or waiter tasks.
    assert _tasks(srv) - before == SESSIONS
    srv.deliver(acc, msg("wake"))
    for r in sessions:
        assert r.line() == b"* 1 EXISTS\r\n"
        r.line()  # RECENT
    # The tasks that pushed the update are gone again.
    for r in sessions:
        r.send(b"DONE\r\n")
        assert r.until_tagged(b"i")[-1] == b"i OK Idle completed\r\n"
    assert _tasks(srv) - before == SESSIONS
    for r in sessions:
        r.close()
