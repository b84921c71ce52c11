"""``parse(raw)``: one pass over the raw octets, building the :class:`Part` tree.

Boundaries are found on bytes so every part keeps exact offsets (RFC 2046
§5.1.1).  Nothing here raises on bad input: limits cut recursion short and any
unexpected error falls back to a single text/plain part over the whole message.
"""

from __future__ import annotations

from .addresses import parse_address_list
from .headers import (
    FIELD_RE,
    b2s,
    header_end,
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

#: What entity() does with a header field, by lowercased name: (kind, key).  Content-*
#: fields (RFC 2045 §3; the first occurrence of each kind wins) are parsed into Part
#: fields; message-level parts also take the ENVELOPE fields (RFC 9051 §7.5.2; the last
#: occurrence wins, as in Dovecot): "s" for strings, "a" for address lists.  ``key`` is
#: the Part or Envelope field, and for Content-* fields also what "first wins" is tracked by.
_CONTENT_KINDS: dict[bytes, tuple[str, str]] = {
    b"content-type": ("ct", "ct"), b"content-transfer-encoding": ("cte", "cte"),
    b"content-id": ("str", "content_id"), b"content-description": ("str", "description"),
    b"content-md5": ("str", "md5"), b"content-location": ("str", "location"),
    b"content-language": ("lang", "lang"), b"content-disposition": ("disp", "disp"),
}
_MESSAGE_KINDS: dict[bytes, tuple[str, str]] = {
    **_CONTENT_KINDS,
    b"date": ("s", "date"), b"subject": ("s", "subject"), b"in-reply-to": ("s", "in_reply_to"),
    b"message-id": ("s", "message_id"), b"from": ("a", "from_"), b"sender": ("a", "sender"),
    b"reply-to": ("a", "reply_to"), b"to": ("a", "to"), b"cc": ("a", "cc"), b"bcc": ("a", "bcc"),
}
#: Names as commonly spelled, looked up before lowercasing (most fields are one of these).
_COMMON_NAMES = [
    *_MESSAGE_KINDS, b"received", b"return-path", b"mime-version", b"dkim-signature", b"references",
    b"x-received", b"x-mailer", b"user-agent", b"delivered-to", b"x-original-to", b"authentication-results",
    b"received-spf", b"arc-seal", b"arc-message-signature", b"arc-authentication-results",
    b"x-google-dkim-signature", b"x-gm-message-state", b"x-google-smtp-source", b"list-unsubscribe",
    b"list-id", b"precedence", b"thread-topic", b"thread-index", b"x-spam-status", b"x-spam-score",
    b"importance", b"x-priority", b"organization", b"feedback-id", b"auto-submitted", b"errors-to",
]


_ACRONYMS = {b"id", b"md5", b"mime", b"dkim", b"spf", b"arc", b"cc", b"bcc"}


def _spellings(name: bytes) -> set[bytes]:
    """lower, UPPER, Title-Case and Title-Case with acronyms upper (Message-ID, MIME-Version)."""
    words = name.split(b"-")
    return {name, name.upper(), b"-".join(w.capitalize() for w in words),
            b"-".join(w.upper() if w in _ACRONYMS else w.capitalize() for w in words)}


def _by_spelling(kinds: dict[bytes, tuple[str, str]]) -> dict[bytes, tuple[str, str] | None]:
    """``{spelling: kinds.get(spelling.lower())}`` for the common spellings of _COMMON_NAMES."""
    return {sp: kinds.get(sp.lower()) for n in _COMMON_NAMES for sp in _spellings(n)}


_CONTENT_BY_SPELLING = _by_spelling(_CONTENT_KINDS)
_MESSAGE_BY_SPELLING = _by_spelling(_MESSAGE_KINDS)
_EMPTY_ENVELOPE = Envelope()


def parse(raw: bytes, newlines: int | None = None) -> ParsedMessage:
    """Parse a whole message.  Never raises; see module docstring.

    ``newlines``, when the caller has it, is ``raw.count(b"\\n")`` (the SMTP reader and
    the store count them anyway, to check the line ends): the line count of a body that
    runs to the end of the message, a single-part message's, is then that minus the
    header's, and the 10 KB scan of the body (a fifth of a delivery's parse) is not made
    a second time. A wrong count gives wrong BODYSTRUCTURE line counts: pass only a count
    of these very bytes.
    """
    raw = bytes(raw)
    try:
        root = _Parser(raw, newlines).entity(0, len(raw), message_level=True, default_rfc822=False, depth=0)
    except Exception:  # noqa: BLE001 - garbage in must never become a traceback at delivery
        _fields, body = split_header(raw, 0, len(raw))
        root = Part(0, body, len(raw), lines=raw.count(b"\n", body), envelope=Envelope())
    return ParsedMessage(root=root, size=len(raw))


class _Parser:
    def __init__(self, raw: bytes, newlines: int | None = None) -> None:
        self.raw = raw
        self.newlines = newlines  # raw.count(b"\n"), if the caller knew it
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
        fields_end, body = header_end(raw, start, end)
        kw: dict[str, object] = {}
        env: dict[str, object] | None = {} if message_level else None
        if message_level:
            kinds, spelled = _MESSAGE_KINDS, _MESSAGE_BY_SPELLING
        else:
            kinds, spelled = _CONTENT_KINDS, _CONTENT_BY_SPELLING
        seen: set[str] = set()
        if default_rfc822:  # RFC 2046 §5.1.5: the default inside multipart/digest
            kw.update(type="message", subtype="rfc822", type_wire="message", subtype_wire="rfc822")
        for name, colon, value, eol in FIELD_RE.findall(raw, start, fields_end):
            if not colon:
                continue  # a line that is no field
            if name in spelled:
                what = spelled[name]
            else:
                what = kinds.get(name.rstrip(b" \t").lower())
            if what is None:
                continue
            kind, key = what
            if key in seen:
                continue  # the first Content-* field of each kind wins
            # The value without its final line break (the CR of a CRLF is still in it) and leading WSP.
            if eol and value[-1:] == b"\r":
                value = value[:-1]
            value = value.lstrip(b" \t")
            if kind == "s":
                env[key] = value.decode("utf-8", "surrogateescape")  # type: ignore[index]
                continue
            if kind == "a":
                # An empty header is as good as absent, so Reply-To: falls back to From.
                env[key] = parse_address_list(value) or None  # type: ignore[index]
                continue
            seen.add(key)
            if kind == "ct":
                ct = parse_content_type(value)
                kw.update(type=ct.type.lower(), subtype=ct.subtype.lower(), type_wire=ct.type,
                          subtype_wire=ct.subtype, params=ct.params, params_wire=ct.params_wire)
            elif kind == "cte":
                kw["encoding"] = first_token(value)
            elif kind == "str":
                kw[key] = value.decode("utf-8", "surrogateescape")
            elif kind == "lang":
                kw["language"] = parse_language(value)
            else:  # "disp"
                disp, wire, dec = parse_disposition(value)
                kw.update(disposition=disp, disposition_params_wire=wire, disposition_params=dec)
        if env is not None:
            kw["envelope"] = Envelope(**env) if env else _EMPTY_ENVELOPE  # type: ignore[arg-type]
        ctype, sub = kw.get("type", "text"), kw.get("subtype", "plain")
        children: tuple[Part, ...] = ()
        closed_here = False
        room = depth < MAX_DEPTH and self.parts < MAX_PARTS
        if ctype == "multipart" and room:
            boundary = None
            for k, v in kw.get("params_wire", ()):  # type: ignore[attr-defined]
                if k.lower() == "boundary":
                    boundary = v
                    break
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
        part = Part(start, body, end, lines=self._lines(body, end, children), children=children, **kw)  # type: ignore[arg-type]
        if closed_here:
            self.closed_at_end[id(part)] = part
        return part


    def _lines(self, start: int, end: int, children: tuple[Part, ...]) -> int:
        """``raw.count(b"\\n", start, end)``, reusing the children's counts of their bodies
        (children are in order and do not overlap, and ``lines`` counts ``[body_start, body_end)``),
        and the caller's count of the whole message for a rest that runs to its end."""
        raw = self.raw
        lines, pos = 0, start
        for c in children:
            if c.body_start < pos or c.body_end > end:
                return raw.count(b"\n", start, end)  # not a partition (cannot happen); count it all
            lines += raw.count(b"\n", pos, c.body_start) + c.lines
            pos = c.body_end
        total = self.newlines
        if total is not None and end == len(raw) and pos < end - pos:
            return lines + total - raw.count(b"\n", 0, pos)  # what comes before is the shorter scan
        return lines + raw.count(b"\n", pos, end)


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
