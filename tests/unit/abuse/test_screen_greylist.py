"""Greylisting's decision (pure) and the client key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.abuse.greylist import Triplet, client_key, decide
from postroom.abuse.screen_settings import GreylistSettings

S = GreylistSettings(enabled=True, delay=300, retry_window=4 * 3600, keep=35 * 86400)


def test_first_attempt_waits_then_a_retry_after_the_delay_passes() -> None:
    v = decide(None, 1000.0, S)
    assert not v.accept and v.wait == 300 and v.row == Triplet(1000.0, None, 1000.0)
    soon = decide(v.row, 1100.0, S)
    assert not soon.accept and soon.wait == 200
    assert soon.row.first == 1000.0  # retrying often does not push the pass back
    ok = decide(soon.row, 1300.0, S)
    assert ok.accept and ok.newly_passed and ok.row.passed == 1300.0
    again = decide(ok.row, 5000.0, S)
    assert again.accept and not again.newly_passed


def test_a_retry_after_the_window_starts_over() -> None:
    late = decide(Triplet(0.0, None, 0.0), 4 * 3600 + 1.0, S)
    assert not late.accept and late.row.first == 4 * 3600 + 1.0


def test_a_passed_triplet_unused_for_keep_waits_again() -> None:
    row = Triplet(0.0, 300.0, 300.0)
    assert decide(row, 300.0 + S.keep, S).accept
    assert not decide(row, 301.0 + S.keep, S).accept


@given(st.floats(0, 1e9), st.lists(st.floats(0, 1e6), max_size=10))
def test_never_accepted_before_the_delay(start: float, gaps: list[float]) -> None:
    row, now = None, start
    first = start
    for gap in [0.0, *gaps]:
        now += gap
        v = decide(row, now, S)
        if row is None or (row.passed is None and now - row.first > S.retry_window):
            first = now
        if v.accept and v.newly_passed:
            assert now - first >= S.delay
        row = v.row


def test_client_key_is_the_network() -> None:
    assert client_key("192.0.2.77", S) == "192.0.2.0/24"
    assert client_key("::ffff:192.0.2.77", S) == "192.0.2.0/24"
    assert client_key("2001:db8:1:2:3:4:5:6", S) == "2001:db8:1:2::/64"
    assert client_key("192.0.2.77", GreylistSettings(ipv4_prefix=32)) == "192.0.2.77/32"
