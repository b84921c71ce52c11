"""Arguments of GETMETADATA and SETMETADATA (RFC 5464 §4.2, §4.3; formal syntax §5).

Entry names are checked here (§3.2, :func:`~postroom.storage.api.metadata_name_problem`):
a bad one is a syntax error, ``BAD``, as Dovecot answers. They are returned lower-case,
since entry names are case-insensitive, which is how the store keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...storage.api import metadata_name_problem
from ..errors import ParseError
from .args import mailbox_name
from .base import Reader

#: DEPTH infinity (§4.2.2); 0 and 1 are themselves.
INFINITY = None
#: Entry names one GETMETADATA may ask for: each costs a lookup, and a client needs a few.
MAX_GET_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class GetMetadataArgs:
    mailbox: str  # "": the server's entries (§4.2)
    entries: tuple[str, ...]  # lower-case, in the order asked, each once
    maxsize: int | None = None  # §4.2.1 MAXSIZE: longer values are left out (LONGENTRIES)
    depth: int | None = 0  # §4.2.2 DEPTH: 0, 1 or None for infinity


@dataclass(frozen=True, slots=True)
class SetMetadataArgs:
    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...]  # (lower-case name, value; None removes)


def entry_name(r: Reader) -> str:
    """entry = astring ; slash-separated path to entry, MUST NOT contain "*" or "%" (§5)."""
    raw = r.astring()
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ParseError("Entry name must be printable US-ASCII") from None
    problem = metadata_name_problem(name)
    if problem is not None:
        raise ParseError(problem)
    return name.lower()


def _options(r: Reader) -> tuple[int | None, int | None]:
    """getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"
    getmetadata-option = maxsize-opt / scope-opt
    maxsize-opt = "MAXSIZE" SP number; scope-opt = "DEPTH" SP ("0" / "1" / "infinity")"""
    seen: dict[str, int | None] = {}

    def option() -> None:
        name = r.keyword()
        if name in seen:
            raise ParseError(f"{name} given twice")
        r.sp()
        if name == "MAXSIZE":
            seen[name] = r.number()
        elif name == "DEPTH":
            if r.take_word(b"INFINITY"):
                seen[name] = INFINITY
            elif r.take(b"0") or r.take(b"1"):
                seen[name] = int(r.buf[r.pos - 1:r.pos])
            else:
                raise ParseError("DEPTH must be 0, 1 or infinity")
        else:
            raise ParseError("Unknown GETMETADATA option")

    r.paren_list(option)
    if not seen:
        raise ParseError("Empty GETMETADATA options")
    return seen.get("MAXSIZE"), seen.get("DEPTH", 0)


def _options_follow(r: Reader) -> bool:
    # After the mailbox, "(" starts the entry list unless an option name follows: entry
    # names start with "/" (or are strings), so the two never look alike.
    rest = r.buf[r.pos + 1:r.pos + 9].upper()
    return r.peek_is(b"(") and rest.startswith((b"MAXSIZE ", b"DEPTH "))


def getmetadata(r: Reader) -> GetMetadataArgs:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    entries = entry / "(" entry *(SP entry) ")"

    The options are also taken after the mailbox, where RFC 5464's own examples put
    them before errata 1691/1692 (older clients copied the examples)."""
    r.sp()
    maxsize: int | None = None
    depth: int | None = 0
    given = False
    if r.peek_is(b"("):
        maxsize, depth = _options(r)
        given = True
        r.sp()
    mailbox = mailbox_name(r.astring())
    r.sp()
    if not given and _options_follow(r):
        maxsize, depth = _options(r)
        r.sp()
    if r.peek_is(b"("):
        names = r.paren_list(lambda: entry_name(r))
        if not names:
            raise ParseError("Expected at least one entry name")
        if len(names) > MAX_GET_ENTRIES:
            raise ParseError(f"At most {MAX_GET_ENTRIES} entry names")
    else:
        names = [entry_name(r)]
    r.end()
    return GetMetadataArgs(mailbox, tuple(dict.fromkeys(names)), maxsize, depth)


def _value(r: Reader) -> bytes | None:
    """value = nstring / literal8 (§5): literal8 (``~{n}``) carries NULs (RFC 3516 §4.2)."""
    if r.peek_is(b"~"):
        return r.literal8()
    if r.take_word(b"NIL"):
        return None
    return r.string()


def setmetadata(r: Reader) -> SetMetadataArgs:
    """setmetadata = "SETMETADATA" SP mailbox SP "(" entry-value *(SP entry-value) ")"
    entry-value = entry SP value

    An entry set has at least two components, four under "vendor" (§3.2: ``/shared/
    vendor/<vendor-token>/...``); "/private" or "/private/vendor/x" alone are roots that
    GETMETADATA may ask for with DEPTH, not entries that hold a value."""
    r.sp()
    mailbox = mailbox_name(r.astring())
    r.sp()

    def entry_value() -> tuple[str, bytes | None]:
        name = entry_name(r)
        parts = name.split("/")[1:]
        if len(parts) < 2 or (parts[1] == "vendor" and len(parts) < 4):
            raise ParseError("Entry name needs more components (RFC 5464 §3.2)")
        r.sp()
        return name, _value(r)

    entries = r.paren_list(entry_value)
    if not entries:
        raise ParseError("Expected at least one entry and value")
    r.end()
    return SetMetadataArgs(mailbox, tuple(entries))
