"""RFC 5231 relational match types ``:count`` and ``:value`` (operator gt/ge/lt/le/eq/ne).

Both are evaluated in :meth:`postroom.sieve.interp.Context.match`; the operator is
checked at compile time in the validator."""

from __future__ import annotations

from ..registry import REGISTRY, STRING, MatchType

REGISTRY.extension("relational")
REGISTRY.match_types["count"] = MatchType("count", None, extension="relational", arg=STRING, ordering=True)
REGISTRY.match_types["value"] = MatchType("value", None, extension="relational", arg=STRING, ordering=True)
