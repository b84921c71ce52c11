"""The checks a command passes before its handler runs, for protocols with a command table.

GUIDE principle 2: one table per protocol maps each verb to its handler, the states it
is valid in and how many arguments it takes, and one gate checks all of that, so no
handler repeats it. POP3 and ManageSieve answer a refusal in their own words
(``-ERR``, ``NO``) and count it towards their bad-command limit; the checks and the
reasons are the same and live here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

H = TypeVar("H")
S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Spec(Generic[H, S]):
    """One row of a command table."""

    handler: H
    states: frozenset[S]
    min_args: int = 0
    max_args: int = 0

    def takes(self, count: int) -> bool:
        """Whether ``count`` arguments are right (a protocol's row type may widen this)."""
        return self.min_args <= count <= self.max_args


R = TypeVar("R", bound="Spec[Any, Any]")


def admit(table: Mapping[str, R], verb: str, state: Hashable, count: int, *, logged_in: bool) -> R | str:
    """The row for ``verb`` if the command may run now with ``count`` arguments, else
    the reason to refuse it (safe to send: it names nothing but the client's verb).

    ``logged_in`` words the wrong-state reason: a command for the other side of the
    login is the usual mistake, so the reason says which side it belongs to."""
    spec = table.get(verb)
    if spec is None:
        return "Unknown command"
    if state not in spec.states:
        return f"{verb} is only valid {'before' if logged_in else 'after'} login"
    if not spec.takes(count):
        return "Wrong number of arguments"
    return spec
