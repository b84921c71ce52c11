"""BODY[section] (RFC 9051 §6.4.5) served from stored offsets, no re-parse.

API: ``section(raw, p, spec)`` where ``spec`` is the text between the brackets
(``""``, ``"HEADER"``, ``"1.2.TEXT"``, ``"HEADER.FIELDS (SUBJECT FROM)"`` ...;
case-insensitive).  Partial ranges (``<0.100>``) are applied by the caller.
Returns None when the section does not exist or the spec is malformed; the
IMAP layer then sends an empty string (as Dovecot does for a missing part).

Part numbering: in a multipart, ``N`` is the N-th body part; in a non-multipart
message (top level or embedded), ``1`` is its body.  After a message/rfc822
part the numbers continue inside the embedded message, and ``N.HEADER`` /
``N.TEXT`` / ``N.HEADER.FIELDS`` address the embedded message's header and
body, while ``N.MIME`` is the MIME header of part N itself.
"""

from __future__ import annotations

import re

from .headers import split_header
from .model import ParsedMessage, Part

__all__ = ["section", "find_part", "parse_section_spec", "SectionSpec"]

_SPEC = re.compile(
    r"^(?P<part>[0-9]+(?:\.[0-9]+)*)?"
    r"(?:(?:^|\.)(?P<kind>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)"
    r"(?:\s*\((?P<fields>[^()]*)\))?)?$",
    re.IGNORECASE,
)

SectionSpec = tuple[tuple[int, ...], str, tuple[str, ...]]


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
    for depth, n in enumerate(nums):
        if depth > 0 and node.is_message:
            node = node.children[0]  # step into the embedded message
        if node.is_multipart:
            if not 1 <= n <= len(node.children):
                return None
            node = node.children[n - 1]
        elif n == 1 and node.envelope is not None:
            pass  # "1" of a non-multipart message is its body: same part
        else:
            return None
    return node


def _filter_fields(raw: bytes, start: int, end: int, names: tuple[str, ...], negate: bool) -> bytes:
    """HEADER.FIELDS[.NOT]: matching fields in original order and folding, then a blank line."""
    fields, _ = split_header(raw, start, end)
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out = bytearray()
    for f in fields:
        if (f.name.lower() in wanted) != negate:
            chunk = raw[f.start:f.end]
            out += chunk if chunk.endswith(b"\n") else chunk + b"\r\n"
    out += b"\r\n"  # RFC 9051 §6.4.5: the blank line is included
    return bytes(out)


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
