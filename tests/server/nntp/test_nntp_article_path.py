"""ARTICLE/HEAD/BODY by number on the wire, byte for byte, first and second read.

The news layer keeps what it learnt from an article's header at its first read (Message-ID,
where Xref goes and the body starts, whether any line needs dot-stuffing: docs/nntp.md,
"How ARTICLE is served"); these tests check that the second read (from what was kept) sends
exactly what the first did and what RFC 3977 §3.1.1 asks for, for every stuffing case, a
crosspost (its Xref still looked up) and an article cancelled after it was read. The
command lines also take the connection's one-chunk line path and its general one (pipelined,
split, overlong).
"""

from __future__ import annotations

import socket
import time

import pytest
from nntp_harness import Harness, article, unique

from postroom.nntp.proto import MAX_SASL_LINE

# (name, body as posted); the articles are numbered 1.. in this order.
BODIES = [
    ("plain", b"no dots here\r\nnor here\r\n"),
    ("first line", b".starts with a dot\r\nplain\r\n"),
    ("later line", b"plain\r\n.later dot\r\n..two\r\n"),
    ("last line", b"plain\r\n."),
    ("only a dot", b".\r\n"),
]


@pytest.fixture(scope="module")
def group(srv: Harness) -> tuple[str, list[str], list[bytes]]:
    g = srv.add_group()
    mids, bodies = [], []
    for n, (_name, body) in enumerate(BODIES, 1):
        mids.append(srv.post_direct(article(g, n, body=body)).message_id)
        # The stored body has CRLF line ends (a last line without one gets it).
        bodies.append(body if body.endswith(b"\r\n") or not body else body + b"\r\n")
    return g, mids, bodies


def _stuffed(data: bytes) -> bytes:
    """``data`` as RFC 3977 §3.1.1 puts it on the wire, terminator included."""
    lines = data.split(b"\r\n")[:-1] if data else []
    return b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines) + b".\r\n"


def _block(c: object, line: str) -> tuple[bytes, bytes]:
    """Send ``line``; (status line, the block exactly as sent, terminator included)."""
    c.send_line(line)  # type: ignore[attr-defined]
    status = c.readline()  # type: ignore[attr-defined]
    out = bytearray()
    if status[:1] == b"2" and status[:3] != b"223":
        while True:
            x = c.readline()  # type: ignore[attr-defined]
            out += x + b"\r\n"
            if x == b".":
                break
    return status, bytes(out)


def test_article_head_body_twice_byte_exact(srv: Harness, group: tuple[str, list[str], list[bytes]]) -> None:
    g, mids, bodies = group
    host = srv.server.ctx.config.hostname
    with srv.client("none") as c:
        assert c.cmd(f"GROUP {g}")[0] == 211
        for n, (mid, body) in enumerate(zip(mids, bodies, strict=True), 1):
            first = [_block(c, f"{verb} {n}") for verb in ("ARTICLE", "HEAD", "BODY")]
            again = [_block(c, f"{verb} {n}") for verb in ("BODY", "HEAD", "ARTICLE")][::-1]
            assert first == again, BODIES[n - 1][0]
            (s_art, art), (s_head, head), (s_body, wire_body) = first
            assert s_art == f"220 {n} {mid}".encode()
            assert s_head == f"221 {n} {mid}".encode()
            assert s_body == f"222 {n} {mid}".encode()
            assert wire_body == _stuffed(body), BODIES[n - 1][0]
            xref = f"Xref: {host} {g}:{n}\r\n".encode()
            assert head.endswith(xref + b".\r\n") and b"\r\n\r\n" not in head
            # ARTICLE is HEAD, the empty line, then BODY (each already stuffed).
            assert art == head[:-3] + b"\r\n" + wire_body
            assert c.cmd(f"STAT {n}") == (223, f"{n} {mid}")


def test_crosspost_xref_names_both_groups_every_time(srv: Harness) -> None:
    a, b = srv.add_group(unique("test.xa")), srv.add_group(unique("test.xb"))
    srv.post_direct(article(a, 1, body=b"only in a\r\n"))
    done = srv.post_direct(article(f"{a},{b}", 2, body=b".both\r\n"))
    where = dict(done.locations)
    host = srv.server.ctx.config.hostname
    with srv.client("none") as c:
        c.cmd(f"GROUP {a}")
        for _ in range(2):
            status, art = _block(c, f"ARTICLE {where[a]}")
            assert status.startswith(b"220 ")
            assert f"Xref: {host} {a}:{where[a]} {b}:{where[b]}\r\n".encode() in art
            assert art.endswith(b"\r\n\r\n..both\r\n.\r\n")
        c.cmd(f"GROUP {b}")
        status, head = _block(c, f"HEAD {where[b]}")
        assert status.startswith(b"221 ")
        assert f"Xref: {host} {a}:{where[a]} {b}:{where[b]}\r\n".encode() in head


def test_cancelled_after_reading_is_gone(srv: Harness) -> None:
    g = srv.add_group()
    posted = srv.post_direct(article(g, 1, body=b"soon gone\r\n"))
    n = posted.locations[0][1]
    with srv.client("none") as c:
        c.cmd(f"GROUP {g}")
        assert _block(c, f"ARTICLE {n}")[0].startswith(b"220 ")
        srv.call(srv.news.cancel(posted.message_id, by="poster@client.test"))
        assert c.cmd(f"ARTICLE {n}")[0] == 423
        assert c.cmd(f"BODY {n}")[0] == 423


def test_command_lines_pipelined_split_and_overlong(srv: Harness, group: tuple[str, list[str], list[bytes]]) -> None:
    g, mids, _bodies = group
    with srv.client("none") as c:
        c.cmd(f"GROUP {g}")
        # Three commands in one packet: three answers, in order.
        c.send(b"STAT 1\r\nSTAT 2\r\nSTAT 3\r\n")
        assert [c.readline() for _ in range(3)] == [f"223 {n} {mids[n - 1]}".encode() for n in (1, 2, 3)]
        # One command in pieces (the first chunk is not a whole line).
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (b"ST", b"AT", b" 2", b"\r", b"\n"):
            c.send(piece)
            time.sleep(0.02)
        assert c.readline() == f"223 2 {mids[1]}".encode()
        # A line over the limit in one chunk, then a good one: 500, and the session is in sync.
        c.send(b"STAT " + b"1" * MAX_SASL_LINE + b"\r\nSTAT 4\r\n")
        assert c.readline().startswith(b"500 ")
        assert c.readline() == f"223 4 {mids[3]}".encode()
