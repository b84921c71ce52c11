"""RFC 3977 reader commands against a real server: every command and its error codes.

Each test makes its own group(s) through the server's News service and reads them over
NNTPS or STARTTLS with the suite's client.
"""

from __future__ import annotations

import time

import pytest
from nntp_harness import Harness, article, unique

from postroom.storage.models import FlagOp


@pytest.fixture(scope="module")
def filled(srv: Harness) -> tuple[str, list[str]]:
    """A group with five articles (numbers 1-5); the third has a body line starting with a dot."""
    g = srv.add_group(description="A group\tfor tests")
    mids = []
    for n in range(1, 6):
        body = b".dot line\r\n..two dots\r\nplain\r\n" if n == 3 else b""
        raw = article(g, n, body=body, extra=f"References: <ref{n}@client.test>\r\n" if n > 1 else "")
        mids.append(srv.post_direct(raw).message_id)
    return g, mids


def test_greeting_capabilities_and_mode_reader(srv: Harness) -> None:
    srv.add_group()  # someone may post: 200
    with srv.client("none") as c:
        assert c.greeting[0] == 200
        code, _, caps = c.cmd_multi("CAPABILITIES")
        assert code == 101
        assert caps[0] == b"VERSION 2"
        for cap in (b"READER", b"POST", b"NEWNEWS", b"OVER MSGID", b"HDR", b"STARTTLS", b"AUTHINFO"):
            assert cap in caps
        assert b"LIST ACTIVE ACTIVE.TIMES NEWSGROUPS OVERVIEW.FMT HEADERS DISTRIB.PATS" in caps
        assert not any(cap.startswith(b"SASL") for cap in caps)  # no mechanisms before TLS
        assert c.cmd("CAPABILITIES AUTHINFO")[0] == 101  # an argument is allowed
        assert c.cmd("MODE READER")[0] == 200
        assert c.cmd("MODE BOGUS")[0] == 501
        assert c.cmd("MODE")[0] == 501
    with srv.client("implicit") as c:
        caps = c.cmd_multi("CAPABILITIES")[2]
        assert b"STARTTLS" not in caps
        assert b"AUTHINFO USER SASL" in caps
        assert b"SASL PLAIN LOGIN" in caps


def test_date_help_quit(srv: Harness) -> None:
    with srv.client("implicit") as c:
        code, text = c.cmd("DATE")
        assert code == 111 and len(text) == 14 and text.isdigit()
        assert abs(time.mktime(time.strptime(text, "%Y%m%d%H%M%S")) - time.mktime(time.gmtime())) < 120
        code, _, lines = c.cmd_multi("HELP")
        assert code == 100
        assert any(line.startswith(b"OVER") for line in lines)
        assert c.cmd("QUIT")[0] == 205
        assert c.closed()


def test_group_and_listgroup(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, _ = filled
    with srv.client("implicit") as c:
        assert c.cmd("GROUP no.such.group")[0] == 411
        assert c.cmd("LISTGROUP")[0] == 412
        assert c.cmd(f"GROUP {g}") == (211, f"5 1 5 {g}")
        code, text, nums = c.cmd_multi("LISTGROUP")
        assert code == 211 and text.startswith(f"5 1 5 {g}")
        assert nums == [b"1", b"2", b"3", b"4", b"5"]
        assert c.cmd_multi(f"LISTGROUP {g} 2-3")[2] == [b"2", b"3"]
        assert c.cmd_multi(f"LISTGROUP {g} 4-")[2] == [b"4", b"5"]
        assert c.cmd_multi(f"LISTGROUP {g} 4")[2] == [b"4"]
        assert c.cmd_multi(f"LISTGROUP {g} 5-2")[2] == []  # an inverted range is empty
        assert c.cmd(f"LISTGROUP {g} x-y")[0] == 501
        assert c.cmd("LISTGROUP no.such.group")[0] == 411
        assert c.cmd("GROUP")[0] == 501
        assert c.cmd("GROUP a b")[0] == 501
    empty = srv.add_group()
    with srv.client("implicit") as c:
        code, text = c.cmd(f"GROUP {empty}")
        count, low, high, name = text.split()
        assert code == 211 and count == "0" and int(high) == int(low) - 1 and name == empty
        assert c.cmd("NEXT")[0] == 420  # no current article in an empty group
        assert c.cmd("STAT")[0] == 420


def test_article_head_body_stat_by_number(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    with srv.client("implicit") as c:
        assert c.cmd("ARTICLE 1")[0] == 412  # no group selected
        assert c.cmd("ARTICLE")[0] == 412
        c.cmd(f"GROUP {g}")
        code, text, raw = c.article("3")
        assert code == 220 and text == f"3 {mids[2]}"
        # the dot-stuffed body comes back as it was posted
        assert raw.endswith(b"\r\n\r\n.dot line\r\n..two dots\r\nplain\r\n")
        assert f"Xref: {srv.server.ctx.config.hostname} {g}:3".encode() in raw
        code, text, head = c.article("3", "HEAD")
        assert code == 221 and text == f"3 {mids[2]}"
        assert b"\r\n\r\n" not in head and head.startswith(b"From: ")
        code, text, body = c.article("3", "BODY")
        assert code == 222 and body == b".dot line\r\n..two dots\r\nplain\r\n"
        assert c.cmd("STAT 4") == (223, f"4 {mids[3]}")
        # the current article is now 4: no argument means it
        assert c.cmd("STAT") == (223, f"4 {mids[3]}")
        assert c.article("", "HEAD")[1] == f"4 {mids[3]}"
        assert c.cmd("ARTICLE 99")[0] == 423
        assert c.cmd("HEAD 99")[0] == 423
        assert c.cmd("BODY 99")[0] == 423
        assert c.cmd("STAT 99")[0] == 423
        assert c.cmd("ARTICLE abc")[0] == 501
        assert c.cmd("ARTICLE 1 2")[0] == 501
        assert c.cmd("STAT")[1].startswith("4 ")  # failures do not move the current article


def test_article_by_message_id(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    with srv.client("implicit") as c:
        # no group needed; n is 0 (RFC 3977 §6.2.1.2)
        code, text, raw = c.article(mids[1])
        assert code == 220 and text == f"0 {mids[1]}"
        assert f"Message-ID: {mids[1]}".encode() in raw
        assert c.cmd(f"HEAD {mids[1]}")[0] == 221
        assert c.cmd(f"BODY {mids[1]}")[0] == 222
        assert c.cmd(f"STAT {mids[1]}") == (223, f"0 {mids[1]}")
        assert c.cmd("ARTICLE <nothing@here.test>")[0] == 430
        assert c.cmd("STAT <nothing@here.test>")[0] == 430
        assert c.cmd("ARTICLE <bad id>")[0] == 501  # two arguments
        assert c.cmd("ARTICLE <unterminated")[0] == 501
        c.cmd(f"GROUP {g}")
        c.cmd("STAT 2")
        c.cmd(f"STAT {mids[4]}")
        assert c.cmd("STAT")[1].startswith("2 ")  # by message-id: current article unchanged


def test_last_and_next(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    with srv.client("implicit") as c:
        assert c.cmd("NEXT")[0] == 412
        assert c.cmd("LAST")[0] == 412
        c.cmd(f"GROUP {g}")
        assert c.cmd("LAST")[0] == 422  # at the first article
        assert c.cmd("NEXT") == (223, f"2 {mids[1]}")
        assert c.cmd("NEXT") == (223, f"3 {mids[2]}")
        assert c.cmd("LAST") == (223, f"2 {mids[1]}")
        c.cmd("STAT 5")
        assert c.cmd("NEXT")[0] == 421
        assert c.cmd("NEXT x")[0] == 501


def test_next_skips_gaps(srv: Harness) -> None:
    """Numbers are never reused: cancelled or expired articles leave gaps NEXT/LAST step over."""
    g = srv.add_group()
    mids = [srv.post_direct(article(g, n)).message_id for n in range(1, 4)]
    box = srv.call(srv.news.get_group(g)).mailbox_id
    srv.call(srv.store.store_flags(box, [2], FlagOp.ADD, frozenset({"\\Deleted"})))
    srv.call(srv.store.expunge(box, [2]))
    with srv.client("implicit") as c:
        assert c.cmd(f"GROUP {g}")[1].startswith("2 1 3")
        assert c.cmd("NEXT") == (223, f"3 {mids[2]}")
        assert c.cmd("LAST") == (223, f"1 {mids[0]}")
        assert c.cmd("ARTICLE 2")[0] == 423
        assert c.cmd_multi("LISTGROUP")[2] == [b"1", b"3"]


def test_over_and_xover(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    host = srv.server.ctx.config.hostname
    with srv.client("implicit") as c:
        assert c.cmd("OVER 1-")[0] == 412
        assert c.cmd("OVER")[0] == 412
        code, _, fmt = c.cmd_multi("LIST OVERVIEW.FMT")
        assert code == 215
        assert fmt == [b"Subject:", b"From:", b"Date:", b"Message-ID:", b"References:", b":bytes", b":lines",
                       b"Xref:full"]
        c.cmd(f"GROUP {g}")
        code, _, lines = c.cmd_multi("OVER 1-5")
        assert code == 224 and len(lines) == 5
        f = lines[1].split(b"\t")
        assert f[0] == b"2" and f[1] == b"article 2" and f[2] == b"Poster <poster@client.test>"
        assert f[4] == mids[1].encode() and f[5] == b"<ref2@client.test>"
        assert int(f[6]) > 100 and f[7] == b"1"
        assert f[8] == f"Xref: {host} {g}:2".encode()
        assert c.cmd_multi("XOVER 2-3")[2] == lines[1:3]
        assert c.cmd_multi("OVER 4-")[2] == lines[3:]
        # no argument: the current article (the first after GROUP)
        assert c.cmd_multi("OVER")[2] == lines[:1]
        assert c.cmd("OVER 50-60")[0] == 423
        assert c.cmd("OVER 5-1")[0] == 423
        assert c.cmd("OVER a-b")[0] == 501
        # by message-id: number 0 (OVER MSGID)
        code, _, one = c.cmd_multi(f"OVER {mids[1]}")
        assert code == 224 and one[0].split(b"\t")[1:6] == f[1:6] and one[0].startswith(b"0\t")
        assert c.cmd("OVER <none@where.test>")[0] == 430


def test_hdr_and_xhdr(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    with srv.client("implicit") as c:
        code, _, fields = c.cmd_multi("LIST HEADERS")
        assert code == 215 and b":" in fields
        assert c.cmd("LIST HEADERS MSGID")[0] == 215
        assert c.cmd("LIST HEADERS BOGUS")[0] == 501
        assert c.cmd("HDR Subject 1-")[0] == 412
        c.cmd(f"GROUP {g}")
        code, _, lines = c.cmd_multi("HDR Subject 1-3")
        assert code == 225 and lines == [b"1 article 1", b"2 article 2", b"3 article 3"]
        code, _, lines = c.cmd_multi("XHDR subject 2-3")
        assert code == 221 and lines == [b"2 article 2", b"3 article 3"]
        assert c.cmd_multi("HDR Message-ID 5")[2] == [f"5 {mids[4]}".encode()]
        assert c.cmd_multi("HDR References 1-2")[2] == [b"1 ", b"2 <ref2@client.test>"]  # absent: empty
        assert c.cmd_multi("HDR X-Not-There 1")[2] == [b"1 "]
        assert c.cmd_multi("HDR :lines 3")[2] == [b"3 3"]
        assert int(c.cmd_multi("HDR :bytes 3")[2][0].split()[1]) > 100
        assert c.cmd_multi("HDR Subject")[2] == [b"1 article 1"]  # current article
        assert c.cmd_multi(f"HDR Subject {mids[3]}")[2] == [b"0 article 4"]
        assert c.cmd_multi(f"HDR :lines {mids[2]}")[2] == [b"0 3"]
        assert c.cmd("HDR Subject <none@where.test>")[0] == 430
        assert c.cmd("HDR Subject 90-99")[0] == 423
        assert c.cmd("HDR :nonsense 1")[0] == 501
        assert c.cmd("HDR")[0] == 501


def test_list_variants(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, _ = filled
    other = srv.add_group(unique("other.group"), posting="n")
    with srv.client("implicit") as c:
        code, _, active = c.cmd_multi("LIST")
        assert code == 215 and f"{g} 5 1 y".encode() in active and f"{other} 0 1 n".encode() in active
        assert c.cmd_multi("LIST ACTIVE")[2] == active
        assert c.cmd_multi(f"LIST ACTIVE {g}")[2] == [f"{g} 5 1 y".encode()]
        assert c.cmd_multi("LIST ACTIVE other.*")[2] == [f"{other} 0 1 n".encode()]
        assert c.cmd_multi("LIST ACTIVE *,!other.*,!test.*")[2] == []
        assert c.cmd("LIST ACTIVE [bad]")[0] == 501
        code, _, times = c.cmd_multi(f"LIST ACTIVE.TIMES {g}")
        name, created, creator = times[0].split()
        assert name == g.encode() and abs(int(created) - time.time()) < 600 and b"@" in creator
        code, _, desc = c.cmd_multi(f"LIST NEWSGROUPS {g}")
        assert desc == [f"{g}\tA group for tests".encode()]  # the tab became a space
        assert c.cmd_multi("LIST DISTRIB.PATS")[::2] == (215, [])  # we keep no distributions
        assert c.cmd("LIST OVERVIEW.FMT x")[0] == 501
        assert c.cmd("LIST SUBSCRIPTIONS")[0] == 501
        assert c.cmd("LIST ACTIVE a b c")[0] == 501


def test_newgroups_and_newnews(srv: Harness, filled: tuple[str, list[str]]) -> None:
    g, mids = filled
    before = time.gmtime(time.time() - 3600)
    stamp = time.strftime("%Y%m%d %H%M%S", before)
    short = time.strftime("%y%m%d %H%M%S", before)
    with srv.client("implicit") as c:
        code, _, groups = c.cmd_multi(f"NEWGROUPS {stamp} GMT")
        assert code == 231 and any(line.startswith(g.encode() + b" ") for line in groups)
        assert c.cmd_multi(f"NEWGROUPS {short} GMT")[2] == groups  # two-digit year
        assert c.cmd_multi("NEWGROUPS 20990101 000000 GMT")[2] == []
        assert c.cmd("NEWGROUPS 2026 000000")[0] == 501
        assert c.cmd("NEWGROUPS 20261399 000000")[0] == 501
        assert c.cmd("NEWGROUPS 20260101 000000 UTC")[0] == 501
        code, _, ids = c.cmd_multi(f"NEWNEWS {g} {stamp} GMT")
        assert code == 230 and [i.decode() for i in ids] == mids
        assert c.cmd_multi(f"NEWNEWS nothing.* {stamp} GMT")[2] == []
        assert c.cmd_multi("NEWNEWS * 20990101 000000 GMT")[2] == []
        assert c.cmd(f"NEWNEWS [x] {stamp} GMT")[0] == 501
        assert c.cmd("NEWNEWS *")[0] == 501


def test_unreadable_group_asks_for_login(srv: Harness) -> None:
    """A group only accounts may read: anonymous GROUP gets 480, after AUTHINFO 211."""
    g = srv.add_group(read="accounts", post="accounts")
    srv.post_direct(article(g, 1), user="someone@example.test")
    acc = srv.new_user()
    with srv.client("starttls") as c:
        assert c.greeting[0] in (200, 201)
        assert c.cmd(f"GROUP {g}")[0] == 480
        assert c.cmd(f"LISTGROUP {g}")[0] == 480
        assert g.encode() not in b"".join(c.cmd_multi("LIST")[2])
        assert c.authinfo(acc.address, "secret")[0] == 281
        assert c.cmd(f"GROUP {g}")[0] == 211
        assert g.encode() in b"".join(c.cmd_multi("LIST")[2])
