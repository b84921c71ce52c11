"""The per-account hourly cap on Sieve-generated mail (postroom.sieve.outcap): a sliding hour."""

from __future__ import annotations

from postroom.sieve.outcap import WINDOW, HourlyCap, cap_for


def test_sliding_hour_per_account() -> None:
    cap = HourlyCap(2)
    assert cap.take(1, 0.0) and cap.take(1, 10.0)
    assert not cap.take(1, 20.0)  # a third within the hour: refused, and not counted
    assert cap.take(2, 20.0)  # another account has its own allowance
    assert cap.take(1, WINDOW)  # the event at 0 is an hour old: it no longer counts
    assert not cap.take(1, WINDOW + 5.0)  # the one at 10 still does
    assert cap.take(1, WINDOW + 10.5)


def test_zero_is_no_cap_and_state_follows_the_limit() -> None:
    cap = HourlyCap(0)
    assert all(cap.take(1, 0.0) for _ in range(1000)) and not cap.events
    state: dict[str, object] = {}
    a = cap_for(state, 5)
    assert cap_for(state, 5) is a and cap_for(state, 6) is not a
