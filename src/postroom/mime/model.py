"""The stored result of parsing a message: a tree of parts with byte offsets, never changed.

Everything IMAP needs later (ENVELOPE, BODY/BODYSTRUCTURE, BODY[section]
offsets) is computed once at delivery and kept here, so FETCH never re-parses.
Strings are ``str`` made with ``bytes.decode('utf-8', 'surrogateescape')``:
undecodable 8-bit octets survive as lone surrogates and are turned back into
the exact original octets by :func:`postroom.mime.imapfmt.to_bytes`.
Serialize :meth:`ParsedMessage.to_json` with ``json.dumps`` default
``ensure_ascii=True`` (lone surrogates are then written as ``\\udcXX``).

The classes are slotted dataclasses but not ``frozen``: a frozen dataclass's
``__init__`` sets every field through ``object.__setattr__``, and with a Part of
21 fields that was a quarter of the parse at every delivery (21 -> 16 us for a
10 KB message, see docs/storage.md "CPU per delivery"). They are still treated
as immutable (trees are shared by the IMAP structure cache): derive a changed
one with ``dataclasses.replace``, never assign. ``unsafe_hash`` keeps them
hashable by value, as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Address", "Envelope", "Part", "ParsedMessage", "FORMAT_VERSION"]

#: Bumped when the stored JSON shape or parse rules change; the store can re-parse older rows.
#: 2: a body part after a nested multipart no longer takes the line break before the next
#: delimiter (an id() reuse in the parser gave it that line break in version 1).
#: (Leaving out keys at their default, in to_json, did not bump it: from_json of every
#: version reads both forms alike.)
FORMAT_VERSION = 2

Params = tuple[tuple[str, str], ...]


@dataclass(slots=True, unsafe_hash=True)
class Address:
    """One ENVELOPE address (RFC 9051 §7.5.2 ``address``).

    Group syntax (RFC 5322 §3.4) is kept the IMAP way: a group start is
    ``Address(None, None, "name", None)`` and its end ``Address(None, None, None, None)``.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    def to_json(self) -> list[str | None]:
        return [self.name, self.adl, self.mailbox, self.host]

    @classmethod
    def from_json(cls, d: list[str | None]) -> Address:
        return cls(d[0], d[1], d[2], d[3])


_ADDR_FIELDS = ("from_", "sender", "reply_to", "to", "cc", "bcc")


def _addrs_json(v: tuple[Address, ...]) -> list[list[str | None]]:
    """``[a.to_json() for a in v]``, inlined."""
    return [[a.name, a.adl, a.mailbox, a.host] for a in v]


@dataclass(slots=True, unsafe_hash=True)
class Envelope:
    """Raw (undecoded, unfolded later) header values for ENVELOPE; None when absent.

    Address fields hold None when the header is absent, so :func:`envelope` can
    apply the RFC 9051 §7.5.2 defaults (Sender/Reply-To fall back to From).
    """

    date: str | None = None
    subject: str | None = None
    from_: tuple[Address, ...] | None = None
    sender: tuple[Address, ...] | None = None
    reply_to: tuple[Address, ...] | None = None
    to: tuple[Address, ...] | None = None
    cc: tuple[Address, ...] | None = None
    bcc: tuple[Address, ...] | None = None
    in_reply_to: str | None = None
    message_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Only the fields present: from_json takes a missing key as None (see Part.to_json).
        d: dict[str, Any] = {}
        if self.date is not None:
            d["date"] = self.date
        if self.subject is not None:
            d["subject"] = self.subject
        if self.in_reply_to is not None:
            d["in_reply_to"] = self.in_reply_to
        if self.message_id is not None:
            d["message_id"] = self.message_id
        if self.from_ is not None:
            d["from_"] = _addrs_json(self.from_)
        if self.sender is not None:
            d["sender"] = _addrs_json(self.sender)
        if self.reply_to is not None:
            d["reply_to"] = _addrs_json(self.reply_to)
        if self.to is not None:
            d["to"] = _addrs_json(self.to)
        if self.cc is not None:
            d["cc"] = _addrs_json(self.cc)
        if self.bcc is not None:
            d["bcc"] = _addrs_json(self.bcc)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Envelope:
        kw: dict[str, Any] = {n: d.get(n) for n in ("date", "subject", "in_reply_to", "message_id")}
        for name in _ADDR_FIELDS:
            v = d.get(name)
            kw[name] = None if v is None else tuple(Address.from_json(a) for a in v)
        return cls(**kw)


@dataclass(slots=True, unsafe_hash=True)
class Part:
    """One MIME entity.  Offsets index the raw message bytes.

    ``header_start <= body_start <= body_end``.  The header block is
    ``raw[header_start:body_start]`` and includes the blank line that ends it
    (when there is one); the body is ``raw[body_start:body_end]``.  Per RFC 2046
    §5.1.1 the line break before a boundary delimiter belongs to the delimiter,
    so it is not part of the preceding body.

    ``type``/``subtype`` are lowercased for matching; ``type_wire``/``subtype_wire``
    keep the spelling the sender used because Dovecot echoes it in BODYSTRUCTURE.
    ``params`` are decoded (names lowercased, RFC 2231 continuations joined and
    charsets decoded); ``params_wire`` are what BODYSTRUCTURE sends (RFC 2231
    parameters merged but still %-encoded, as Dovecot does).
    """

    header_start: int
    body_start: int
    body_end: int
    type: str = "text"
    subtype: str = "plain"
    type_wire: str = "text"
    subtype_wire: str = "plain"
    params: Params = ()
    params_wire: Params = ()
    content_id: str | None = None
    description: str | None = None
    encoding: str | None = None
    md5: str | None = None
    disposition: str | None = None
    disposition_params: Params = ()
    disposition_params_wire: Params = ()
    language: tuple[str, ...] | None = None
    location: str | None = None
    lines: int = 0
    #: Set on message-level parts: the root and the part embedded in a message/rfc822.
    envelope: Envelope | None = None
    #: Multipart children, or the single embedded message of a message/rfc822 part.
    children: tuple[Part, ...] = field(default=())

    @property
    def header_end(self) -> int:
        """End of the header block (same offset as :attr:`body_start`)."""
        return self.body_start

    @property
    def size(self) -> int:
        """Body size in octets, as BODYSTRUCTURE reports it (RFC 9051 ``body-fld-octets``)."""
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def is_message(self) -> bool:
        """True for message/rfc822 (and message/global, RFC 6532 §3.5) parts with an embedded message."""
        return self.type == "message" and self.subtype in ("rfc822", "global") and len(self.children) == 1

    @property
    def charset(self) -> str | None:
        return self.param("charset")

    def param(self, name: str) -> str | None:
        """Decoded Content-Type parameter (case-insensitive name), first occurrence."""
        name = name.lower()
        for k, v in self.params:
            if k == name:
                return v
        return None

    def walk(self) -> list[Part]:
        """This part and all descendants, depth first (document order)."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def to_json(self) -> dict[str, Any]:
        # Spelled out because it runs at every delivery. Optional fields at their default
        # (None, no parameters, no children) are left out, and from_json gives them their
        # default back: a simple message's JSON is then half the full form (599 -> 306
        # octets for bench/store.py's), which is less to serialise, to write to the
        # database's log and to load at FETCH. from_json has always accepted missing keys,
        # so rows in either form read back the same, in this version and the ones before.
        d: dict[str, Any] = {
            "header_start": self.header_start,
            "body_start": self.body_start,
            "body_end": self.body_end,
            "type": self.type,
            "subtype": self.subtype,
            "type_wire": self.type_wire,
            "subtype_wire": self.subtype_wire,
            "lines": self.lines,
        }
        if self.params:
            d["params"] = [list(p) for p in self.params]
        if self.params_wire:
            d["params_wire"] = [list(p) for p in self.params_wire]
        if self.content_id is not None:
            d["content_id"] = self.content_id
        if self.description is not None:
            d["description"] = self.description
        if self.encoding is not None:
            d["encoding"] = self.encoding
        if self.md5 is not None:
            d["md5"] = self.md5
        if self.disposition is not None:
            d["disposition"] = self.disposition
        if self.disposition_params:
            d["disposition_params"] = [list(p) for p in self.disposition_params]
        if self.disposition_params_wire:
            d["disposition_params_wire"] = [list(p) for p in self.disposition_params_wire]
        if self.language is not None:
            d["language"] = list(self.language)
        if self.location is not None:
            d["location"] = self.location
        if self.envelope is not None:
            d["envelope"] = self.envelope.to_json()
        if self.children:
            d["children"] = [c.to_json() for c in self.children]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Part:
        kw = dict(d)
        env = kw.get("envelope")
        kw["envelope"] = None if env is None else Envelope.from_json(env)
        kw["children"] = tuple(cls.from_json(c) for c in kw.get("children", ()))
        for name in ("params", "params_wire", "disposition_params", "disposition_params_wire"):
            kw[name] = tuple((str(a), str(b)) for a, b in kw.get(name, ()))
        lang = kw.get("language")
        kw["language"] = None if lang is None else tuple(lang)
        return cls(**kw)


@dataclass(slots=True, unsafe_hash=True)
class ParsedMessage:
    """A parsed message: the root part plus the raw size it was parsed from."""

    root: Part
    size: int
    version: int = FORMAT_VERSION

    @property
    def envelope(self) -> Envelope:
        return self.root.envelope or Envelope()

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "size": self.size, "root": self.root.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParsedMessage:
        return cls(root=Part.from_json(d["root"]), size=int(d["size"]), version=int(d.get("version", 1)))
