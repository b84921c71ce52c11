"""FETCH answered from kept responses (handlers/fetch.py ``fetch_reply`` / ``_cached``) against
the streamed path it skips: the same bytes and the same ending, whatever the state.

A real SQLite store and two real sessions: messages delivered, flags stored by this session and
the other, messages expunged, new ones arriving with \\Recent (and sessions holding none after a
new SELECT), CONDSTORE and QRESYNC enabled, the kept responses dropped at random. Each FETCH is
run by the streamed path first (which fills RESPONSES), then twice by ``fetch_reply``, which
answers from RESPONSES (by content, then by position in the index or by record) when it can. All
are read-only (BODY.PEEK, no \\Seen), so the state is the same for every run.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.imap import dispatch
from postroom.imap.handlers import condstore
from postroom.imap.handlers import fetch as F
from postroom.imap.parser.base import Reader
from postroom.imap.parser.condstore import fetch as parse_fetch
from postroom.imap.session import ImapSettings, Session, State
from postroom.storage.models import DeliveryTarget
from postroom.storage.sqlite.store import SqliteStore

ATTS = [
    "(FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])",
    "(UID FLAGS)",
    "FLAGS",
    "(RFC822.SIZE BODY.PEEK[HEADER])",
    "(FLAGS UID BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)] RFC822.SIZE)",
    "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[HEADER.FIELDS (FROM)])",
    "(FLAGS INTERNALDATE)",  # not kept: always the streamed path
]
FLAGS = ["\\Flagged", "\\Answered", "\\Seen", "$Work", "\\Draft"]


def _msg(i: int) -> bytes:
    return (f"From: Sender {i} <s{i}@x.test>\r\nTo: u@example.test\r\nSubject: message {i}\r\n"
            f"Date: Mon, 5 Feb 2024 10:11:12 +0100\r\n\r\nbody {i}\r\n").encode()


class World:
    """One event loop, one store, one account, two selected sessions (``a`` holds \\Recent)."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="postroom-fetch-cached-")
        self.loop = asyncio.new_event_loop()
        self.run(self._open())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _open(self) -> None:
        self.store = SqliteStore(Path(self.tmp.name) / "data")
        await self.store.open()
        await self.store.add_domain("example.test")
        self.account = await self.store.create_account("u@example.test", "not-a-hash")
        self.n = 0
        for _ in range(12):
            await self.deliver()
        self.a = await self._session()
        self.b = await self._session()

    async def deliver(self) -> None:
        self.n += 1
        await self.store.deliver(_msg(self.n), [DeliveryTarget(self.account.id)])

    async def _session(self) -> Session:
        ctx = types.SimpleNamespace(store=self.store, log=logging.getLogger("test"), config=None, state={})
        s = Session(ctx, ImapSettings(batch=8), None)  # type: ignore[arg-type]
        s.account = self.account
        s.state = State.AUTHENTICATED
        await self.command(s, b"SELECT INBOX")
        return s

    async def command(self, s: Session, line: bytes) -> bytes:
        out: list[bytes] = []

        async def write(data: bytes) -> None:
            out.append(data)

        await dispatch.run(s, b"x " + line, write)
        return b"".join(out)

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.tmp.cleanup()


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    w = World()
    yield w
    w.close()


async def _streamed(s: Session, box: Any, uids: list[int], atts: list[Any], by_uid: bool,
                    head: list[bytes] | None = None) -> Any:
    return F.fetch_uids(s, box, uids, atts, by_uid, head)


async def _answer(s: Session, args: Any, by_uid: bool, fast: bool) -> tuple[bytes, bytes, bytes | None]:
    """(untagged bytes, status, code) of FETCH ``args`` by the handler, with or without the
    kept-response path."""
    saved = F.fetch_reply
    if not fast:
        F.fetch_reply = _streamed  # type: ignore[assignment]
    try:
        reply = await condstore.fetch(s, args, by_uid)
    finally:
        F.fetch_reply = saved
    out = list(reply.untagged)
    if reply.stream is not None:
        async for chunk in reply.stream:
            out.append(chunk)
    return b"".join(out), reply.status, reply.code


def _seqset(n: int, kind: str, i: int, j: int) -> bytes:
    """A sequence set of a view of ``n`` messages from ``i`` and ``j`` (any size)."""
    a, b = i % n + 1, j % n + 1
    if kind == "range":
        return b"%d:%d" % (a, b)
    if kind == "star":
        return b"%d:*" % a
    return b"%d,%d" % (a, b)


# One step's choices, all drawn whatever the step (the state does not steer what is drawn).
steps = st.tuples(
    st.sampled_from(["fetch", "fetch", "fetch", "fetch", "store", "store_other", "deliver", "expunge", "forget",
                     "noop", "reselect", "enable"]),
    st.booleans(),  # session a or b
    st.sampled_from(FLAGS),
    st.sampled_from([b"+FLAGS", b"-FLAGS", b"FLAGS"]),
    st.sampled_from(["range", "list", "star"]),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.booleans(),  # UID FETCH
    st.sampled_from(ATTS),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(steps, min_size=1, max_size=6))
# Run first, before any expunge: SELECT then answers from the store's view, whose UIDs are a range.
@example([("reselect", True, "$Work", b"+FLAGS", "range", 1, 0, False, ATTS[0]),
          ("fetch", True, "$Work", b"+FLAGS", "range", 2, 9, False, ATTS[0]),
          ("fetch", True, "$Work", b"+FLAGS", "range", 2, 9, False, ATTS[0])])
def test_kept_responses_equal_streamed(world: World, plan: list[tuple[Any, ...]]) -> None:
    w = world
    for step, first, flag, op, kind, i, j, by_uid, atts in plan:
        s = w.a if first else w.b
        assert s.selected is not None
        n = s.selected.exists
        if step == "store" and n:
            w.run(w.command(s, b"STORE " + _seqset(n, kind, i, j) + b" " + op + b" (" + flag.encode() + b")"))
        elif step == "store_other":
            other = w.b if first else w.a
            assert other.selected is not None
            m = other.selected.exists
            if m:
                w.run(w.command(other, b"STORE %d +FLAGS.SILENT (%s)" % (i % m + 1, flag.encode())))
        elif step == "deliver":
            w.run(w.deliver())
        elif step == "expunge" and n > 4:
            w.run(w.command(s, b"STORE %d +FLAGS.SILENT (\\Deleted)" % (i % n + 1)))
            w.run(w.command(s, b"EXPUNGE"))
        elif step == "forget":
            F.RESPONSES.clear()
        elif step == "reselect":
            if i % 2:  # as after a restart: SELECT answers from the store's view (UIDs as a range)
                w.store._indexes.clear()
            w.run(w.command(s, b"SELECT INBOX"))  # \Recent claimed already: none held (the by-record path)
        elif step == "enable":  # RFC 7162: MODSEQ and UID rules of CONDSTORE / QRESYNC sessions
            w.run(w.command(s, b"ENABLE QRESYNC" if i % 2 else b"ENABLE CONDSTORE"))
        elif step == "noop":
            w.run(w.command(s, b"NOOP"))  # takes in new messages (with \Recent for the first to see them)
        elif step == "fetch" and n:
            if by_uid:
                last = s.selected.uids[-1]
                text = b"%d:%d" % (i % (last + 2) + 1, j % (last + 2) + 1)
            else:
                text = _seqset(n, kind, i, j)
            args = parse_fetch(Reader(b" " + text + b" " + atts.encode()))
            streamed = w.run(_answer(s, args, by_uid, fast=False))
            kept = w.run(_answer(s, args, by_uid, fast=True))
            assert kept == streamed
            # Now by position (a range) or by record, where it was by content.
            again = w.run(_answer(s, args, by_uid, fast=True))
            assert again == streamed


def test_prefixes_match_formatting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(F, "_PREFIXES", [b""])
    monkeypatch.setattr(F, "_PREFIX_MAX", 40)
    for lo, hi in ((1, 1), (1, 30), (25, 39), (30, 45), (38, 41), (50, 60), (3, 7)):
        assert F._prefixes(lo, hi) == [b"* %d FETCH " % n for n in range(lo, hi + 1)]
    assert len(F._PREFIXES) == 40  # grown up to the bound, never past it


def test_positions_follow_the_index() -> None:
    r = F._Responses()
    idx = types.SimpleNamespace(uids=[3, 5, 8, 9, 12])
    assert r.spot(1, 7, idx, [5, 9]) is None  # not consecutive in the index
    assert r.spot(1, 7, idx, [5, 8, 10]) is None  # 10 is not in it
    kept, at = r.spot(1, 7, idx, [5, 8, 9])  # type: ignore[misc]
    assert at == 1 and kept == [None] * 5
    kept[1:4] = [b"a", b"b", b"c"]
    assert r.spot(1, 7, idx, [8, 9]) == (kept, 2)  # the same index: the same list
    newer = types.SimpleNamespace(uids=[3, 5, 8, 9, 12])
    fresh, _ = r.spot(1, 7, newer, [8, 9])  # type: ignore[misc]
    assert fresh == [None] * 5  # another index (a change): nothing of the old one
    assert r.spot(2, 7, newer, [8, 9])[0] is not fresh  # type: ignore[index]  # another plan


def test_clear_forgets_records_with_their_objects() -> None:
    r = F._Responses(limit=2000)
    infos = [object() for _ in range(5)]
    r.put((1, "b", 1, frozenset(), False), b"x" * 100)
    r.remember(1, infos, [b"x"] * 5)  # type: ignore[arg-type]
    assert len(r.records[1]) == 5 and len(r.kept) == 5
    r.remember(1, [object() for _ in range(20)], [b"y"] * 20)  # type: ignore[arg-type]
    # past the limit: everything went at once, the records with the objects they name
    assert not r.data and not r.records and not r.kept and r.size == 0
