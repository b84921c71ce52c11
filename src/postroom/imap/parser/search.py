"""SEARCH criteria (RFC 3501 §6.4.4, §9 ``search-key``) into a small tree.

Nodes are tuples ``(op, ...)`` so evaluation over thousands of messages stays cheap:
``("and", [nodes])``, ``("or", a, b)``, ``("not", a)``, ``("all",)``,
``("flag", name, present)``, ``("recent", present)``, ``("new",)``, ``("seq", set)``,
``("uid", set)``, ``("larger", n)``, ``("smaller", n)``, ``("before"|"on"|"since", date)``,
``("sentbefore"|"senton"|"sentsince", date)``, ``("savedbefore"|"savedon"|"savedsince", date)``
(RFC 8514), ``("header", name, text)``,
``("body", text)``, ``("text", text)``, ``("modseq", n)`` (RFC 7162),
``("older"|"younger", seconds)`` (RFC 5032 WITHIN), ``("emailid"|"threadid", objectid)`` (RFC 8474). ``("seq"|"uid", SAVED)`` is RFC 5182's ``$``.

:func:`parse_search_return` reads RFC 4731's ``RETURN (…)`` (with RFC 5182's SAVE and RFC 5267
§4's CONTEXT, UPDATE and ``PARTIAL m:n``), which comes before the charset and the keys;
:func:`cancelupdate` RFC 5267's CANCELUPDATE arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .. import names
from ..errors import No, ParseError
from .base import Reader, canonical_flag
from .seqset import SequenceSet

Node = tuple[Any, ...]

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
_ADDRESS_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
_DATE_KEYS = {"BEFORE": "before", "ON": "on", "SINCE": "since",
              "SENTBEFORE": "sentbefore", "SENTON": "senton", "SENTSINCE": "sentsince",
              "SAVEDBEFORE": "savedbefore", "SAVEDON": "savedon", "SAVEDSINCE": "savedsince"}  # RFC 8514 §4.3
_MAX_DEPTH = 40  # bounded nesting: a hostile client cannot exhaust the stack
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")  # RFC 8474 §7 objectid


def objectid(r: Reader) -> str:
    """RFC 8474 §7: ``objectid = 1*255(ALPHA / DIGIT / "_" / "-")``."""
    m = _OBJECTID.match(r.buf, r.pos)
    end = m.end() if m else r.pos
    if m is None or (end < len(r.buf) and r.buf[end] not in b" )"):
        raise ParseError("Expected an object id")
    r.pos = end
    return m.group().decode("ascii")


def parse_search(r: Reader) -> tuple[str, Node]:
    """``[CHARSET SP astring SP] search-key *(SP search-key)`` → (charset, tree)."""
    # RFC 6855 §3: after ENABLE UTF8=ACCEPT strings are UTF-8 (SEARCH's parser refuses an
    # explicit CHARSET then; SORT and THREAD pass theirs, mandatory, through here).
    charset = "UTF-8" if names.utf8() else "US-ASCII"
    save = r.pos
    if r.take_word(b"CHARSET "):
        charset = r.astring().decode("ascii", "replace").upper()
        if charset not in SUPPORTED_CHARSETS:
            # §6.4.4: NO with [BADCHARSET] listing what we support (§7.1).
            raise No("Unsupported charset", b"BADCHARSET (" + " ".join(SUPPORTED_CHARSETS).encode() + b")")
        r.sp()
    elif r.pos != save:
        r.pos = save
    keys = [_key(r, charset, 0)]
    while not r.at_end():
        r.sp()
        keys.append(_key(r, charset, 0))
    return charset, keys[0] if len(keys) == 1 else ("and", keys)


# RFC 4731 §3 search-return-opt, RFC 5182 §3 SAVE, RFC 5267 §4 CONTEXT, UPDATE and PARTIAL.
RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL")


@dataclass(frozen=True, slots=True)
class PartialRange:
    """RFC 5267 §4.4 ``PARTIAL m:n`` (1 is the first result; ``500:400`` is ``400:500``), with
    RFC 9394 §3.1's ``-m:-n`` counted from the last result (-1). ``text`` is the range as the
    client wrote it: the PARTIAL return data echoes it."""

    first: int
    last: int
    text: bytes

    def window(self, count: int) -> slice:
        """The results the range names among ``count`` (an empty slice past the end)."""
        lo, hi = sorted((abs(self.first), abs(self.last)))
        if self.first > 0:
            return slice(min(lo - 1, count), min(hi, count))
        return slice(max(count - hi, 0), max(count - lo + 1, 0))


class ReturnOptions(tuple[str, ...]):
    """The RETURN options, in order; ``partial`` is PARTIAL's range when "PARTIAL" is one.
    A tuple, so every reader of plain options (``"ALL" in opts``) stays as it is."""

    partial: PartialRange | None = None


def _partial_range(r: Reader) -> PartialRange:
    """RFC 9394 §3.1 ``partial-range = partial-range-first / partial-range-last``: two nz-numbers,
    both positive or both negative; no "*" (RFC 5267 §4.4)."""
    start = r.pos
    neg = r.take(b"-")
    first = r.nz_number()
    r.expect(b":", "a PARTIAL range")
    if r.take(b"-") != neg:
        raise ParseError("PARTIAL range mixes positive and negative numbers")
    last = r.nz_number()
    sign = -1 if neg else 1
    return PartialRange(sign * first, sign * last, r.buf[start:r.pos])


def parse_search_return(r: Reader) -> tuple[str, ...] | None:
    """``[RETURN SP "(" [search-return-opt *(SP search-return-opt)] ")" SP]`` (RFC 4731 §3,
    RFC 4466 ``search-return-opts``) → the options, in order, without repeats; ``RETURN ()``
    means ALL (RFC 4731 §3.1). None without RETURN: the RFC 3501 SEARCH response.
    Unknown options (any RFC 4466 search-ret-opt-ext) are BAD. PARTIAL carries a range
    (``ReturnOptions.partial``); RFC 5267 §4.4: at most one PARTIAL, and not with ALL."""
    if not r.take_word(b"RETURN "):
        return None
    r.expect(b"(")
    opts: list[str] = []
    partial: PartialRange | None = None
    if not r.take(b")"):
        while True:
            word = r.keyword()
            if word not in RETURN_OPTIONS:
                raise ParseError("Unknown RETURN option")
            if word == "PARTIAL":
                if partial is not None:
                    raise ParseError("PARTIAL given twice")
                r.sp()
                partial = _partial_range(r)
            if word not in opts:
                opts.append(word)
            if r.take(b")"):
                break
            r.sp()
    r.sp()
    if partial is not None and "ALL" in opts:
        raise ParseError("PARTIAL and ALL together")
    out = ReturnOptions(opts if opts else ("ALL",))
    out.partial = partial
    return out


def cancelupdate(r: Reader) -> list[bytes]:
    """RFC 5267 §5 ``"CANCELUPDATE" 1*(SP quoted)``: the tags of the contexts to stop."""
    tags: list[bytes] = []
    while not r.at_end():
        r.sp()
        tags.append(r.quoted())
    if not tags:
        raise ParseError("Expected the tag of a context")
    return tags


def _modseq_key(r: Reader) -> int:
    """RFC 7162 §3.1.5: ``MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer``.
    Flags have one MODSEQ per message here, so the entry only has to be well formed."""
    from .condstore import mod_sequence  # condstore imports args, which imports this module

    r.sp()
    if r.peek() == 0x22:
        entry = r.quoted()
        if not entry.lower().startswith(b"/flags/"):
            raise ParseError("Unknown MODSEQ entry")
        r.sp()
        if r.keyword() not in ("PRIV", "SHARED", "ALL"):
            raise ParseError("Expected priv, shared or all")
        r.sp()
    return mod_sequence(r, zero_ok=True)


def _text(r: Reader, charset: str) -> str:
    raw = r.astring()
    try:
        return raw.decode("utf-8" if charset == "UTF-8" else "ascii")
    except UnicodeDecodeError:
        raise ParseError("Search text not valid in the given charset") from None


def _key(r: Reader, charset: str, depth: int) -> Node:
    if depth > _MAX_DEPTH:
        raise ParseError("Search nested too deeply")
    c = r.peek()
    if c == 0x28:  # "(" search-key *(SP search-key) ")"
        r.pos += 1
        keys = [_key(r, charset, depth + 1)]
        while not r.take(b")"):
            r.sp()
            keys.append(_key(r, charset, depth + 1))
        return keys[0] if len(keys) == 1 else ("and", keys)
    if c is not None and (0x30 <= c <= 0x39 or c == 0x2A or c == 0x24):  # "$": RFC 5182
        return ("seq", SequenceSet.parse(r))
    word = r.keyword()
    if word in ("ALL", "SAVEDATESUPPORTED"):  # RFC 8514 §4.3: every mailbox keeps save dates
        return ("all",)
    if word in _FLAG_KEYS:
        name, present = _FLAG_KEYS[word]
        return ("flag", name, present)
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return ("flag", canonical_flag(r.atom().decode("ascii")), word == "KEYWORD")
    if word == "NEW":
        return ("new",)
    if word in ("RECENT", "OLD"):
        return ("recent", word == "RECENT")
    if word in _ADDRESS_KEYS:
        r.sp()
        return ("header", _ADDRESS_KEYS[word], _text(r, charset))
    if word == "HEADER":
        r.sp()
        name = r.astring().decode("ascii", "replace").lower()
        r.sp()
        return ("header", name, _text(r, charset))
    if word in ("BODY", "TEXT"):
        r.sp()
        return (word.lower(), _text(r, charset))
    if word in _DATE_KEYS:
        r.sp()
        return (_DATE_KEYS[word], r.date())
    if word in ("LARGER", "SMALLER"):
        r.sp()
        return (word.lower(), r.number())
    if word == "UID":
        r.sp()
        return ("uid", SequenceSet.parse(r))
    if word in ("OLDER", "YOUNGER"):  # RFC 5032 §4: interval in seconds, nz-number
        r.sp()
        return (word.lower(), r.nz_number())
    if word == "MODSEQ":
        return ("modseq", _modseq_key(r))
    if word in ("EMAILID", "THREADID"):  # RFC 8474 §6
        r.sp()
        return (word.lower(), objectid(r))
    if word == "NOT":
        r.sp()
        return ("not", _key(r, charset, depth + 1))
    if word == "OR":
        r.sp()
        a = _key(r, charset, depth + 1)
        r.sp()
        return ("or", a, _key(r, charset, depth + 1))
    raise ParseError("Unknown search key")


def criteria_saving(r: Reader, returns: tuple[str, ...] | None,
                    parse: Callable[[Reader], tuple[str, Node]] = parse_search) -> tuple[str, Node, No | None]:
    """``parse(r)``, except that a NO (e.g. [BADCHARSET]) to a command with RETURN (SAVE) is
    handed back as a value: RFC 5182 §2.1 says it empties the saved result, which only the
    handler can reach (it does that, then refuses). SEARCH's and SORT's parsers share this."""
    try:
        charset, tree = parse(r)
    except No as exc:
        if returns is None or "SAVE" not in returns:
            raise
        r.pos = len(r.buf)
        return "US-ASCII", ("all",), exc
    return charset, tree, None
