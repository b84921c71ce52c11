"""The command gate POP3 and ManageSieve share (postroom.wire.gate)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from postroom.wire.gate import Spec, admit


class St(enum.Enum):
    OUT = "out"
    IN = "in"


OUT, IN = frozenset({St.OUT}), frozenset({St.IN})


@dataclass(frozen=True, slots=True)
class RestSpec(Spec[str, St]):
    """A protocol row type that takes the rest of the line as one argument (POP3 USER)."""

    rest: bool = False

    def takes(self, count: int) -> bool:
        return self.rest or Spec.takes(self, count)


TABLE: dict[str, Spec[str, St]] = {
    "LOGIN": Spec("login", OUT, 1, 2),
    "NOOP": Spec("noop", OUT | IN, 0, 1),
    "FETCH": Spec("fetch", IN, 1, 1),
    "USER": RestSpec("user", OUT, 1, 1, rest=True),
}


@pytest.mark.parametrize(("verb", "state", "count", "expected"), [
    ("LOGIN", St.OUT, 1, "login"),
    ("LOGIN", St.OUT, 2, "login"),
    ("NOOP", St.IN, 0, "noop"),
    ("NOOP", St.OUT, 1, "noop"),
    ("USER", St.OUT, 3, "user"),  # the row type widened the count
    ("HELO", St.OUT, 0, "Unknown command"),
    ("login", St.OUT, 1, "Unknown command"),  # the caller upper-cases the verb
    ("FETCH", St.OUT, 1, "FETCH is only valid after login"),
    ("LOGIN", St.IN, 1, "LOGIN is only valid before login"),
    ("LOGIN", St.OUT, 0, "Wrong number of arguments"),
    ("LOGIN", St.OUT, 3, "Wrong number of arguments"),
    ("FETCH", St.IN, 2, "Wrong number of arguments"),
])
def test_admit(verb: str, state: St, count: int, expected: str) -> None:
    got = admit(TABLE, verb, state, count, logged_in=state is St.IN)
    assert (got.handler if isinstance(got, Spec) else got) == expected


def test_state_is_checked_before_the_count() -> None:
    # A command for the other side of the login says so, however many arguments it has.
    assert admit(TABLE, "FETCH", St.OUT, 7, logged_in=False) == "FETCH is only valid after login"
