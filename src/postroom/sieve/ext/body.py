"""RFC 5173 ``body`` test with the :raw, :content and :text transforms.

- ``:raw``: the undecoded body after the header, one value.
- ``:content <types>``: each leaf part whose Content-Type matches a listed type ("" any,
  "text" a type, "text/plain" a type/subtype), transfer-decoded and, for text, charset-
  decoded; for an embedded message/rfc822 the embedded header (§5.2).
- ``:text`` (default): every text/* leaf part, decoded.
"""

from __future__ import annotations

from postroom.mime.decode import decode_header_value, part_text
from postroom.mime.model import Part
from postroom.mime.transfer import decode_transfer

from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRINGS, Spec, TagSpec


def _decoded(raw: bytes, part: Part) -> str:
    if part.type == "text":
        return part_text(raw, part)
    try:
        body = decode_transfer(raw[part.body_start:part.body_end], part.encoding)
    except ValueError:
        body = raw[part.body_start:part.body_end]
    return body.decode("utf-8", "replace")


def _type_matches(part: Part, wanted: str) -> bool:
    w = wanted.strip().lower()
    if w == "":
        return True
    if "/" in w:
        t, _, s = w.partition("/")
        return part.type == t and part.subtype == s
    return part.type == w


def _body(ctx: Context, node: Node) -> bool:
    raw = ctx.msg.raw
    root = ctx.msg.parsed.root
    if ":raw" in node.tags:
        values = [raw[root.body_start:].decode("utf-8", "replace")]
    elif ":content" in node.tags:
        types = ctx.strings(node.tags[":content"])
        values = []
        for part in root.walk():
            ctx.check_time(node)
            if part.is_message and any(_type_matches(part, t) for t in types):
                inner = part.children[0]
                values.append(decode_header_value(raw[inner.header_start:inner.body_start]))
            elif not part.children and any(_type_matches(part, t) for t in types):
                values.append(_decoded(raw, part))
    else:
        values = [part_text(raw, p) for p in root.walk() if p.type == "text" and not p.children]
    return ctx.match(node, values, ctx.strings(node.positional[0]))


REGISTRY.extension("body")
REGISTRY.test(Spec("body", True, _body, extension="body", positional=(STRINGS,), match=True, tags={
    ":raw": TagSpec(":raw", group="transform"),
    ":content": TagSpec(":content", STRINGS, group="transform"),
    ":text": TagSpec(":text", group="transform"),
}))
