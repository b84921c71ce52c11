"""POST (RFC 3977 §6.3.1) over STARTTLS and NNTPS: what is accepted, what is refused with
which code, and that a refused article leaves nothing behind and the session in sync."""

from __future__ import annotations

from nntp_harness import Harness, article, unique

NNTP_SETTINGS = 'max_article_size = "64K"\nmax_crosspost = 3'


def _numbers(srv: Harness, group: str) -> list[int]:
    return srv.call(srv.news.numbers(group, 1, 10**9))


def test_post_over_starttls_and_read_back(srv: Harness) -> None:
    g = srv.add_group()
    acc = srv.new_user()
    with srv.login(acc, tls="starttls") as c:
        raw = article(g, 1, body=b".starts with a dot\r\nnormal\r\n.\r\n..\r\n")
        code, text = c.post(raw)
        assert code == 240, text
        mid = text.split()[-1]
        assert c.cmd(f"GROUP {g}")[0] == 211
        code, _, body = c.article("1", "BODY")
        assert code == 222 and body == b".starts with a dot\r\nnormal\r\n.\r\n..\r\n"
        assert c.cmd(f"STAT {mid}") == (223, f"0 {mid}")


def test_post_over_nntps_adds_missing_headers(srv: Harness) -> None:
    """A local POST may leave Message-ID, Date and Path out (RFC 5537 §3.5): they are added."""
    g = srv.add_group()
    with srv.client("implicit") as c:
        raw = f"From: a@client.test\r\nNewsgroups: {g}\r\nSubject: minimal\r\n\r\nhello\r\n".encode()
        code, text = c.post(raw)
        assert code == 240, text
        mid = text.split()[-1]
        assert mid.startswith("<") and mid.endswith(">")
        code, _, head = c.article(mid, "HEAD")
        assert code == 221
        assert b"\r\nDate: " in head and b"\r\nPath: " in head and f"Message-ID: {mid}".encode() in head


def test_missing_required_headers(srv: Harness) -> None:
    g = srv.add_group()
    with srv.client("implicit") as c:
        for drop in ("From", "Subject", "Newsgroups"):
            lines = ["From: a@client.test", "Subject: s", f"Newsgroups: {g}"]
            raw = ("\r\n".join(line for line in lines if not line.startswith(drop)) + "\r\n\r\nbody\r\n").encode()
            code, text = c.post(raw)
            assert code == 441, (drop, text)
        assert c.post(b"no header at all\r\n")[0] == 441
        assert c.post(b"")[0] == 441
        assert c.cmd("DATE")[0] == 111  # in sync
    assert _numbers(srv, g) == []


def test_post_to_missing_or_read_only_group(srv: Harness) -> None:
    ro = srv.add_group(posting="n")
    with srv.client("implicit") as c:
        code, text = c.post(article("no.such.group", 1))
        assert code == 441 and "no.such.group" in text
        assert c.post(article(ro, 1))[0] == 441
    assert _numbers(srv, ro) == []


def test_crosspost(srv: Harness) -> None:
    groups = [srv.add_group() for _ in range(4)]
    with srv.client("implicit") as c:
        code, text = c.post(article(",".join(groups[:3]), 1))
        assert code == 240, text
        mid = text.split()[-1]
        for g in groups[:3]:
            c.cmd(f"GROUP {g}")
            code, _, head = c.article("1", "HEAD")
            assert code == 221 and f"Message-ID: {mid}".encode() in head
            xref = next(line for line in head.split(b"\r\n") if line.startswith(b"Xref: "))
            assert all(f"{x}:1".encode() in xref for x in groups[:3])
        # over max_crosspost = 3: refused, stored nowhere
        code, text = c.post(article(",".join(groups), 2))
        assert code == 441
        many = ",".join(f"alt.g{i}" for i in range(500))
        assert c.post(article(many, 3))[0] == 441
    assert _numbers(srv, groups[3]) == []
    assert all(_numbers(srv, g) == [1] for g in groups[:3])


def test_duplicate_message_id(srv: Harness) -> None:
    g = srv.add_group()
    mid = f"<{unique('dup')}@client.test>"
    with srv.client("implicit") as c:
        assert c.post(article(g, 1, mid=mid))[0] == 240
        assert c.post(article(g, 2, mid=mid))[0] == 441
    assert _numbers(srv, g) == [1]


def test_oversized_article_is_refused_in_sync(srv: Harness) -> None:
    g = srv.add_group()
    with srv.client("implicit") as c:
        big = article(g, 1, body=b"x" * 1000 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 100)
        code, text = c.post(big)
        assert code == 441 and "large" in text
        assert c.cmd("DATE")[0] == 111  # the whole article was read: the session is in sync
        assert c.post(article(g, 2))[0] == 240
    assert _numbers(srv, g) == [1]


def test_posting_permissions(srv: Harness) -> None:
    """Anonymous may not post to an accounts-only group (480); a logged-in account may."""
    g = srv.add_group(read="anyone", post="accounts")
    only = srv.add_group(read="anyone", post="owner@example.test")
    acc = srv.new_user()
    with srv.client("implicit") as c:
        assert c.post(article(g, 1))[0] == 441  # POST itself is allowed: other groups are open
        assert c.authinfo(acc.address, "secret")[0] == 281
        assert c.post(article(g, 2))[0] == 240
        assert c.post(article(only, 3))[0] == 441
    assert _numbers(srv, g) == [1]


def test_pipelined_post_and_commands(srv: Harness) -> None:
    """Commands sent right after the article's terminator are read as commands (RFC 3977 §3.5)."""
    g = srv.add_group()
    with srv.client("implicit") as c:
        assert c.cmd("POST")[0] == 340
        c.send(c.stuff(article(g, 1)) + f"GROUP {g}\r\nSTAT 1\r\nDATE\r\n".encode())
        assert c.status()[0] == 240
        assert c.status()[0] == 211
        assert c.status()[0] == 223
        assert c.status()[0] == 111
