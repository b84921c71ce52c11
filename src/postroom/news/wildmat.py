"""RFC 3977 §4 wildmat patterns (LIST ACTIVE, NEWNEWS, feed and permission patterns).

A wildmat is a comma-separated list of patterns; ``!`` before one negates it; a name
matches the wildmat when the *last* pattern it matches is not negated (§4.2). Within a
pattern ``*`` matches any run of characters and ``?`` exactly one (a UTF-8 character,
§4.1); every other character stands for itself. ``[``, ``]`` and ``\\`` are not allowed
(§4.1: "wildmat-exact" excludes them), nor are spaces, controls and empty patterns.
Patterns are compiled once to one regular expression per pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["WildmatError", "compile_wildmat"]


class WildmatError(ValueError):
    """A malformed wildmat (NNTP answers 501)."""


_FORBIDDEN = set("[]\\")


def _pattern_regex(pat: str) -> str:
    out = []
    for ch in pat:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def compile_wildmat(pattern: str) -> Callable[[str], bool]:
    """A predicate for ``pattern``; WildmatError when it is not a wildmat (RFC 3977 §4.1)."""
    if not pattern:
        raise WildmatError("empty wildmat")
    items: list[tuple[bool, re.Pattern[str]]] = []
    for raw in pattern.split(","):
        negated = raw.startswith("!")
        pat = raw[1:] if negated else raw
        if not pat:
            raise WildmatError(f"empty pattern in wildmat {pattern!r}")
        for ch in pat:
            if ch in _FORBIDDEN or ch in "!," or ord(ch) <= 0x20 or ord(ch) == 0x7F:
                raise WildmatError(f"character {ch!r} is not allowed in wildmat {pattern!r}")
        items.append((negated, re.compile(_pattern_regex(pat), re.DOTALL)))
    if len(items) == 1 and not items[0][0]:
        only = items[0][1].fullmatch
        return lambda name: only(name) is not None
    rev = items[::-1]

    def match(name: str) -> bool:
        # RFC 3977 §4.2: the last pattern that matches decides; none matching is no match.
        for negated, rx in rev:
            if rx.fullmatch(name) is not None:
                return not negated
        return False

    return match
