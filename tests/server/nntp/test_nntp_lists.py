"""Mailing lists as groups (postroom.news.lists): a group bound to a list address, both ways.

Mail to the list (over SMTP, and from ``postroom sendmail``) appears as an article of the group while
the members still get their copies; a post to the group (over NNTP) reaches the members' INBOXes by
mail; the list's copy of a post does not come back as a second article, however it returns.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from typing import Any

import pytest
from nntp_harness import DOMAIN, Harness, article, unique

from postroom.news.lists import article_from_mail, envelope_sender, mail_from_article


# -- the conversions, no server -------------------------------------------------------
def test_article_from_mail_sets_newsgroups_and_path_and_keeps_the_rest() -> None:
    mail = (b"From: Ann <ann@outside.test>\r\nTo: list@example.test\r\nSubject: hello\r\n"
            b"Message-ID: <m1@outside.test>\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
            b"Newsgroups: other.group\r\nPath: elsewhere!not-for-mail\r\nXref: x other.group:5\r\n"
            b"Followup-To: other.group\r\nX-Mailer: test\r\n\r\nbody line\r\n")
    art = article_from_mail(mail, ["a.list", "b.list"], sender="ann@outside.test", hostname="h.test", queue_id="Q1")
    head, _, body = art.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert b"Newsgroups: a.list,b.list" in lines and b"Path: mail!not-for-mail" in lines
    assert not any(ln.startswith((b"Xref:", b"Followup-To:", b"Path: elsewhere", b"Newsgroups: other")) for ln in lines)
    for kept in (b"Message-ID: <m1@outside.test>", b"Subject: hello", b"X-Mailer: test", b"To: list@example.test"):
        assert kept in lines
    assert body == b"body line\r\n"


def test_article_from_mail_fills_what_rfc5536_requires() -> None:
    art = article_from_mail(b"X-Only: header\r\n\r\nbody\r\n", ["g.x"], sender="s@outside.test",
                            hostname="h.test", queue_id="Q2")
    head = art.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert any(ln.startswith(b"Message-ID: <Q2.") and ln.endswith(b"@h.test>") for ln in head)
    assert any(ln.startswith(b"Date: ") for ln in head)
    assert b"Subject: (no subject)" in head and b"From: <s@outside.test>" in head
    # A body that starts with an empty line keeps it; a message that is all header gets its empty line.
    art = article_from_mail(b"Subject: x\r\n\r\n\r\nafter a blank line\r\n", ["g.x"], sender="", hostname="h",
                            queue_id="Q")
    assert art.endswith(b"Subject: x\r\n\r\n\r\nafter a blank line\r\n")
    assert mail_from_article(b"Subject: x\r\n\r\n\r\nb\r\n", "l@x.test").endswith(b"\r\n\r\n\r\nb\r\n")
    assert article_from_mail(b"Subject: x\r\n", ["g.x"], sender="", hostname="h", queue_id="Q").endswith(b"\r\n\r\n")


def test_mail_from_article_drops_news_fields_and_names_the_list() -> None:
    art = (b"Path: here!not-for-mail\r\nFrom: p@client.test\r\nNewsgroups: g.x\r\nSubject: s\r\n"
           b"Xref: here g.x:3\r\n\r\nbody\r\n")
    mail = mail_from_article(art, "list@example.test")
    assert mail.startswith(b"From: p@client.test\r\nNewsgroups: g.x\r\nSubject: s\r\nTo: <list@example.test>\r\n\r\n")
    assert mail.endswith(b"\r\n\r\nbody\r\n")
    assert b"To: other@x.test" in mail_from_article(b"To: other@x.test\r\n\r\nb\r\n", "list@example.test")
    assert b"To: <" not in mail_from_article(b"To: other@x.test\r\n\r\nb\r\n", "list@example.test")


@pytest.mark.parametrize("raw,user,want", [
    (b"From: Ann <ann@outside.test>\r\n\r\n", None, "ann@outside.test"),
    (b"From: Ann <ann@outside.test>\r\n\r\n", "bob@example.test", "bob@example.test"),
    (b"From: not an address\r\n\r\n", None, ""),
    (b"Subject: no from\r\n\r\n", None, ""),
])
def test_envelope_sender(raw: bytes, user: str | None, want: str) -> None:
    assert envelope_sender(raw, user) == want


# -- against a server -----------------------------------------------------------------
def _list(srv: Harness, members: int = 2, **group: Any) -> tuple[str, str, list[Any]]:
    """A list alias with ``members`` new accounts and a group bound to it: (group, address, members)."""
    accs = [srv.new_user() for _ in range(members)]
    address = f"{unique('list')}@{DOMAIN}"
    srv.call(srv.store.set_alias(address, [a.address for a in accs]))
    g = srv.add_group(unique("lists.test"), list_address=address, **group)
    return g, address, accs


def _inbox(srv: Harness, acc: Any) -> list[bytes]:
    box = srv.call(srv.store.get_mailbox(acc.id, "INBOX"))
    msgs = srv.call(srv.store.list_messages(box.id))
    return [srv.call(srv.store.read_message(m)) for m in msgs]


def _wait_inbox(srv: Harness, acc: Any, n: int, timeout: float = 15) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        got = _inbox(srv, acc)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _smtp(srv: Harness, rcpts: list[str], raw: bytes, sender: str = "ann@outside.test") -> None:
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.sendmail(sender, rcpts, raw)


def _mail(mid: str, subject: str = "to the list") -> bytes:
    return (f"From: Ann <ann@outside.test>\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n\r\nHello list.\r\n").encode()


def _group(srv: Harness, g: str) -> tuple[int, int, int]:
    with srv.client("implicit") as c:
        code, text = c.cmd(f"GROUP {g}")
        assert code == 211, text
        count, low, high = (int(x) for x in text.split()[:3])
        return count, low, high


def test_mail_to_the_list_appears_as_an_article(srv: Harness) -> None:
    g, address, accs = _list(srv)
    mid = f"<{unique('m')}@outside.test>"
    _smtp(srv, [address], _mail(mid))
    for acc in accs:  # the members still get it
        (copy,) = _inbox(srv, acc)
        assert mid.encode() in copy and b"Newsgroups:" not in copy
    assert _group(srv, g)[0] == 1
    with srv.client("implicit") as c:
        assert c.cmd(f"GROUP {g}")[0] == 211
        code, _, raw = c.article(mid)
        assert code == 220
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert f"Newsgroups: {g}".encode() in head
        assert f"Message-ID: {mid}".encode() in head
        path = next(ln for ln in head if ln.startswith(b"Path: "))
        assert path.endswith(b"!mail!not-for-mail") and path.startswith(b"Path: ")
        assert raw.endswith(b"\r\n\r\nHello list.\r\n")
        # The overview shows it like any article.
        code, _, over = c.cmd_multi("OVER 1")
        assert code == 224 and over[0].split(b"\t")[1] == b"to the list"


def test_mail_without_message_id_or_subject_is_filed_with_them(srv: Harness) -> None:
    g, address, _ = _list(srv, members=1)
    _smtp(srv, [address], b"From: ann@outside.test\r\nX-Note: bare\r\n\r\nbare mail\r\n")
    with srv.client("implicit") as c:
        assert c.cmd(f"GROUP {g}")[0] == 211
        code, _, raw = c.article("1")
        assert code == 220
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nSubject: (no subject)\r\n" in b"\r\n" + head + b"\r\n"
        assert b"Message-ID: <" in head and b"Date: " in head and b"X-Note: bare" in head


def test_archive_only_group_still_gets_the_list(srv: Harness) -> None:
    """posting n: readers cannot post, but the list's mail is filed (it comes as a peer article)."""
    g, address, _ = _list(srv, members=1, posting="n")
    _smtp(srv, [address], _mail(f"<{unique('m')}@outside.test>"))
    assert _group(srv, g)[0] == 1
    with srv.client("implicit") as c:
        assert c.post(article(g, 1))[0] == 441


def test_a_retried_or_repeated_mail_is_one_article(srv: Harness) -> None:
    g, address, accs = _list(srv, members=1)
    mid = f"<{unique('m')}@outside.test>"
    _smtp(srv, [address], _mail(mid))
    _smtp(srv, [address], _mail(mid))  # an SMTP client's retry, or the list server sending it back
    assert _group(srv, g)[0] == 1
    assert len(_inbox(srv, accs[0])) == 2  # mail is mail: the member gets what was sent


def test_mail_to_the_members_only_is_not_archived(srv: Harness) -> None:
    g, _, accs = _list(srv, members=1)
    _smtp(srv, [accs[0].address], _mail(f"<{unique('m')}@outside.test>"))
    assert len(_inbox(srv, accs[0])) == 1
    assert _group(srv, g)[0] == 0


def test_a_post_to_the_group_reaches_the_members(srv: Harness) -> None:
    g, address, accs = _list(srv, members=3)
    mid = f"<{unique('p')}@client.test>"
    with srv.client("implicit") as c:
        code, text = c.post(article(g, 1, mid=mid, subject="from the newsreader"))
        assert code == 240, text
    for acc in accs:
        (copy,) = _wait_inbox(srv, acc, 1)
        head = copy.split(b"\r\n\r\n", 1)[0]
        assert f"Message-ID: {mid}".encode() in head
        assert b"From: Poster <poster@client.test>" in head and f"To: <{address}>".encode() in head
        assert b"Return-Path: <poster@client.test>" in head  # from the poster: bounces go to them
        assert b"\r\nPath:" not in head and b"\r\nXref:" not in head
        assert b"Subject: from the newsreader" in head
    # No loop: the list's own copy did not come back as a second article.
    assert _group(srv, g)[0] == 1
    time.sleep(0.3)
    assert _group(srv, g)[0] == 1 and len(_inbox(srv, accs[0])) == 1


def test_a_logged_in_poster_is_the_envelope_sender(srv: Harness) -> None:
    g, _, accs = _list(srv, members=1, post="accounts")
    poster = srv.new_user()
    with srv.login(poster) as c:
        code, text = c.post(article(g, 1))
        assert code == 240, text
    (copy,) = _wait_inbox(srv, accs[0], 1)
    assert f"Return-Path: <{poster.address}>".encode() in copy


def test_a_crosspost_to_two_groups_of_one_list_is_mailed_once(srv: Harness) -> None:
    g1, address, accs = _list(srv, members=1)
    g2 = srv.add_group(unique("lists.test"), list_address=address)
    other, _, others = _list(srv, members=1)
    with srv.client("implicit") as c:
        code, text = c.post(article(f"{g1},{g2},{other}", 1))
        assert code == 240, text
    assert len(_wait_inbox(srv, accs[0], 1)) == 1
    assert len(_wait_inbox(srv, others[0], 1)) == 1
    time.sleep(0.3)
    assert len(_inbox(srv, accs[0])) == 1
    assert [_group(srv, g)[0] for g in (g1, g2, other)] == [1, 1, 1]


def test_the_lists_copy_sent_back_by_a_remote_list_server_is_not_posted_again(srv: Harness) -> None:
    """A list run elsewhere mails every post back to its subscribers, the gateway among them."""
    g, address, accs = _list(srv, members=1)
    mid = f"<{unique('p')}@client.test>"
    with srv.client("implicit") as c:
        assert c.post(article(g, 1, mid=mid))[0] == 240
    (copy,) = _wait_inbox(srv, accs[0], 1)
    _smtp(srv, [address], copy.split(b"\r\n", 1)[1])  # the copy comes back (without our Return-Path)
    assert _group(srv, g)[0] == 1


@pytest.mark.sqlite_only("the sendmail subprocess stores on SQLite")
def test_mail_to_the_list_from_postroom_sendmail(srv: Harness) -> None:
    g, address, accs = _list(srv, members=1)
    mid = f"<{unique('s')}@example.test>"
    p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(srv.cfg_path), "sendmail", address],
                       input=_mail(mid).replace(b"\r\n", b"\n"), capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert len(_inbox(srv, accs[0])) == 1
    deadline = time.monotonic() + 10  # the server's group cache sees the new article at once; be patient anyway
    while _group(srv, g)[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(srv, g)[0] == 1
