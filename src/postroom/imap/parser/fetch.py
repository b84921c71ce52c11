"""FETCH attributes (RFC 3501 §6.4.5, §9 ``fetch-att``)."""

from __future__ import annotations

import re

from dataclasses import dataclass

from ..errors import ParseError
from .base import Reader


@dataclass(frozen=True, slots=True)
class BodySection:
    """``BODY[part.text]<start.length>``; ``text`` is HEADER, HEADER.FIELDS,
    HEADER.FIELDS.NOT, TEXT, MIME or None (the whole part)."""

    peek: bool
    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[bytes, ...] = ()
    partial: tuple[int, int] | None = None
    # How the response names it: RFC822 / RFC822.HEADER / RFC822.TEXT for the old forms.
    alias: str | None = None
    # RFC 3516: "BINARY" (the part with its Content-Transfer-Encoding removed) or
    # "BINARY.SIZE" (that data's size); section-binary is part numbers only.
    kind: str = "BODY"

    def spec(self) -> bytes:
        """The section spec as echoed in the response (§7.4.2), without <length>."""
        parts = [".".join(map(str, self.part))] if self.part else []
        if self.text:
            parts.append(self.text)
        s = ".".join(parts).encode()
        if self.fields:
            s += b" (" + b" ".join(self.fields) + b")"
        return s

    def response_name(self) -> bytes:
        if self.alias:
            return self.alias.encode()
        name = self.kind.encode() + b"[" + self.spec() + b"]"
        if self.partial is not None:
            name += b"<%d>" % self.partial[0]
        return name

    @property
    def sets_seen(self) -> bool:
        # §6.4.5: BODY[...] sets \Seen, BODY.PEEK and RFC822.HEADER do not; RFC 3516 §4.2:
        # so does BINARY[...], BINARY.PEEK and BINARY.SIZE do not.
        return not self.peek

    @property
    def binary(self) -> bool:
        return self.kind != "BODY"


# Simple attributes; the macros expand per §6.4.5.
SIMPLE = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY", "BODYSTRUCTURE", "UID",
          "MODSEQ",  # RFC 7162 §3.1.4
          "SAVEDATE",  # RFC 8514 §4.2
          "EMAILID", "THREADID"}  # RFC 8474 §5
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}

FetchAtt = str | BodySection


def parse_fetch_atts(r: Reader) -> list[FetchAtt]:
    """fetch-args = "ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")" """
    if r.peek() == 0x28:
        atts = r.paren_list(lambda: _fetch_att(r))
        if not atts:
            raise ParseError("Empty FETCH attribute list")
        return atts
    save = r.pos
    word = r.keyword() if r.peek() not in (None, 0x28) else ""
    if word in MACROS:
        return list(MACROS[word])
    r.pos = save
    return [_fetch_att(r)]


_ATT_NAME = re.compile(rb"[A-Za-z0-9.]*")


def _fetch_att(r: Reader) -> FetchAtt:
    # Atoms stop at "[" only if we look for it: read ASCII letters, dots and digits
    # (not str.isalnum(): "\xff" is a letter in Latin-1 and would reach the decode).
    m = _ATT_NAME.match(r.buf, r.pos)
    assert m is not None  # the pattern matches the empty string
    r.pos = m.end()
    name = m.group().decode("ascii").upper()
    if not name:
        raise ParseError("Expected a FETCH attribute")
    if name in ("BODY", "BODY.PEEK") and r.peek() == 0x5B:  # "["
        return _section(r, peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        return _binary_section(r, name)
    if name == "RFC822":
        return BodySection(peek=False, alias="RFC822")
    if name == "RFC822.HEADER":
        return BodySection(peek=True, text="HEADER", alias="RFC822.HEADER")
    if name == "RFC822.TEXT":
        return BodySection(peek=False, text="TEXT", alias="RFC822.TEXT")
    if name in SIMPLE:
        return name
    raise ParseError("Unknown FETCH attribute")


def _section(r: Reader, peek: bool) -> BodySection:
    r.expect(b"[")
    part: list[int] = []
    text: str | None = None
    fields: tuple[bytes, ...] = ()
    if not r.take(b"]"):
        while r.peek() is not None and 0x30 <= r.peek() <= 0x39:  # type: ignore[operator]
            part.append(r.nz_number())
            if not r.take(b"."):
                break
        if r.peek() != 0x5D:  # "]"
            word = r.atom().decode("ascii").upper()
            if word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                r.sp()
                fields = tuple(f.upper() for f in r.paren_list(r.astring))
                if not fields:
                    raise ParseError("Empty header list")
            elif word == "MIME":
                if not part:
                    raise ParseError("MIME needs a part number")  # §6.4.5
            elif word not in ("HEADER", "TEXT"):
                raise ParseError("Unknown section")
            text = word
        elif part and r.buf[r.pos - 1] == 0x2E:
            raise ParseError("Bad section")
        r.expect(b"]")
    return BodySection(peek=peek, part=tuple(part), text=text, fields=fields, partial=_partial(r))


def _partial(r: Reader) -> tuple[int, int] | None:
    """partial = "<" number "." nz-number ">" """
    if not r.take(b"<"):
        return None
    start = r.number()
    r.expect(b".")
    length = r.nz_number()
    r.expect(b">")
    return start, length


def _binary_section(r: Reader, name: str) -> BodySection:
    """RFC 3516 §6: "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary;
    section-binary = "[" [section-part] "]" (no HEADER, TEXT or MIME)."""
    r.expect(b"[")
    part: list[int] = []
    if not r.take(b"]"):
        part.append(r.nz_number())
        while r.take(b"."):
            part.append(r.nz_number())
        r.expect(b"]")
    if name == "BINARY.SIZE":
        return BodySection(peek=True, part=tuple(part), kind="BINARY.SIZE")
    return BodySection(peek=name == "BINARY.PEEK", part=tuple(part), partial=_partial(r), kind="BINARY")
