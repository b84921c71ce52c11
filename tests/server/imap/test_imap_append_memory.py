"""APPEND within [limits] message_memory (budget.py): a message that does not fit beside
the others being received is read to its end, dropped, and refused with NO [UNAVAILABLE];
once the others are done it goes through, and the budget is given back."""

from __future__ import annotations

import time

from imap_harness import PASSWORD

LIMITS = 'message_size = "200k"\nmessage_memory = "300k"'


def test_append_past_the_memory_budget_is_refused_for_now(srv):
    acc = srv.new_user()
    login = b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode())
    held = b"Subject: held\r\n\r\n" + (b"h" * 998 + b"\r\n") * 150  # 150 KB
    big = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * 180  # 180 KB: 150 + 180 > 300
    holder = srv.raw()
    holder.cmd(login)
    holder.send(b"a APPEND INBOX {%d}\r\n" % (len(held) + 10))
    assert holder.line().startswith(b"+ ")
    holder.send(held)  # 10 bytes short: the message is held open
    time.sleep(0.3)
    other = srv.raw()
    other.cmd(login)
    other.send(b"b APPEND INBOX {%d}\r\n" % len(big))
    assert other.line().startswith(b"+ ")
    other.send(big + b"\r\n")
    assert other.until_tagged(b"b")[-1] == b"b NO [UNAVAILABLE] Server busy, try again later\r\n"
    other.send(b"c APPEND INBOX (\\Seen) {%d+}\r\n" % len(big) + big + b"\r\n")  # LITERAL+ too
    assert other.until_tagged(b"c")[-1] == b"c NO [UNAVAILABLE] Server busy, try again later\r\n"
    assert other.cmd(b"d NOOP")[-1].startswith(b"d OK")  # in step
    holder.send(b"0123456789\r\n")
    assert holder.until_tagged(b"a")[-1].startswith(b"a OK [APPENDUID ")
    assert srv.server.ctx.state["message_memory"].used == 0
    other.send(b"e APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    assert other.until_tagged(b"e")[-1].startswith(b"e OK [APPENDUID ")
    assert other.cmd(b"f STATUS INBOX (MESSAGES)")[0] == b"* STATUS \"INBOX\" (MESSAGES 2)\r\n"
    holder.close()
    other.close()
    time.sleep(0.2)
    assert srv.server.ctx.state["message_memory"].used == 0
