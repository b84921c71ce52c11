"""SEARCH over record keys as set operations must answer what the per-message closures
answer (the closures are the plain reading of RFC 3501 §6.4.4); and the header-only
structure FETCH uses must end the header where mime.parse does."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings, strategies as st

from postroom.imap.handlers.fetch import _header_end
from postroom.imap.handlers.search import Item, _SetEval, compile_node
from postroom.imap.parser.seqset import STAR, SequenceSet
from postroom.imap.selected import SelectedMailbox
from postroom.mime import header_section, parse, section
from postroom.mime.headers import split_header
from postroom.storage.index import MessageIndex, RowCache
from postroom.storage.models import Mailbox

FLAGS = ["\\Seen", "\\Flagged", "\\Deleted", "\\Recent", "work"]
DAY = 86400
T0 = 1_700_000_000


def _mailbox(n_uids: int) -> tuple[MessageIndex, SelectedMailbox]:
    rows = []
    for uid in range(1, n_uids + 1):
        flags = " ".join(f for i, f in enumerate(FLAGS[:3] + FLAGS[4:]) if (uid * 7 + i * 3) % (i + 2) == 0)
        # Every fourth message has no save date (stored before migration 3).
        saved = None if uid % 4 == 0 else T0 + (uid % 3) * DAY
        rows.append((uid * 2, uid, flags, T0 + (uid % 5) * DAY, 60, 100 * (uid % 7), uid, "seg", 0, 1, saved))
    mb = Mailbox(1, 1, "INBOX", 1, n_uids * 2 + 2, n_uids + 1)
    idx = MessageIndex.build(mb, 1, rows, RowCache())
    uids = list(idx.uids)
    # The session does not know the last message yet and still holds an expunged UID.
    view = [1] + uids[:-1] if uids else []
    box = SelectedMailbox(mb, view, readonly=False, recent_from=n_uids)
    return idx, box


def _seqset(draw: st.DrawFn, hi: int) -> SequenceSet:
    ranges = draw(st.lists(st.tuples(st.integers(0, hi), st.integers(0, hi)), min_size=1, max_size=3))
    return SequenceSet(tuple((a if a else STAR, b if b else STAR) for a, b in ranges))


@st.composite
def trees(draw: st.DrawFn, exists: int, depth: int = 0) -> tuple:
    leaves = [
        st.just(("all",)),
        st.tuples(st.just("flag"), st.sampled_from(FLAGS), st.booleans()),
        st.tuples(st.just("recent"), st.booleans()),
        st.just(("new",)),
        st.tuples(st.just("larger"), st.integers(0, 700)),
        st.tuples(st.just("smaller"), st.integers(0, 700)),
        st.tuples(st.sampled_from(["before", "on", "since", "savedbefore", "savedon", "savedsince"]),
                  st.sampled_from([date.fromtimestamp(T0 + d * DAY) for d in range(-1, 6)])),
    ]
    if exists:
        leaves.append(st.builds(lambda s: ("seq", s), st.builds(lambda: _seqset(draw, exists))))
    leaves.append(st.builds(lambda s: ("uid", s), st.builds(lambda: _seqset(draw, 2 * exists + 3))))
    if depth >= 3:
        return draw(st.one_of(leaves))
    kind = draw(st.sampled_from(["leaf", "leaf", "and", "or", "not"]))
    if kind == "leaf":
        return draw(st.one_of(leaves))
    if kind == "and":
        return ("and", draw(st.lists(trees(exists, depth + 1), min_size=1, max_size=3)))
    if kind == "or":
        return ("or", draw(trees(exists, depth + 1)), draw(trees(exists, depth + 1)))
    return ("not", draw(trees(exists, depth + 1)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 30).flatmap(lambda n: st.tuples(st.just(n), trees(n))))
def test_set_evaluation_matches_closures(case: tuple) -> None:
    n, tree = case
    idx, box = _mailbox(n)
    sets = _SetEval(idx, box)
    got = sets.eval(tree)
    assert got is not None
    got_uids = sorted(u for u in got if u <= sets.last and u in idx and box.seq_of(u) is not None)
    pred = compile_node(tree, box)
    want = [uid for uid in box.uids if uid in idx and pred(Item(idx.get(uid), box.seq_of(uid)))]  # type: ignore[arg-type]
    assert got_uids == want


@settings(max_examples=500)
@given(st.binary(max_size=40).map(lambda b: bytes(b"A:\r\n \tx"[c % 7] for c in b)))
def test_header_end_is_where_parse_ends_the_header(raw: bytes) -> None:
    _, body = split_header(raw, 0, len(raw))
    p = parse(raw)
    assert _header_end(raw) == body == p.root.body_start
    # So the top-level header sections need no stored structure.
    for spec in ("HEADER", "HEADER.FIELDS (A X)", "HEADER.FIELDS.NOT (A)", "header.fields (a)"):
        assert header_section(raw, body, spec) == section(raw, p, spec)
    assert header_section(raw, body, "TEXT") is None and header_section(raw, body, "1.HEADER") is None
