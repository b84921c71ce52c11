"""Bad input on the wire: overlong lines, garbage, pipelining, the bad-command limit.
Numbered errors every time, never a traceback or a hang."""

from __future__ import annotations

from nntp_harness import Harness, article

NNTP_SETTINGS = "max_bad_commands = 8"


def test_unknown_and_malformed_commands(srv: Harness) -> None:
    with srv.client("implicit") as c:
        assert c.cmd("FROBNICATE")[0] == 500
        assert c.cmd("")[0] == 500
        assert c.cmd("   ")[0] == 500
        assert c.cmd(b"GROUP \xff\xfe")[0] == 500  # not UTF-8
        assert c.cmd(b"GR\x00OUP x")[0] == 500
        assert c.cmd("DATE extra")[0] == 501
        assert c.cmd("date")[0] == 111  # keywords are case-insensitive
        assert c.cmd("\tDATE")[0] == 111


def test_overlong_line_is_refused_and_session_continues(srv: Harness) -> None:
    """RFC 3977 §3.1: 512 octets including CRLF; a longer line gets 500 and is skipped."""
    g = srv.add_group()
    with srv.client("implicit") as c:
        assert c.cmd("GROUP " + "a" * 600)[0] == 500
        assert c.cmd("X" * 100_000)[0] == 500
        assert c.cmd(f"GROUP {g}")[0] == 211
        assert c.cmd("HDR Subject " + "1" * 505)[0] == 500  # 511 octets + CRLF = 523
        # an argument may have 497 octets (RFC 3977 §3.1), no more
        assert c.cmd("LIST ACTIVE " + "x" * 497)[0] == 215
        assert c.cmd("LIST ACTIVE " + "x" * 498)[0] == 501  # 512 octets with CRLF: a line, a bad argument


def test_pipelined_commands(srv: Harness) -> None:
    g = srv.add_group()
    mids = [srv.post_direct(article(g, n)).message_id for n in range(1, 4)]
    with srv.client("implicit") as c:
        answers = c.pipeline([f"GROUP {g}", "LISTGROUP", "ARTICLE 1", "HEAD 2", "BODY 3", "STAT 2",
                              "NEXT", "OVER 1-3", "HDR Subject 1-", "NOSUCH", "DATE", f"STAT {mids[0]}"])
        codes = [a[0] for a in answers]
        assert codes == [211, 211, 220, 221, 222, 223, 223, 224, 225, 500, 111, 223]
        assert answers[1][2] == [b"1", b"2", b"3"]
        assert len(answers[7][2]) == 3
        assert answers[6][1].startswith("3 ")


def test_too_many_bad_commands_close(srv: Harness) -> None:
    with srv.client("implicit") as c:
        codes = [c.cmd(f"BAD{i}")[0] for i in range(7)]
        assert codes == [500] * 7
        assert c.cmd("BAD8")[0] == 400
        assert c.closed()


def test_plain_listener_greets_and_quits(srv: Harness) -> None:
    with srv.client("none") as c:
        assert c.greeting[0] in (200, 201)
        assert c.cmd("QUIT")[0] == 205
        assert c.closed()


def test_connection_dropped_mid_article(srv: Harness) -> None:
    """A client that vanishes in the middle of POST leaves nothing stored."""
    g = srv.add_group()
    with srv.client("implicit") as c:
        assert c.cmd("POST")[0] == 340
        c.send(article(g, 1)[:40])
    with srv.client("implicit") as c:
        assert c.cmd(f"GROUP {g}")[1].startswith("0 ")
