"""SORT and THREAD arguments (RFC 5256 §5, RFC 5957 §4 DISPLAYFROM/DISPLAYTO, RFC 5267 §3 ESORT).

``sort = ["UID" SP] "SORT" [SP "RETURN" SP "(" opts ")"] SP sort-criteria SP search-criteria``
(the RETURN options are SEARCH's, ``parse_search_return``: MIN, MAX, ALL, COUNT, SAVE, and
RFC 5267 §4's CONTEXT, UPDATE, PARTIAL) where the
search criteria begin with a mandatory charset; ``thread = ["UID" SP] "THREAD" SP
thread-alg SP search-criteria``. The criteria themselves go through the SEARCH
parser (``parse_search``), given the charset as SEARCH's ``CHARSET`` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import No, ParseError
from .base import Reader
from .search import SUPPORTED_CHARSETS, Node, criteria_saving, parse_search, parse_search_return

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


@dataclass(frozen=True, slots=True)
class SortArgs:
    keys: tuple[tuple[str, bool], ...]  # (key, reverse)
    charset: str
    criteria: Node
    returns: tuple[str, ...] | None = None  # RFC 5267 ESORT RETURN options; None: plain SORT
    refused: No | None = None  # a NO met while parsing a SORT RETURN (SAVE): see handlers/sort.py


@dataclass(frozen=True, slots=True)
class ThreadArgs:
    algorithm: str
    charset: str
    criteria: Node


def _criteria(r: Reader) -> tuple[str, Node]:
    """``charset SP search-key *(SP search-key)`` to the end of the command."""
    charset = r.astring().decode("ascii", "replace").upper()
    if charset not in SUPPORTED_CHARSETS:
        # RFC 5256 §3: NO [BADCHARSET] for a charset we do not support (RFC 3501 §7.1).
        raise No("Unsupported charset", b"BADCHARSET (" + " ".join(SUPPORTED_CHARSETS).encode() + b")")
    r.sp()
    if r.at_end():
        raise ParseError("Expected search criteria")
    # SEARCH's own parser, with the charset as its CHARSET prefix (literals are inline).
    sub = Reader(b"CHARSET " + charset.encode() + b" " + r.buf[r.pos:])
    _, tree = parse_search(sub)
    r.pos = len(r.buf)
    return charset, tree


def sort(r: Reader) -> SortArgs:
    r.sp()
    returns = parse_search_return(r)  # RFC 5267 §3: before the sort criteria
    r.expect(b"(", "a sort criteria list")
    keys: list[tuple[str, bool]] = []
    reverse = False
    while True:
        word = r.keyword()
        if word == "REVERSE":
            if reverse:
                raise ParseError("REVERSE twice")
            reverse = True
            r.sp()
            continue
        if word not in SORT_KEYS:
            raise ParseError("Unknown sort key")
        keys.append((word, reverse))
        reverse = False
        if r.take(b")"):
            break
        r.sp()
        if len(keys) > 32:
            raise ParseError("Too many sort keys")
    r.sp()
    charset, tree, refused = criteria_saving(r, returns, _criteria)
    return SortArgs(tuple(keys), charset, tree, returns, refused)


def thread(r: Reader) -> ThreadArgs:
    r.sp()
    alg = r.keyword()
    if alg not in THREAD_ALGORITHMS:
        raise ParseError("Unknown threading algorithm")
    r.sp()
    charset, tree = _criteria(r)
    return ThreadArgs(alg, charset, tree)
