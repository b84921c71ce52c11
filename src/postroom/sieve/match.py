"""Comparators (RFC 4790 via RFC 5228 §2.7.3) and match types (§2.7.1), plus the
relational operators of RFC 5231 and the ``*``/``?`` wildcard matcher.

The wildcard matcher never backtracks: the text before the first ``*`` is anchored at
the start, the text after the last ``*`` at the end, and each piece in between is found
leftmost. That is exact for ``*``/``?`` patterns (every piece has a fixed length) and
costs at most one scan of the value per piece, so a hostile pattern cannot hang
delivery the way a backtracking regex translation could.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .registry import REGISTRY, Comparator, MatchType

__all__ = ["ascii_fold", "compare", "compiled_pattern", "glob_match", "match_contains", "match_is", "numeric_key",
           "octet_key", "split_pattern"]

_UPPER = {c: c + 32 for c in range(65, 91)}


def ascii_fold(s: str) -> str:
    """i;ascii-casemap folding: only A–Z change (RFC 4790 §9.2)."""
    return s.translate(_UPPER)


def octet_key(s: str) -> bytes:
    """The octets a comparator sees: UTF-8, with surrogate-escaped raw octets restored."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped octet
        return s.encode("utf-8", "surrogatepass")


def casemap_key(s: str) -> bytes:
    """i;ascii-casemap (RFC 4790 §9.2): octets with a–z mapped to A–Z."""
    return octet_key(s).translate(_BYTES_UPPER)


_BYTES_UPPER = bytes(c - 32 if 97 <= c <= 122 else c for c in range(256))
_BYTES_LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))

_DIGITS = re.compile(r"[0-9]+")


def numeric_key(s: str) -> tuple[int, int]:
    """i;ascii-numeric (RFC 4790 §9.1): the value of the leading digits; a string that does
    not start with a digit is positive infinity, equal to every other such string."""
    m = _DIGITS.match(s)
    if m is None:
        return (1, 0)
    return (0, int(m.group(0)) if len(m.group(0)) < 4300 else 10 ** 4300)


def compare(comp: Comparator, a: str, b: str, op: str) -> bool:
    """``a <op> b`` under the comparator's ordering (RFC 5231 §4)."""
    ka, kb = comp.key(a), comp.key(b)
    if op == "eq":
        return bool(ka == kb)
    if op == "ne":
        return bool(ka != kb)
    if op == "gt":
        return bool(ka > kb)
    if op == "ge":
        return bool(ka >= kb)
    if op == "lt":
        return bool(ka < kb)
    return bool(ka <= kb)  # "le"


# ---------------------------------------------------------------- wildcard matching
#
# RFC 5228 §2.7.1: "the comparator defines what a character is"; for i;octet and
# i;ascii-casemap a character is one octet, so matching runs on the UTF-8 octets
# ("?" never matches a whole "é"), as Pigeonhole does.

_Piece = list[int | None]  # octets; None stands for "?"
_STAR, _QMARK, _BSLASH = 0x2A, 0x3F, 0x5C


def split_pattern(pattern: bytes) -> list[_Piece]:
    """The pattern's pieces between ``*``s; ``\\`` makes the next octet literal."""
    pieces: list[_Piece] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _BSLASH and i + 1 < n:
            pieces[-1].append(pattern[i + 1])
            i += 2
            continue
        if c == _STAR:
            pieces.append([])
        elif c == _QMARK:
            pieces[-1].append(None)
        else:
            pieces[-1].append(c)
        i += 1
    return pieces


def _at(value: bytes, pos: int, piece: _Piece) -> bool:
    if pos + len(piece) > len(value):
        return False
    return all(c is None or value[pos + k] == c for k, c in enumerate(piece))


def _find(value: bytes, piece: _Piece, start: int, end: int) -> int:
    if None not in piece:
        return value.find(bytes(piece), start, end)  # type: ignore[arg-type]
    rx = re.compile(b"".join(b"." if c is None else re.escape(bytes((c,))) for c in piece), re.DOTALL)
    m = rx.search(value, start, end)
    return -1 if m is None else m.start()


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


@lru_cache(maxsize=1024)
def compiled_pattern(pattern: str, fold: bool) -> tuple[_Piece, ...]:
    """A ``:matches`` pattern split into pieces once: a script's constant keys are the
    same for every message, so each is compiled on first use and then reused (bounded,
    so variable keys cannot grow it)."""
    pat = octet_key(pattern)
    return tuple(split_pattern(pat.translate(_BYTES_LOWER) if fold else pat))


#: A pattern piece with, when it holds no "?", its octets as one bytes string (then it is
#: compared with ``startswith``/``find`` in C instead of octet by octet).
_Planned = tuple[_Piece, "bytes | None"]


@lru_cache(maxsize=1024)
def _plan(pattern: str, fold: bool) -> tuple[_Planned, ...]:
    return tuple((p, None if None in p else bytes(p)) for p in compiled_pattern(pattern, fold))  # type: ignore[arg-type]


def _qmarks(raw: bytes, at: int, piece: _Piece) -> list[str]:
    """What each "?" of ``piece``, placed at ``at``, matched."""
    return [_text(raw[at + k:at + k + 1]) for k, c in enumerate(piece) if c is None]


def glob_match(value: str, pattern: str, fold: bool) -> list[str] | None:
    """Match ``value`` against a ``:matches`` pattern. Returns None for no match, else
    the match variables (RFC 5229 §3.2): the whole value, then what each ``*`` and ``?``
    matched, in order."""
    raw = octet_key(value)
    cmp_value = raw.translate(_BYTES_LOWER) if fold else raw
    pieces = _plan(pattern, fold)
    first, first_lit = pieces[0]
    if len(pieces) == 1:
        if first_lit is not None:
            return [value] if cmp_value == first_lit else None
        if len(first) != len(cmp_value) or not _at(cmp_value, 0, first):
            return None
        return [value] + _qmarks(raw, 0, first)
    last, last_lit = pieces[-1]
    tail = len(cmp_value) - len(last)
    if tail < len(first):
        return None
    if first_lit is not None:
        if not cmp_value.startswith(first_lit):
            return None
    elif not _at(cmp_value, 0, first):
        return None
    if last_lit is not None:
        if not cmp_value.startswith(last_lit, tail):
            return None
    elif not _at(cmp_value, tail, last):
        return None
    caps: list[str] = [value]
    if first_lit is None:
        caps += _qmarks(raw, 0, first)
    pos = len(first)
    for i in range(1, len(pieces) - 1):
        piece, lit = pieces[i]
        found = cmp_value.find(lit, pos, tail) if lit is not None else _find(cmp_value, piece, pos, tail)
        if found < 0:
            return None
        caps.append(_text(raw[pos:found]))  # the "*" before this piece
        if lit is None:
            caps += _qmarks(raw, found, piece)
        pos = found + len(piece)
    caps.append(_text(raw[pos:tail]))
    if last_lit is None:
        caps += _qmarks(raw, tail, last)
    return caps


# ---------------------------------------------------------------- the registrations


def match_is(value: str, key: str, comp: Comparator) -> bool:
    return bool(comp.key(value) == comp.key(key))


def match_contains(value: str, key: str, comp: Comparator) -> bool:
    k: Any = comp.key(key)
    return k in comp.key(value)


def _matches(value: str, key: str, comp: Comparator) -> list[str] | None:
    return glob_match(value, key, comp.casefold is not None)


REGISTRY.comparators["i;octet"] = Comparator("i;octet", octet_key)
REGISTRY.comparators["i;ascii-casemap"] = Comparator("i;ascii-casemap", casemap_key, casefold=ascii_fold)
REGISTRY.silent |= {"comparator-i;octet", "comparator-i;ascii-casemap"}
REGISTRY.match_types["is"] = MatchType("is", match_is)
REGISTRY.match_types["contains"] = MatchType("contains", match_contains, substring=True)
REGISTRY.match_types["matches"] = MatchType("matches", _matches, substring=True)
