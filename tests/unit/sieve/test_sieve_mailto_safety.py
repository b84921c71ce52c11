"""What a script's ``notify`` URI or ``:from`` can make the server send (postroom.sieve.vacation):
envelope recipients without control characters, a From that is the user's own."""

from __future__ import annotations

import pytest

from postroom.sieve.vacation import own_from, parse_mailto


@pytest.mark.parametrize("uri,expected", [
    ("mailto:a@b.test%00", ()),
    ("mailto:a@b.test%7F", ()),
    ("mailto:ok@b.test?cc=x%01y@c.test", ("ok@b.test",)),
    ("mailto:victim@x.test%0D%0ARCPT%20TO:%3Cspam@y.test%3E", ("victim@x.test", "spam@y.test")),
    ("mailto:%22a%20b%22@c.test", ('"a b"@c.test',)),
])
def test_mailto_recipients_have_no_control_characters(uri: str, expected: tuple[str, ...]) -> None:
    target = parse_mailto(uri)
    got = target.recipients if target is not None else ()
    assert got == expected
    assert not any(c in a for a in got for c in "\r\n\x00")


@pytest.mark.parametrize("given,expected", [
    (None, "me@here.test"),
    ("", "me@here.test"),
    ("Me <ME@here.test>", "Me <ME@here.test>"),
    ("alias@here.test", "alias@here.test"),
    ("boss@here.test", "me@here.test"),
    ("me@here.test, other@there.test", "me@here.test"),
    ("Bank <security@bank.test>", "me@here.test"),
    ("me@here.test\r\nBcc: x@y.test", "me@here.test"),
])
def test_from_is_one_of_the_users_addresses(given: str | None, expected: str) -> None:
    assert own_from(given, "me@here.test", ("alias@here.test",)) == expected
