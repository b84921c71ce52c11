"""RFC 4790 §9.1 ``i;ascii-numeric`` (capability ``comparator-i;ascii-numeric``):
equality and ordering only, so :contains and :matches are refused at compile time."""

from __future__ import annotations

from ..match import numeric_key
from ..registry import REGISTRY, Comparator

REGISTRY.extension("comparator-i;ascii-numeric")
REGISTRY.comparators["i;ascii-numeric"] = Comparator(
    "i;ascii-numeric", numeric_key, extension="comparator-i;ascii-numeric", substring=False)
