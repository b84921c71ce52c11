"""RFC 5256 base subject (§2.1) and THREAD algorithms (§3, §4), pure."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.imap.threadalg import MAX_REFS, Msg, base_subject, format_threads, ordered_subject, references


@pytest.mark.parametrize("subject,base,reply", [
    ("Hello", "Hello", False),
    ("Re: Hello", "Hello", True),
    ("RE: re:  Fwd: Hello", "Hello", True),
    ("Fw: Hello", "Hello", True),
    ("Re[2]: Hello", "Hello", True),  # subj-refwd takes an optional blob
    ("Re [2]: Hello", "Hello", True),
    ("[list] Re: Hello", "Hello", True),
    ("[list] Hello", "Hello", False),
    ("[list]", "[list]", False),  # (4): the blob is not removed when nothing would be left
    ("Hello (fwd)", "Hello", True),
    ("Hello (FWD) (fwd)  ", "Hello", True),
    ("[Fwd: Re: Hello]", "Hello", True),
    ("[fwd: [list] hello (fwd)]", "hello", True),
    ("Hello\t\r\n  world", "Hello world", False),
    ("", "", False),
    ("Re:", "", True),
    ("   Re:   Re:x", "x", True),
])
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def m(i, date=0.0, subject="s", mid=None, refs=()):
    return Msg(i, i, date or float(i), subject, mid if mid is not None else f"<{i}@t>", list(refs))


def test_ordered_subject():
    msgs = [m(1, 10, "a"), m(2, 5, "Re: a"), m(3, 7, "b"), m(4, 6, "A"), m(5, 1, "c")]
    assert format_threads(ordered_subject(msgs)) == b"(5)(2 (4)(1))(3)"


@pytest.mark.parametrize("msgs,expected", [
    # a chain, out of order
    ([m(1, subject="x"), m(2, subject="Re: x", refs=["<1@t>"]), m(3, subject="Re: x", refs=["<1@t>", "<2@t>"])],
     b"(1 2 3)"),
    # two replies to one message
    ([m(1, subject="x"), m(2, subject="y", refs=["<1@t>"]), m(3, subject="z", refs=["<1@t>"])], b"(1 (2)(3))"),
    # missing parent with two children: a dummy at the root
    ([m(1, subject="x", refs=["<0@t>"]), m(2, subject="y", refs=["<0@t>"])], b"((1)(2))"),
    # missing parent with one child: promoted
    ([m(1, subject="x", refs=["<0@t>"])], b"(1)"),
    # same base subject, no references: siblings under a dummy
    ([m(1, subject="x"), m(2, subject="x")], b"((1)(2))"),
    # same base subject, one a reply: its child
    ([m(1, subject="Re: x"), m(2, subject="x")], b"(2 1)"),
    # duplicate Message-ID: the second gets a unique one
    ([m(1, subject="x", mid="<d@t>"), m(2, subject="y", mid="<d@t>")], b"(1)(2)"),
    # no Message-ID
    ([m(1, subject="x", mid=""), m(2, subject="y", mid="", refs=["<1@t>"])], b"(1)(2)"),
    # self reference and a cycle 1 → 2 → 1
    ([m(1, subject="x", refs=["<1@t>"])], b"(1)"),
    ([m(1, subject="x", refs=["<2@t>"]), m(2, subject="y", refs=["<1@t>"])], b"(2 1)"),
])
def test_references(msgs, expected):
    assert format_threads(references(msgs)) == expected


def test_deep_chain_is_iterative():
    """10,000 messages, each replying to the one before: no recursion, done quickly."""
    n = 10_000
    msgs = [m(i, subject=f"s{i}", refs=[f"<{i - 1}@t>"] if i > 1 else []) for i in range(1, n + 1)]
    t = time.monotonic()
    out = format_threads(references(msgs))
    assert out == b"(" + b" ".join(b"%d" % i for i in range(1, n + 1)) + b")"
    assert time.monotonic() - t < 20


def test_long_references_bounded():
    refs = [f"<r{i}@t>" for i in range(100_000)]
    roots = references([m(1, subject="x", refs=refs)])
    assert format_threads(roots) == b"(1)"
    # only the last MAX_REFS ids were used: the dummy chain above 1 was pruned away
    assert MAX_REFS < len(refs)


ids = st.sampled_from([f"<{i}@t>" for i in range(8)] + [""])


@st.composite
def mailbox(draw):
    n = draw(st.integers(0, 12))
    return [Msg(i, i, float(draw(st.integers(0, 5))), draw(st.sampled_from(["a", "Re: a", "b", "", "[x] b (fwd)"])),
                draw(ids), draw(st.lists(ids, max_size=6))) for i in range(1, n + 1)]


def _numbers(out: bytes) -> list[int]:
    return sorted(int(x) for x in out.replace(b"(", b" ").replace(b")", b" ").split())


@settings(max_examples=300, deadline=None)
@given(mailbox(), st.sampled_from(["refs", "subj"]))
def test_every_message_once(msgs, alg):
    """Whatever the references (cycles, duplicates, self references), each message appears
    exactly once, parentheses balance, and no list holds a single dummy."""
    roots = references(msgs) if alg == "refs" else ordered_subject(msgs)
    out = format_threads(roots)
    assert _numbers(out) == [x.id for x in msgs]
    depth = 0
    for ch in out:
        depth += {40: 1, 41: -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert b"(()" not in out and b"()" not in out


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_base_subject_idempotent(s):
    base, _ = base_subject(s)
    assert base_subject(base)[0] == base or base_subject(base)[0] == base_subject(base_subject(base)[0])[0]
