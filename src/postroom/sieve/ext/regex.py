"""draft-ietf-sieve-regex-01: the ``:regex`` match type and the ``:quoteregex`` modifier.

Keys are POSIX extended regular expressions (ERE), searched anywhere in the value
(``regexec`` semantics), leftmost-longest as POSIX asks. ``i;ascii-casemap`` matches
ASCII letters case-insensitively, ``i;octet`` exactly; other comparators are refused
(§3: the comparator must support substring matching, so i;ascii-numeric is a compile
error). With ``variables``, a match sets ``${0}`` (the whole match) and ``${1}``… (the
groups), as RFC 5229 §3.2 does for ``:matches``.

Why not Python's ``re``: it backtracks, and ``(a{1,30}){1,30}b`` against a short string
runs for hours. The third-party ``regex`` module takes a ``timeout``; every search gets
half of what is left of the script's time budget (the module checks its clock only now
and then and overshoots a little), and a search that runs out ends the run with a
:class:`SieveLimitError`. Patterns are further bounded before they are compiled:

- at most :data:`MAX_PATTERN` characters;
- ERE only: ``(?`` constructs (lookaround, inline flags, atomic groups) and the module's
  fuzzy-matching braces are refused; a brace must be an interval ``{n}``, ``{n,}`` or
  ``{n,m}`` with counts up to :data:`MAX_REPEAT` (POSIX ``RE_DUP_MAX``);
- compiling is cheap: once intervals are unrolled, the pattern has at most
  :data:`MAX_EXPANSION` atoms (compiling has no timeout of its own).

A constant pattern that breaks these rules or does not compile is a compile error; one
built from variables is a runtime error (delivery then keeps the message).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from typing import Any

import regex as _regex  # type: ignore[import-untyped]

from ..api import SieveLimitError, SieveRuntimeError
from ..ast import Node
from ..interp import Context, on_start
from ..registry import REGISTRY, Comparator, MatchType, Modifier
from ..validator import Checker
from .variables import add_modifier

__all__ = ["MAX_EXPANSION", "MAX_PATTERN", "MAX_REPEAT", "PatternError", "compile_pattern", "quote_regex", "regex_match"]

MAX_PATTERN = 1024
MAX_REPEAT = 255
#: Atoms a pattern may expand to once its counted repeats are unrolled (about 50 ms to compile).
MAX_EXPANSION = 65536
_CACHE_SIZE = 256
_SPECIALS = frozenset("\\.[]()*+?{}|^$")


class PatternError(ValueError):
    """A key that is not a pattern this engine will run."""


#: The running script's deadline (``time.monotonic``): MatchType functions get no Context.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("sieve_regex_deadline", default=0.0)
_cache: OrderedDict[tuple[str, bool], Any] = OrderedDict()
_cache_lock = threading.Lock()


def _bracket_end(pattern: str, i: int) -> int:
    """Index just past the bracket expression opening at ``i``: "]" first is literal,
    ``[:class:]``, ``[.x.]`` and ``[=x=]`` sit inside."""
    n = len(pattern)
    j = i + 1
    if j < n and pattern[j] == "^":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        if pattern[j] == "[" and j + 1 < n and pattern[j + 1] in ":.=":
            end = pattern.find(pattern[j + 1] + "]", j + 2)
            if end < 0:
                raise PatternError("unterminated character class")
            j = end + 2
            continue
        j += 2 if pattern[j] == "\\" else 1
    if j >= n:
        raise PatternError("unterminated bracket expression")
    return j + 1


def _interval(pattern: str, i: int) -> tuple[int, int]:
    """(largest count, index past "}") of the interval opening at ``i``."""
    end = pattern.find("}", i)
    body = pattern[i + 1:end] if end > 0 else ""
    lo, _, hi = body.partition(",")
    if not lo.isdigit() or not lo.isascii() or not (hi == "" or (hi.isdigit() and hi.isascii())):
        raise PatternError("'{' must start an interval {n}, {n,} or {n,m}")
    if int(lo) > MAX_REPEAT or (hi and int(hi) > MAX_REPEAT) or (hi and int(hi) < int(lo)):
        raise PatternError(f"bad interval {{{body}}} (counts up to {MAX_REPEAT})")
    return max(int(lo), int(hi or 0)), end + 1


def _check_syntax(pattern: str) -> None:
    """Refuse what is not ERE, or would be costly to compile, before the module sees it.

    The module expands counted repeats when it compiles: ``((a{255}){255}){255}`` takes
    it half a minute, with no timeout. So the scan also adds up the atoms the pattern
    expands to (a group counts its contents, an interval multiplies what it follows)
    and refuses more than :data:`MAX_EXPANSION`.
    """
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"regular expression longer than {MAX_PATTERN} characters")
    sums = [0]  # expanded size of each open group (the whole pattern at the bottom)
    last = 0  # expanded size of the atom an interval would repeat
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "{":
            count, i = _interval(pattern, i)
            sums[-1] += last * (count - 1)
            last *= count
        else:
            if c == "(":
                if pattern.startswith("(?", i):
                    raise PatternError("'(?' is not part of POSIX extended regular expressions")
                sums.append(0)
                last = 0
            elif c == ")" and len(sums) > 1:
                last = max(sums.pop(), 1)
                sums[-1] += last
            elif c in "|^$":
                last = 0
            elif c not in "*+?":
                last = 1
                sums[-1] += 1
            i = _bracket_end(pattern, i) if c == "[" else i + (2 if c == "\\" else 1)
        if sums[-1] > MAX_EXPANSION or last > MAX_EXPANSION:
            raise PatternError(f"regular expression too complex (expands to more than {MAX_EXPANSION} atoms)")


def compile_pattern(pattern: str, fold: bool) -> Any:
    """The compiled pattern (cached), or :class:`PatternError`."""
    key = (pattern, fold)
    with _cache_lock:  # delivery runs scripts on several threads
        got = _cache.get(key)
        if got is not None:
            _cache.move_to_end(key)
            return got
    _check_syntax(pattern)
    flags = _regex.POSIX | _regex.ASCII | (_regex.IGNORECASE if fold else 0)
    try:
        got = _regex.compile(pattern, flags)
    except (_regex.error, OverflowError, RecursionError, ValueError) as e:
        raise PatternError(f"bad regular expression: {e}") from None
    with _cache_lock:
        _cache[key] = got
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return got


def regex_match(value: str, key: str, comp: Comparator) -> list[str] | None:
    """``MatchType.fn`` for ``:regex``: the match variables, or None for no match."""
    try:
        compiled = compile_pattern(key, comp.casefold is not None)
    except PatternError as e:
        raise SieveRuntimeError(f":regex: {e}") from None
    deadline = _DEADLINE.get()
    left = deadline - time.monotonic() if deadline else 1.0
    if left <= 0:
        raise SieveLimitError("time limit reached in a :regex match")
    try:
        m = compiled.search(value, timeout=max(left / 2, 0.001))
    except TimeoutError:
        raise SieveLimitError(f":regex pattern {key[:60]!r} took too long") from None
    if m is None:
        return None
    return [g or "" for g in (m.group(0), *m.groups())]


def _check(c: Checker, node: Node) -> None:
    """Compile the constant keys now: a bad pattern is a compile error (§3)."""
    if node.name == "deleteheader" and node.positional and node.positional[0] is None:
        return  # editheader: only a field name was given, no patterns
    fold = node.data.get("comparator", "i;ascii-casemap") == "i;ascii-casemap"
    arg = node.positional[-1] if node.positional else None  # the key list is always last
    for s in getattr(arg, "items", None) or ([arg] if arg is not None else []):
        v = c.constant(s)
        if v is None:
            continue
        try:
            compile_pattern(v, fold)
        except PatternError as e:
            raise c.error(f":regex: {e}", s) from None


def quote_regex(s: str) -> str:
    """``:quoteregex`` (§4): a backslash before every ERE special character."""
    return "".join("\\" + ch if ch in _SPECIALS else ch for ch in s)


def _start(ctx: Context) -> None:
    # Every run, not only those that require "regex": an included script may use it.
    _DEADLINE.set(ctx.deadline)


REGISTRY.extension("regex")
REGISTRY.match_types["regex"] = MatchType("regex", regex_match, extension="regex", substring=True, check=_check)
add_modifier(Modifier("quoteregex", 20, quote_regex, extension="regex"))
on_start(_start)
