"""News.overview_lines (OVER's lines built straight from the stored rows) and the header
lookups of News.article, over every store backend (store_factory, as test_service.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from postroom.news.reading import _plain_field, overview_line
from tests.news.test_service import ANN, HOST, art, news_on, peer_art


def _expected(ov: list[Any]) -> bytes:
    """The lines the record path makes (the careful formatter, field by field)."""
    return "".join(overview_line(o) + "\r\n" for o in ov).encode()


def test_overview_lines_match_the_records(store_factory: Any) -> None:
    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.a")
            await news.add_group("local.b")
            await news.post(art("local.a", subject="first", extra="References: <r0@x> <r1@x>\r\n"), user=ANN)
            await news.post(art("local.a", subject="café ünïcode", body="a\r\nb\r\n"), user=ANN)
            await news.post(peer_art("<x1@example.org>", "local.a,local.b"), user=None, peer="peer.example")
            block = await news.overview_lines("local.a", 1, 10)
            assert block == _expected(await news.overview("local.a", 1, 10))
            lines = block.split(b"\r\n")
            assert len(lines) == 4 and lines[-1] == b""
            assert lines[0].split(b"\t")[0] == b"1" and lines[0].count(b"\t") == 8
            assert lines[2].endswith(f"\tXref: {HOST} local.a:3 local.b:1".encode())
            assert "café ünïcode".encode() in lines[1]
            # A sub-range, a range past the end, an unknown group: nothing for the empty ones.
            assert await news.overview_lines("local.a", 2, 2) == _expected(await news.overview("local.a", 2, 2))
            assert await news.overview_lines("local.a", 4, 100) == b""
            assert await news.overview_lines("local.a", 3, 2) == b""
            assert await news.overview_lines("no.such", 1, 10) == b""

    asyncio.run(t())


def test_overview_lines_careful_path(store_factory: Any) -> None:
    """A stored field holding a TAB (RFC 3977 §8.3.2: it becomes a space), and rows missing
    (made from the bytes): both go through the record path and give the same lines."""

    async def t() -> None:
        async with news_on(store_factory) as news:
            g = await news.add_group("local.a")
            for i in range(3):
                await news.post(art("local.a", subject=f"s{i}"), user=ANN)
            await news.state.execute([("UPDATE overview SET subject = ? WHERE mailbox_id = ? AND number = 2",
                                       ("tab\there", g.mailbox_id))])
            block = await news.overview_lines("local.a", 1, 3)
            assert block.split(b"\r\n")[1].split(b"\t")[1] == b"tab here"
            assert block.count(b"\t") == 3 * 8
            await news.state.execute([("DELETE FROM overview WHERE number = 3", ())])
            again = await news.overview_lines("local.a", 1, 3)
            assert again.split(b"\r\n")[2].split(b"\t")[:2] == [b"3", b"s2"]
            assert again == _expected(await news.overview("local.a", 1, 3))

    asyncio.run(t())


def test_plain_field() -> None:
    head = b"Path: x\r\nMessage-ID:  <a@b> \r\nNewsgroups: a.b,\r\n c.d\r\nSubject: s\r\n"
    lower = head.lower()
    assert _plain_field(head, lower, b"message-id:") == b"<a@b>"
    assert _plain_field(head, lower, b"newsgroups:") is None  # folded: the caller parses it all
    assert _plain_field(head, lower, b"subject:") == b"s"
    assert _plain_field(head, lower, b"path:") == b"x"  # the first line
    assert _plain_field(head, lower, b"date:") is None
    first = b"message-id: <1@x>\r\nMESSAGE-ID: <2@x>\r\n"
    assert _plain_field(first, first.lower(), b"message-id:") == b"<1@x>"


def test_article_message_id_and_xref(store_factory: Any) -> None:
    """News.article finds the Message-ID and Newsgroups without a full parse, and falls back
    to it for a folded Newsgroups (a crosspost's Xref) or an odd Message-ID line."""

    async def t() -> None:
        async with news_on(store_factory) as news:
            await news.add_group("local.a")
            await news.add_group("local.b")
            await news.post(art("local.a", mid="<m1@example.org>"), user=ANN)
            await news.post(peer_art("<m2@example.org>", "local.a,\r\n local.b"), user=None, peer="peer.example")
            one = await news.article("local.a", 1)
            assert one is not None and one.message_id == "<m1@example.org>"
            assert f"\r\nXref: {HOST} local.a:1\r\n\r\n".encode() in one.raw
            two = await news.article("local.a", 2)
            assert two is not None and two.message_id == "<m2@example.org>"
            assert f"\r\nXref: {HOST} local.a:2 local.b:1\r\n\r\n".encode() in two.raw

    asyncio.run(t())
