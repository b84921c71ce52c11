"""The message as tests see it: header fields (decoded, RFC 5228 §2.7.2), addresses
(§2.7.4), size and body, computed lazily from the raw octets.

The field list is mutable so that editheader (RFC 5293) can change what later tests see;
:meth:`MessageView.edited` gives the message after those edits.

Cost at delivery: the header block is indexed by lowercased name once, straight from the
raw octets (no MIME walk: the tree is parsed only when a body or mime test asks for
:attr:`MessageView.parsed`; no :class:`Field` records until editheader, mime or
:meth:`MessageView.edited` asks for :attr:`MessageView.fields`); each header's decoded
values and parsed addresses are kept per name, so thirty rules testing ``from`` parse it
once, and :attr:`MessageView.memo` keeps what compiled tests derive from them. Every
cache is derived from the fields and dropped by :meth:`MessageView.touch`, which whoever
changes the fields (editheader) must call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from postroom.mime.addresses import (
    MISSING_DOMAIN,
    MISSING_MAILBOX,
    SYNTAX_ERROR,
    parse_address_list,
)
from postroom.mime.decode import decode_header_value
from postroom.mime.headers import header_end, split_header
from postroom.mime.imapfmt import unfold_nolf
from postroom.mime.model import ParsedMessage
from postroom.mime.parse import parse

__all__ = ["Addr", "Field", "MessageView", "addresses_of", "parse_addresses"]


@dataclass(slots=True)
class Field:
    name: str  # as written
    value: bytes  # raw value: after the colon, leading blanks removed, folding kept
    added: bool = False  # added by editheader during this run
    #: The field's original octets (name to line end), reused as they are by
    #: :meth:`MessageView.edited`; None for a new field (editheader leaves it None).
    original: bytes | None = None


@dataclass(frozen=True, slots=True)
class Addr:
    """One mailbox of an address header: ``domain`` None when the address has none."""

    local: str
    domain: str | None
    raw: str  # the whole address as written (local@domain), for :all


def parse_addresses(value: bytes) -> list[Addr]:
    """The mailboxes in an address-list value; group markers skipped (RFC 5228 §2.7.4:
    "group" syntax contributes only its member addresses)."""
    out: list[Addr] = []
    for a in parse_address_list(value):
        if a.mailbox is None or a.host is None:  # group start/end markers (IMAP ENVELOPE style)
            continue
        if a.mailbox == MISSING_MAILBOX and a.host == MISSING_DOMAIN:  # "<>"
            continue
        local = a.mailbox if a.mailbox != MISSING_MAILBOX else ""
        if a.host == MISSING_DOMAIN:
            out.append(Addr(local, None, local))
        elif a.host == SYNTAX_ERROR:
            continue
        else:
            out.append(Addr(local, a.host, f"{local}@{a.host}"))
    return out


#: Raw field name → lowercased name (the few dozen names real mail uses, decoded once per
#: process). Bounded: a sender may invent names, so the table is emptied when full.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 4096


def _low_name(name: bytes) -> str:
    low = _NAMES.get(name)
    if low is None:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        low = _NAMES[name] = name.rstrip(b" \t").decode("utf-8", "replace").lower()
    return low


def _index_block(raw: bytes, start: int) -> dict[str, list[bytes]]:
    """Lowercased name → raw values of the header block at ``start``: exactly the fields
    and values ``split_header`` finds (same units, same trimming), without building its
    field records.

    Why not ``split_header``'s pattern: this runs for every filtered delivery, and one
    ``split`` of the block plus a loop over its lines (names lowercased once per process)
    takes about a fifth less than the pattern's ``findall`` with its four groups per field
    and the loop over those. The units are the pattern's: a line with a
    colon starts a field, the lines after it that start with a blank continue it (RFC 5322
    §2.2.3; folding kept in the value), and any other line (no colon) is skipped, so a
    blank-led line after a skipped one starts a unit of its own. A block without a final
    line break (a message that is all header) goes the general way."""
    # The end: the first CRLF empty line ("\n\r\n"), unless an LF one ("\n\n") comes
    # first, which the loop below meets as an empty line and stops at. That spares
    # ``header_end``'s search for "\n\n" (a two-octet search of the whole block that costs
    # about as much as the rest of the split); blocks without a CRLF empty line, or that
    # start with one, go its way.
    cand = raw.find(b"\n\r\n", start)
    if cand < 0 or raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start):
        cand = header_end(raw, start, len(raw))[0] - 1
    block = raw[start:cand + 1]
    index: dict[str, list[bytes]] = {}
    if not block.endswith(b"\n"):
        if block:
            for f in split_header(raw, start, len(raw))[0]:
                index.setdefault(_low_name(f.name), []).append(f.value)
        return index
    low: str | None = None  # the open field's name, None while no field is open
    value = b""  # its first line's value
    more: list[bytes] | None = None  # its lines when it has continuation lines
    names = _NAMES
    lines = block.split(b"\n")
    lines.pop()  # the empty string after the block's last line break
    for line in lines:
        if low is not None:
            first = line[:1]
            if first == b" " or first == b"\t":
                if more is None:
                    more = [value, line]
                else:
                    more.append(line)
                continue
            v = value if more is None else b"\n".join(more)
            if v[-1:] == b"\r":  # the line break's CR: every line here had its LF
                v = v[:-1]
            got = index.get(low)
            if got is None:
                index[low] = [v.lstrip(b" \t")]
            else:
                got.append(v.lstrip(b" \t"))
            more = None
        if not line:  # an LF empty line before the CRLF one: the end of the block
            low = None
            break
        name, colon, value = line.partition(b":")
        low = (names.get(name) or _low_name(name)) if colon else None
    if low is not None:
        v = value if more is None else b"\n".join(more)
        if v[-1:] == b"\r":
            v = v[:-1]
        index.setdefault(low, []).append(v.lstrip(b" \t"))
    return index


def decode_value(value: bytes) -> str:
    """A header value as Sieve tests see it: unfolded, RFC 2047 words decoded, outer
    whitespace removed (``unfold_nolf`` returns a one-line value as it is, with no copy)."""
    return decode_header_value(value).strip(" \t")


@lru_cache(maxsize=2048)
def addresses_of(value: bytes) -> tuple[Addr, ...]:
    """:func:`parse_addresses` of a raw field value, kept: the same From, To and Cc values
    come with message after message (a colleague, a list, the user's own address), and
    parsing one costs more than the rest of an address test."""
    return tuple(parse_addresses(value))


class MessageView:
    def __init__(self, raw: bytes, parsed: ParsedMessage | None = None) -> None:
        self.raw = raw
        self._parsed = parsed
        self._fields: list[Field] | None = None
        self._decoded: dict[str, list[str]] = {}
        #: Lowercased name → the raw values of that name's fields, in order (built on first use).
        self._index: dict[str, list[bytes]] | None = None
        #: Lowercased name → the mailboxes of each of that name's fields (RFC 5228 §2.7.4).
        self._addresses: dict[str, list[list[Addr]]] = {}
        #: What compiled tests derive from the fields (values in comparator form, address
        #: parts), keyed by what they were made from; dropped with the other caches.
        self.memo: dict[tuple[Any, ...], Any] = {}
        self.changed = False

    def touch(self) -> None:
        """Call after changing :attr:`fields` (editheader): drops the per-name index, the
        decoded values and the parsed addresses, and makes ``Result.edited`` carry the
        rewritten message."""
        self._decoded.clear()
        self._index = None
        self._addresses.clear()
        self.memo.clear()
        self.changed = True

    @property
    def parsed(self) -> ParsedMessage:
        if self._parsed is None:
            self._parsed = parse(self.raw)  # never raises (postroom.mime.parse)
        return self._parsed

    @property
    def fields(self) -> list[Field]:
        if self._fields is None:
            raw = self.raw
            # The top-level header block is all header/address tests need: split it
            # directly (what parse() does for the root entity) instead of walking the MIME tree.
            start = self._parsed.root.header_start if self._parsed is not None else 0
            found, _ = split_header(raw, start, len(raw))
            self._fields = [Field(f.name.decode("utf-8", "replace"), f.value, original=raw[f.start:f.end])
                            for f in found]
        return self._fields

    def _by_name(self) -> dict[str, list[bytes]]:
        index = self._index
        if index is None:
            if self._fields is None:
                # Nobody needs Field objects yet (only editheader, mime and edited() do):
                # index the raw values straight from the block, half the work.
                start = self._parsed.root.header_start if self._parsed is not None else 0
                index = _index_block(self.raw, start)
            else:
                index = {}
                for f in self._fields:
                    index.setdefault(f.name.lower(), []).append(f.value)
            self._index = index
        return index

    def index(self) -> dict[str, list[bytes]]:
        """Lowercased name → the raw values of that name's fields, in order; callers must
        not change it."""
        return self._index if self._index is not None else self._by_name()

    def values_of(self, low: str) -> list[str]:
        """:meth:`values` for a lowercased name, without the copy: callers must not change
        the list."""
        got = self._decoded.get(low)
        if got is None:
            fields = (self._index if self._index is not None else self._by_name()).get(low, ())
            got = self._decoded[low] = [decode_value(v) for v in fields]
        return got

    @property
    def size(self) -> int:
        """RFC 5228 §5.9: the message size in octets."""
        return len(self.raw)

    def raw_values(self, name: str) -> list[bytes]:
        return list(self._by_name().get(name.lower(), ()))

    def values(self, name: str) -> list[str]:
        """Decoded values (RFC 2047 words decoded, unfolded, outer whitespace removed),
        each field decoded once per message."""
        return list(self.values_of(name.lower()))

    def addresses(self, name: str) -> list[list[Addr]]:
        """The mailboxes of each field named ``name``, one list per field in field order
        (``:index`` picks fields, then every address of the picked ones counts). Parsed
        once per name; callers must not change the lists."""
        low = name.lower()
        got = self._addresses.get(low)
        if got is None:
            got = self._addresses[low] = [list(addresses_of(v)) for v in self._by_name().get(low, ())]
        return got

    def unfolded(self, name: str) -> list[str]:
        """Values unfolded but not RFC 2047-decoded (for addresses and dates)."""
        return [unfold_nolf(v).decode("utf-8", "replace").strip(" \t") for v in self._by_name().get(name.lower(), ())]

    def has(self, name: str) -> bool:
        return name.lower() in self._by_name()

    @property
    def body_start(self) -> int:
        if self._parsed is not None:
            return self._parsed.root.body_start
        return header_end(self.raw, 0, len(self.raw))[1]

    def edited(self) -> bytes:
        """The message with the current header fields (after editheader changes)."""
        parts = []
        for f in self.fields:
            if f.original is not None:
                parts.append(f.original if f.original.endswith(b"\n") else f.original + b"\r\n")
            else:
                parts.append(f.name.encode("utf-8", "surrogateescape") + b": " + f.value + b"\r\n")
        return b"".join(parts) + b"\r\n" + self.raw[self.body_start:]
