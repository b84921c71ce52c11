"""``parse(raw)``: one pass over the raw octets, building the :class:`Part` tree.

Boundaries are found on bytes so every part keeps exact offsets (RFC 2046
§5.1.1).  Nothing here raises on bad input: limits cut recursion short and any
unexpected error falls back to a single text/plain part over the whole message.
"""

from __future__ import annotations

from .addresses import parse_address_list
from .headers import (
    HeaderField,
    b2s,
    first_token,
    parse_content_type,
    parse_disposition,
    parse_language,
    split_header,
)
from dataclasses import replace

from .model import Envelope, ParsedMessage, Part

__all__ = ["parse", "MAX_DEPTH", "MAX_PARTS"]

#: Nesting limit (multipart and message/rfc822 levels); deeper content is kept as an opaque body.
MAX_DEPTH = 50
#: Total part limit, so a hostile message cannot make the stored JSON huge.
MAX_PARTS = 5000

_ENVELOPE_STRINGS = {b"date": "date", b"subject": "subject", b"in-reply-to": "in_reply_to",
                     b"message-id": "message_id"}
_ENVELOPE_ADDRS = {b"from": "from_", b"sender": "sender", b"reply-to": "reply_to", b"to": "to",
                   b"cc": "cc", b"bcc": "bcc"}


def parse(raw: bytes) -> ParsedMessage:
    """Parse a whole message.  Never raises; see module docstring."""
    raw = bytes(raw)
    try:
        root = _Parser(raw).entity(0, len(raw), message_level=True, default_rfc822=False, depth=0)
    except Exception:  # noqa: BLE001 - garbage in must never become a traceback at delivery
        _fields, body = split_header(raw, 0, len(raw))
        root = Part(0, body, len(raw), lines=raw.count(b"\n", body), envelope=Envelope())
    return ParsedMessage(root=root, size=len(raw))


def _envelope(fields: list[HeaderField]) -> Envelope:
    """RFC 9051 §7.5.2 ENVELOPE fields; the last occurrence wins (as in Dovecot)."""
    kw: dict[str, object] = {}
    for f in fields:
        n = f.name.lower()
        if n in _ENVELOPE_STRINGS:
            kw[_ENVELOPE_STRINGS[n]] = b2s(f.value)
        elif n in _ENVELOPE_ADDRS:
            addrs = parse_address_list(f.value)
            # An empty header is as good as absent, so Reply-To: falls back to From.
            kw[_ENVELOPE_ADDRS[n]] = addrs or None
    return Envelope(**kw)  # type: ignore[arg-type]


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts = 0
        #: Parts whose close delimiter line ends exactly at their end (see _extend), by id().
        #: The dict holds the parts so that their ids are not reused: _extend replaces a part,
        #: and a freed part's id may come back for the next sibling (which then wrongly took
        #: the line break before the following delimiter).
        self.closed_at_end: dict[int, Part] = {}

    def _extend(self, part: Part, end: int) -> Part:
        """Give back the line break the parent took for its delimiter.

        RFC 2046 §5.1.1 gives the CRLF before a delimiter to the delimiter, but
        when that CRLF is also the end of a nested multipart's close-delimiter
        line, Dovecot counts it in the nested part; we do the same so sizes match.
        """
        kids = part.children
        if part.is_message:
            kids = (self._extend(kids[0], end),)
        return replace(part, body_end=end, lines=self.raw.count(b"\n", part.body_start, end), children=kids)

    def entity(self, start: int, end: int, *, message_level: bool, default_rfc822: bool, depth: int) -> Part:
        raw = self.raw
        self.parts += 1
        fields, body = split_header(raw, start, end)
        kw: dict[str, object] = {}
        seen: set[bytes] = set()
        if default_rfc822:  # RFC 2046 §5.1.5: the default inside multipart/digest
            kw.update(type="message", subtype="rfc822", type_wire="message", subtype_wire="rfc822")
        for f in fields:
            n = f.name.lower()
            if not n.startswith(b"content-") or n in seen:
                continue  # the first Content-* field of each kind wins
            seen.add(n)
            if n == b"content-type":
                ct = parse_content_type(f.value)
                kw.update(type=ct.type.lower(), subtype=ct.subtype.lower(), type_wire=ct.type,
                          subtype_wire=ct.subtype, params=ct.params, params_wire=ct.params_wire)
            elif n == b"content-transfer-encoding":
                kw["encoding"] = first_token(f.value)
            elif n == b"content-id":
                kw["content_id"] = b2s(f.value)
            elif n == b"content-description":
                kw["description"] = b2s(f.value)
            elif n == b"content-md5":
                kw["md5"] = b2s(f.value)
            elif n == b"content-location":
                kw["location"] = b2s(f.value)
            elif n == b"content-language":
                kw["language"] = parse_language(f.value)
            elif n == b"content-disposition":
                disp, wire, dec = parse_disposition(f.value)
                kw.update(disposition=disp, disposition_params_wire=wire, disposition_params=dec)
        if message_level:
            kw["envelope"] = _envelope(fields)
        ctype, sub = kw.get("type", "text"), kw.get("subtype", "plain")
        children: tuple[Part, ...] = ()
        closed_here = False
        room = depth < MAX_DEPTH and self.parts < MAX_PARTS
        if ctype == "multipart" and room:
            boundary = next((v for k, v in kw.get("params_wire", ()) if k.lower() == "boundary"), None)  # type: ignore[attr-defined]
            if boundary:
                regions, closed_at = _split_multipart(raw, body, end, boundary.encode("utf-8", "surrogateescape"))
                kids: list[Part] = []
                for s, e, stripped in regions:
                    if self.parts >= MAX_PARTS:
                        break
                    kid = self.entity(s, e, message_level=False, default_rfc822=(sub == "digest"), depth=depth + 1)
                    if stripped and id(kid) in self.closed_at_end:
                        kid = self._extend(kid, e + stripped)
                    kids.append(kid)
                children = tuple(kids)
                closed_here = closed_at == end and raw[end - 1 : end] != b"\n"
        elif ctype == "message" and sub in ("rfc822", "global") and room:
            children = (self.entity(body, end, message_level=True, default_rfc822=False, depth=depth + 1),)
            closed_here = id(children[0]) in self.closed_at_end
        part = Part(start, body, end, lines=raw.count(b"\n", body, end), children=children, **kw)  # type: ignore[arg-type]
        if closed_here:
            self.closed_at_end[id(part)] = part
        return part


def _split_multipart(
    raw: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int, int]], int | None]:
    """Body part regions of a multipart body ``raw[start:end]`` (RFC 2046 §5.1.1).

    A delimiter line is ``--boundary`` at the start of a line, optionally
    ``--`` (close delimiter), then only transport padding (SP/HT) to the end of
    the line.  The line break before a delimiter belongs to the delimiter.  A
    missing close delimiter ends the last part at ``end``; preamble and
    epilogue belong to no part.

    Returns ``(start, end, stripped)`` per part, where ``stripped`` is the
    length of the line break given to the following delimiter, and the offset
    just after the close-delimiter line (None without one).
    """
    marker = b"--" + boundary
    regions: list[tuple[int, int, int]] = []
    part_start: int | None = None
    pos = start
    while True:
        i = raw.find(marker, pos, end)
        if i < 0:
            break
        pos = i + 1
        if i != start and raw[i - 1] != 0x0A:
            continue
        nl = raw.find(b"\n", i, end)
        line_end = end if nl < 0 else nl + 1
        rest = raw[i + len(marker):line_end]
        close = rest.startswith(b"--")
        if rest[2 if close else 0:].strip(b" \t\r\n"):
            continue  # "--boundaryX": a different, longer boundary
        if part_start is not None:
            cut = i
            if cut > part_start and raw[cut - 1] == 0x0A:
                cut -= 2 if cut - 1 > part_start and raw[cut - 2] == 0x0D else 1
            regions.append((part_start, cut, i - cut))
        if close:
            return regions, line_end
        part_start = line_end
        pos = line_end
    if part_start is not None:
        regions.append((part_start, end, 0))
    return regions, None
