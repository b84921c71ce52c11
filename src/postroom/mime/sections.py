"""BODY[section] (RFC 9051 §6.4.5) served from stored offsets, no re-parse.

API: ``section(raw, p, spec)`` where ``spec`` is the text between the brackets
(``""``, ``"HEADER"``, ``"1.2.TEXT"``, ``"HEADER.FIELDS (SUBJECT FROM)"`` ...;
case-insensitive).  Partial ranges (``<0.100>``) are applied by the caller.
Returns None when the section does not exist or the spec is malformed; the
IMAP layer then sends an empty string (as Dovecot does for a missing part).

Part numbering (RFC 9051 §6.4.5, checked against Dovecot 2.3): in a multipart,
``N`` is the N-th body part.  Every part has a part number 1 that is the part
itself, as long as it is the last number: ``1`` of a single-part message is
its body, and ``N.1`` of a non-multipart part N is part N.  A number after a
non-multipart part that is not message/rfc822 names nothing (``1.1`` of a
single-part message, ``2.1.1`` of a text part 2).  A number after a
message/rfc822 part steps into the embedded message, where the same rules
apply (``2.1`` is the embedded message's part 1).  ``N.HEADER`` / ``N.TEXT`` /
``N.HEADER.FIELDS`` address the header and body of the message embedded in
part N, while ``N.MIME`` is the MIME header of part N itself.

Header-only entities (no empty line ends the header): ``HEADER`` and ``MIME``
are the header bytes as stored; ``HEADER.FIELDS.NOT`` keeps the remaining
lines verbatim without adding an empty line (RFC 9051 §6.4.5: "except in the
case of a message which has no body and no blank line"); ``HEADER.FIELDS``
always ends with CRLF and an empty line, as Dovecot does.
"""

from __future__ import annotations

import functools
import re

from .headers import split_header
from .model import ParsedMessage, Part

__all__ = ["section", "header_section", "find_part", "parse_section_spec", "SectionSpec"]

_SPEC = re.compile(
    r"^(?P<part>[0-9]+(?:\.[0-9]+)*)?"
    r"(?:(?:^|\.)(?P<kind>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)"
    r"(?:\s*\((?P<fields>[^()]*)\))?)?$",
    re.IGNORECASE,
)

SectionSpec = tuple[tuple[int, ...], str, tuple[str, ...]]


@functools.lru_cache(maxsize=256)
def parse_section_spec(spec: str) -> SectionSpec | None:
    """``"1.2.HEADER.FIELDS (A B)"`` → ``((1, 2), "HEADER.FIELDS", ("A", "B"))``; None if malformed."""
    m = _SPEC.match(spec.strip())
    if m is None:
        return None
    nums = tuple(int(n) for n in m.group("part").split(".")) if m.group("part") else ()
    kind = (m.group("kind") or "").upper()
    raw_fields = m.group("fields")
    if kind.startswith("HEADER.FIELDS") != (raw_fields is not None):
        return None
    fields = tuple(f.strip('"').upper() for f in (raw_fields or "").split())
    if kind.startswith("HEADER.FIELDS") and not fields:
        return None  # RFC 9051 header-list = "(" header-fld-name *(SP header-fld-name) ")"
    if kind == "MIME" and not nums:
        return None  # MIME is only defined for numbered parts
    if any(n == 0 for n in nums):
        return None
    return nums, kind, fields


def find_part(p: ParsedMessage, nums: tuple[int, ...]) -> Part | None:
    """The part addressed by a section number, or None (see module docstring)."""
    node = p.root
    last = len(nums) - 1
    for depth, n in enumerate(nums):
        if node.is_multipart:
            if not 1 <= n <= len(node.children):
                return None
            node = node.children[n - 1]
        elif n != 1 or (depth < last and not node.is_message):
            # Only "1" exists below a non-multipart part: the part itself if the number ends
            # here, else the way into a message/rfc822 part (RFC 9051 §6.4.5).
            return None
        if depth < last and node.is_message:
            node = node.children[0]  # more numbers follow: they count inside the embedded message
    return node


def _blank_line(raw: bytes, start: int, end: int) -> bytes:
    """The empty line ending the header block ``raw[start:end]``, or b"" when it has none."""
    if end <= start or raw[end - 1] != 0x0A:
        return b""
    nl = raw.rfind(b"\n", start, end - 1)
    line = raw[start if nl < 0 else nl + 1:end]
    return line if line in (b"\r\n", b"\n") else b""


def _filter_fields(raw: bytes, start: int, end: int, names: tuple[str, ...], negate: bool) -> bytes:
    """HEADER.FIELDS[.NOT] of the header block ``raw[start:end]``, fields in original order and folding.

    HEADER.FIELDS adds a missing line break to its last field and always ends with an
    empty line (Dovecot's header filter adds a missing one).  HEADER.FIELDS.NOT copies
    the remaining lines as they are, lines that are not fields included (as Dovecot),
    and ends with an empty line only if the header had one (RFC 9051 §6.4.5).
    """
    if not negate:
        return _pick_fields(raw, start, end, {n.lower().encode("ascii", "replace") for n in names})
    fields, _ = split_header(raw, start, end)
    blank = _blank_line(raw, start, end)
    stop = end - len(blank)
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out = bytearray()
    pos = start
    for f in fields:
        if negate and pos < f.start:
            out += raw[pos:f.start]  # a line that is not a field matches no name
        if (f.name.lower() in wanted) != negate:
            chunk = raw[f.start:f.end]
            out += chunk if negate or chunk.endswith(b"\n") else chunk + b"\r\n"
        pos = f.end
    if negate:
        out += raw[pos:stop]
        return bytes(out + (b"\r\n" if blank else b""))
    return bytes(out + b"\r\n")


def _pick_fields(raw: bytes, start: int, end: int, wanted: set[bytes]) -> bytes:
    """HEADER.FIELDS of ``raw[start:end]``: what ``split_header`` + the filter above give,
    in one pass over the lines without building HeaderField records (FETCH of a few
    header fields of many messages spends most of its time here on a cache miss).

    Same rules as ``split_header``: the first empty line ends the header; a line that
    starts with WSP continues the field before it (if any); another line is a field if
    it has a colon, its name being what precedes the colon without trailing WSP.
    """
    lines = raw[start:end].split(b"\n")
    last = len(lines) - 1
    out: list[bytes] = []
    in_field = keep = False
    for i, text in enumerate(lines):
        if i == last:
            if not text:
                break  # the block ended with its line break
            line = text  # a last line without LF
        else:
            if not text or text == b"\r":
                break  # RFC 5322 §2.1: the empty line ends the header
            line = text + b"\n"
        if in_field and text[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)  # RFC 5322 §2.2.3 folding
            continue
        if i != last and text[-1:] == b"\r":
            text = text[:-1]
        colon = text.find(b":")
        in_field = colon >= 0
        keep = in_field and text[:colon].rstrip(b" \t").lower() in wanted
        if keep:
            out.append(line)
    if out and out[-1][-1:] != b"\n":
        out.append(b"\r\n")  # a last field without a line break gets one
    out.append(b"\r\n")
    return b"".join(out)


def section(raw: bytes, p: ParsedMessage, spec: str) -> bytes | None:
    """Bytes of ``BODY[spec]``; None when the part does not exist or ``spec`` is malformed."""
    parsed = parse_section_spec(spec)
    if parsed is None:
        return None
    nums, kind, fields = parsed
    part = find_part(p, nums)
    if part is None:
        return None
    if kind == "":
        if not nums:
            return raw[: p.size]
        return raw[part.body_start:part.body_end]
    if kind == "MIME":
        return raw[part.header_start:part.body_start]
    # HEADER / TEXT / HEADER.FIELDS: of the top message, or of the message in a message/rfc822 part.
    if nums:
        if not part.is_message:
            return None
        part = part.children[0]
    if kind == "HEADER":
        return raw[part.header_start:part.body_start]
    if kind == "TEXT":
        return raw[part.body_start:part.body_end]
    return _filter_fields(raw, part.header_start, part.body_start, fields, kind.endswith(".NOT"))


def header_section(raw: bytes, body_start: int, spec: str) -> bytes | None:
    """``section(raw, p, spec)`` for a spec without part number, when all that is known of
    ``p`` is where its top-level header ends (``p.root.body_start``): HEADER and
    HEADER.FIELDS[.NOT] of a message whose structure is not at hand. None for other specs."""
    parsed = parse_section_spec(spec)
    if parsed is None or parsed[0] or not parsed[1].startswith("HEADER"):
        return None
    kind, fields = parsed[1], parsed[2]
    if kind == "HEADER":
        return raw[:body_start]
    return _filter_fields(raw, 0, body_start, fields, kind.endswith(".NOT"))
