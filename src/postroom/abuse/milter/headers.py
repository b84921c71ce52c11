"""A message's header block as a list of fields that a milter can add to, insert into,
change and delete from, written back byte for byte where nothing changed.

RFC 5322 §2.2: a field is ``name ":" value``, folded onto continuation lines that begin
with a space or tab. The block ends at the first empty line; as in Postfix, a line that
is neither a field nor a continuation also ends it (and begins the body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(rb"^[!-9;-~]+:")  # RFC 5322 §3.6.8 ftext, then the colon
_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(slots=True)
class Field:
    name: str
    raw: bytes  # the whole field as received, with its CRLFs (rewritten when changed)

    @property
    def value(self) -> str:
        """The value after the colon, unfolded line ends kept as LF (what Postfix sends a
        milter), the one leading space after the colon kept (callers strip it)."""
        text = self.raw.decode("utf-8", "surrogateescape")
        return text[len(self.name) + 1:].removesuffix("\r\n").replace("\r\n", "\n")


class Headers:
    """The fields of one message and its body (``split``/``join`` round-trip exactly)."""

    __slots__ = ("body", "fields", "separator")

    def __init__(self, fields: list[Field], separator: bytes, body: bytes) -> None:
        self.fields = fields
        self.separator = separator  # b"\r\n" (the empty line) or b"" (none: body began at once)
        self.body = body

    @classmethod
    def split(cls, message: bytes) -> Headers:
        fields: list[Field] = []
        pos = 0
        n = len(message)
        while pos < n:
            end = message.find(b"\n", pos)
            end = n if end < 0 else end + 1
            line = message[pos:end]
            if line in (b"\r\n", b"\n"):
                return cls(fields, line, message[end:])
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1].raw += line
            elif (m := _FIELD.match(line)) is not None:
                fields.append(Field(m.group(0)[:-1].decode("ascii"), line))
            else:
                break
            pos = end
        return cls(fields, b"", message[pos:])

    def join(self) -> bytes:
        return b"".join(f.raw for f in self.fields) + self.separator + self.body

    # -- what a milter may do (SMFIR_ADDHEADER, INSHEADER, CHGHEADER) --------------------------

    def append(self, name: str, value: str, leading_space: bool = False) -> None:
        self.fields.append(make_field(name, value, leading_space))

    def insert(self, index: int, name: str, value: str, leading_space: bool = False) -> None:
        """At position ``index`` among all fields (0: on top; past the end: appended)."""
        self.fields.insert(min(index, len(self.fields)), make_field(name, value, leading_space))

    def change(self, name: str, index: int, value: str, leading_space: bool = False) -> None:
        """The ``index``-th (1-based) field called ``name``; an empty value deletes it. As in
        Sendmail and Postfix, changing a field that is not there adds it."""
        seen = 0
        for i, f in enumerate(self.fields):
            if f.name.lower() == name.lower():
                seen += 1
                if seen == max(index, 1):
                    if value.strip():
                        self.fields[i] = make_field(f.name, value, leading_space)
                    else:
                        del self.fields[i]
                    return
        if value.strip():
            self.append(name, value, leading_space)


def make_field(name: str, value: str, leading_space: bool = False) -> Field:
    """``name: value`` with CRLF line ends. A value line that does not begin with white space
    is indented, and empty lines are dropped, so no value can end the header block or start a
    field of its own (a milter's value is trusted, but not to that extent)."""
    lines = [ln for ln in _BREAK.split(value)]
    first, rest = lines[0], [ln for ln in lines[1:] if ln.strip()]
    out = [first if leading_space else " " + first]
    out += [ln if ln[:1] in (" ", "\t") else "\t" + ln for ln in rest]
    text = name + ":" + "\r\n".join(out) + "\r\n"
    return Field(name, text.encode("utf-8", "surrogateescape"))
