"""The PostgreSQL store's escape of Sieve tracking keys: text PostgreSQL accepts, and injective
(two different keys never share a row: a vacation for one sender must not silence another)."""

from hypothesis import given
from hypothesis import strategies as st

from postroom.storage.postgresql.scripts import tracking_key


@given(st.text(), st.text())
def test_injective_and_free_of_nul(a: str, b: str) -> None:
    assert "\0" not in tracking_key(a)
    assert (tracking_key(a) == tracking_key(b)) == (a == b)


def test_keys_without_nul_or_percent_are_kept() -> None:
    assert tracking_key("vacation:alice@example.org") == "vacation:alice@example.org"
    assert tracking_key("a\0b%") == "a%00b%25"
