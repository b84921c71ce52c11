"""ARTICLE/HEAD/BODY by number answered in the step that read the line (``handlers.article_now``,
docs/nntp.md "ARTICLE answered where it is read") against the general path (the gate and
``handlers.article``): the same bytes and the same session state, for random groups, articles
and command lines, on the running server's own News and store; and over the wire, the lean
path's answer (``ARTICLE n``) against the general path's (``article n``: another spelling,
dispatched as usual).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nntp_harness import Harness, article, unique

from postroom.nntp import commands, handlers
from postroom.nntp.server import settings_for
from postroom.nntp.session import Session

# Body lines: plain, starting with a dot, a lone dot, empty; the last may lack its CRLF.
_LINE = st.sampled_from([b"plain text", b".dot first", b".", b"..two", b"", b"x.y", b" .space"])


@st.composite
def _article(draw: st.DrawFn) -> dict[str, Any]:
    lines = draw(st.lists(_LINE, min_size=0, max_size=5))
    body = b"\r\n".join(lines) + (b"\r\n" if lines and draw(st.booleans()) else b"")
    return {
        "body": body or b"x\r\n",
        "crosspost": draw(st.booleans()),
        "folded_mid": draw(st.booleans()),  # a folded Message-ID: the full header parse
        "dot_header": draw(st.booleans()),  # a header field whose continuation line starts with "."
    }


POSTER = "poster@client.test"  # nntp_harness.article's From: its poster may cancel it

_VERBS = ["ARTICLE", "HEAD", "BODY", "STAT", "article", "Head", "ARTICLE "]


@st.composite
def _command(draw: st.DrawFn) -> bytes:
    verb = draw(st.sampled_from(_VERBS))
    form = draw(st.sampled_from(["number", "number", "number", "none", "zeros", "junk", "big", "lf"]))
    n = draw(st.integers(min_value=0, max_value=9))
    if form == "none":
        return verb.rstrip().encode() + b"\r\n"
    if form == "zeros":
        return f"{verb} 000{n}\r\n".encode()
    if form == "junk":
        return f"{verb} {n}x\r\n".encode()
    if form == "big":
        return f"{verb} {'9' * draw(st.integers(min_value=16, max_value=20))}\r\n".encode()
    if form == "lf":
        return f"{verb} {n}\n".encode()
    return f"{verb} {n}\r\n".encode()


def _session(srv: Harness, news: Any) -> Session:
    ctx = srv.server.ctx
    return Session(ctx, settings_for(ctx), news, "127.0.0.1")


def _exchange(c: Any, line: str) -> bytes:
    """Send ``line``; the status line and the block after it, exactly as sent."""
    c.send_line(line)
    status = c.readline()
    out = bytearray(status + b"\r\n")
    if status[:3] in (b"220", b"221", b"222"):
        while True:
            x = c.readline()
            out += x + b"\r\n"
            if x == b".":
                break
    return bytes(out)


def _post_all(srv: Harness, group: str, other: str, arts: list[dict[str, Any]]) -> list[str]:
    mids = []
    for i, a in enumerate(arts, 1):
        mid = f"<{unique('hand')}.{i}@client.test>"
        extra = "X-Note: first\r\n" + (".continued\r\n" if a["dot_header"] else "")
        raw = article(f"{group},{other}" if a["crosspost"] else group, i, body=a["body"], mid=mid, extra=extra)
        if a["folded_mid"]:
            raw = raw.replace(f"Message-ID: {mid}".encode(), f"Message-ID:\r\n {mid}".encode())
        srv.post_direct(raw)
        mids.append(mid)
    return mids


@pytest.mark.sqlite_only("the lean path reads through SqliteStore.read_message_now; on PostgreSQL it declines")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arts=st.lists(_article(), min_size=1, max_size=6),
       script=st.lists(st.one_of(_command(), st.sampled_from(["cancel", "group"])), min_size=1, max_size=30))
def test_at_hand_replies_as_the_general_path(srv: Harness, arts: list[dict[str, Any]], script: list[Any]) -> None:
    group, other = srv.add_group(), srv.add_group()
    mids = _post_all(srv, group, other, arts)
    news = srv.news

    async def run() -> int:
        lean, general = _session(srv, news), _session(srv, news)
        answered = 0
        for s in (lean, general):
            await commands.dispatch(s, f"GROUP {group}\r\n".encode())
        for step in script:
            if step == "cancel":  # the first article still there goes (the group's index changes)
                for i, mid in enumerate(mids, 1):
                    if await news.cancel(mid, by=POSTER):
                        gone.add(i)
                        break
                continue
            if step == "group":  # a fresh selection in both (articles may have gone)
                for s in (lean, general):
                    await commands.dispatch(s, f"GROUP {group}\r\n".encode())
                continue
            now = handlers.article_now(lean, step)
            if now is None:
                now = (await commands.dispatch(lean, step)).chunks()  # type: ignore[union-attr]
            else:
                answered += 1
            want = (await commands.dispatch(general, step)).chunks()  # type: ignore[union-attr]
            assert b"".join(now) == b"".join(want), step
            assert (lean.article, lean.group, lean.bad_commands) == \
                (general.article, general.group, general.bad_commands), step
        # And the lean path is really taken: an article of this group alone, read once.
        alone = [i for i, a in enumerate(arts, 1) if not a["crosspost"] and i not in gone]
        if alone:
            line = f"BODY {alone[0]}\r\n".encode()
            want = (await commands.dispatch(general, line)).chunks()  # type: ignore[union-attr]
            now = handlers.article_now(lean, line)
            assert now is not None and b"".join(now) == b"".join(want)
            answered += 1
        return answered

    gone: set[int] = set()
    srv.call(run())


@pytest.mark.sqlite_only("the lean path reads through SqliteStore.read_message_now; on PostgreSQL it declines")
def test_lean_path_answers_a_plain_article_and_falls_back_otherwise(srv: Harness) -> None:
    """The lean path is really taken for the common case (a plain article of one group, by
    number, its index kept; STAT of one read before), and gives way for STAT of one never
    read, a message-id, no group and a crosspost."""
    group, other = srv.add_group(), srv.add_group()
    srv.post_direct(article(group, 1))
    srv.post_direct(article(f"{group},{other}", 2))
    news = srv.news

    async def run() -> None:
        s = _session(srv, news)
        assert handlers.article_now(s, b"ARTICLE 1\r\n") is None  # no group selected
        await commands.dispatch(s, f"GROUP {group}\r\n".encode())
        await commands.dispatch(s, b"ARTICLE 1\r\n")  # the index is kept from here on
        got = handlers.article_now(s, b"ARTICLE 1\r\n")
        assert got is not None and got[0].startswith(b"220 1 <")
        assert b"".join(got).endswith(b"\r\n.\r\n") and s.article == 1
        stat = handlers.article_now(s, b"STAT 1\r\n")  # known from the ARTICLE before: no overview query
        assert stat is not None and b"".join(stat) == (await commands.dispatch(s, b"STAT 1\r\n")).encode()
        assert handlers.article_now(s, b"STAT 2\r\n") is None  # never read: the overview says
        assert handlers.article_now(s, b"ARTICLE 2\r\n") is None  # crosspost: Xref from history
        assert handlers.article_now(s, b"ARTICLE 3\r\n") is None  # not there: 423 from the gate's path
        assert handlers.article_now(s, b"ARTICLE <x@y>\r\n") is None
        s.group = None
        assert handlers.article_now(s, b"ARTICLE 1\r\n") is None

    srv.call(run())


def test_wire_lean_and_general_spellings_agree(srv: Harness) -> None:
    """Over a socket: ``ARTICLE n`` (the lean path, once the article was read) and ``article n``
    (another spelling: always the gate) give the same bytes, and NEXT moves from the number
    the lean path made current."""
    group = srv.add_group()
    bodies = [b"plain\r\n", b".dot\r\nplain\r\n", b"last\r\n.", b"..\r\n"]
    for i, body in enumerate(bodies, 1):
        srv.post_direct(article(group, i, body=body))
    with srv.client("none") as c:
        assert c.cmd(f"GROUP {group}")[0] == 211
        for n in range(1, len(bodies) + 1):
            for verb in ("ARTICLE", "HEAD", "BODY"):
                first = _exchange(c, f"{verb} {n}")
                again = _exchange(c, f"{verb} {n}")
                general = _exchange(c, f"{verb.lower()} {n}")
                assert first == again == general, (verb, n)
                assert first.startswith(f"22{'0' if verb == 'ARTICLE' else '1' if verb == 'HEAD' else '2'} {n} <".encode())
        _exchange(c, "ARTICLE 2")
        assert c.cmd("NEXT")[0] == 223 and c.cmd("STAT")[1].startswith("3 ")


@pytest.mark.sqlite_only("the lean path reads through SqliteStore.read_message_now; on PostgreSQL it declines")
def test_lean_path_stuffs_from_the_offsets_the_news_layer_kept(srv: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """An article with lines starting with "." (in the header, first and last in the body, the
    last without its CRLF, many of them) is answered by the lean path without a scan for them:
    the dots found when the article was first read are doubled by slicing, and the bytes are
    those of the general path (which stuffs with ``stuffed``, made to fail here afterwards)."""
    group = srv.add_group()
    bodies = [b".first\r\nplain\r\n", b"plain\r\n.last", b"a\r\n..\r\n.\r\nb\r\n" * 20, b".\r\n"]
    for i, body in enumerate(bodies, 1):
        srv.post_direct(article(group, i, body=body, extra="X-Note: a\r\n .folded dot\r\n.dot line\r\n"))
    news = srv.news

    async def run() -> None:
        s = _session(srv, news)
        await commands.dispatch(s, f"GROUP {group}\r\n".encode())
        want = {}
        for n in range(1, len(bodies) + 1):
            for verb in ("ARTICLE", "HEAD", "BODY"):
                line = f"{verb} {n}\r\n".encode()
                want[line] = b"".join((await commands.dispatch(s, line)).chunks())  # type: ignore[union-attr]
                assert b"\r\n.." in want[line] or verb == "HEAD"
        monkeypatch.setattr(handlers, "stuffed", _no_scan)
        for line, octets in want.items():
            got = handlers.article_now(s, line)
            assert got is not None and b"".join(got) == octets, line

    srv.call(run())


def _no_scan(data: bytes) -> tuple[bytes, ...]:
    raise AssertionError("the lean path scanned the article for dot lines")
