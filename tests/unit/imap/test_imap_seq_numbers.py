"""``selected.seq_numbers`` (FETCH's sequence numbers, one comparison per message of a range)
against the general lookup it replaces: a bisection per UID (``SelectedMailbox.seq_of``)."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from postroom.imap.selected import seq_numbers


def by_bisection(view: list[int], uids: list[int]) -> list[int]:
    out = []
    for uid in uids:
        i = bisect_left(view, uid)
        out.append(i + 1 if i < len(view) and view[i] == uid else 0)
    return out


views = st.lists(st.integers(1, 300), max_size=120, unique=True).map(sorted)


@given(views, st.data())
def test_matches_bisection(view: list[int], data: st.DataObject) -> None:
    # UIDs from the view (a range, a sample) mixed with ones it lacks (expunged meanwhile),
    # ascending as FETCH asks for them, or in any order.
    picked = data.draw(st.lists(st.sampled_from(view), max_size=60) if view else st.just([]))
    missing = data.draw(st.lists(st.integers(0, 310), max_size=10))
    uids = sorted(set(picked + missing))
    if data.draw(st.booleans()):
        uids = data.draw(st.permutations(uids))
    assert seq_numbers(view, uids) == by_bisection(view, uids)


@given(views, st.integers(0, 119), st.integers(0, 60))
def test_consecutive_range(view: list[int], start: int, length: int) -> None:
    uids = view[start:start + length]  # FETCH a:b of the view itself
    assert seq_numbers(view, uids) == list(range(start + 1, start + 1 + len(uids)))


def test_edges() -> None:
    assert seq_numbers([], [1, 2]) == [0, 0]
    assert seq_numbers([5, 7, 9], []) == []
    assert seq_numbers([5, 7, 9], [4, 5, 6, 7, 8, 9, 10]) == [0, 1, 0, 2, 0, 3, 0]
    assert seq_numbers([5, 7, 9], [9, 7, 5, 5]) == [3, 2, 1, 1]
