"""RFC 5293 ``editheader``: ``addheader`` and ``deleteheader``.

Edits change the message the rest of the script sees (§7: later ``header``,
``address``, ``exists``… tests see them) and ``Result.edited`` is the message after
all of them, which delivery stores. ``AddHeader`` / ``DeleteHeader`` actions record
what was done, in order.

- ``addheader [:last] <name> <value>`` (§4): the field goes first in the header, or
  last with ``:last``. A value that is not ASCII is written as RFC 2047 encoded words
  (UTF-8, folded); line breaks in the value become spaces (a value is "unstructured"
  text, so a script can never inject a second field); values longer than
  :data:`MAX_VALUE` octets are an error.
- ``deleteheader [:index n [:last]] [COMPARATOR] [MATCH-TYPE] <name> [<patterns>]``
  (§5): deletes every field of that name, or only the n-th (from the end with
  ``:last``), and with patterns only the fields whose decoded value matches one of them
  (default ``:is``). ``:count`` is refused: it counts a list, and each field is
  matched alone.
- Field names must be RFC 5322 §3.6.8 names; a constant bad name is a compile error, a
  bad name built at run time a runtime error.
- ``Received`` and ``Auto-Submitted`` are protected (§6 forbids deleting ``Received``;
  loop and auto-reply protection rely on both): adding or deleting them is ignored
  with a note in ``Result.log``, as §6 asks of refused changes ("silently ignored").
  ``Subject`` can always be changed (§6).
- At most :data:`MAX_ADDED` fields may be added in one run (a loop cannot grow a
  header without bound).
"""

from __future__ import annotations

import re
from email.header import Header

from ..api import AddHeader, DeleteHeader, SieveLimitError
from ..ast import Node, NumberArg, StringArg, StringListArg
from ..interp import Context
from ..message import Field
from ..registry import NUMBER, REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker

__all__ = ["MAX_ADDED", "MAX_VALUE", "PROTECTED", "encode_value", "valid_field_name"]

PROTECTED = frozenset({"received", "auto-submitted"})
MAX_VALUE = 4096
MAX_ADDED = 128
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,997}")
_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)[ \t]*")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def valid_field_name(name: str) -> bool:
    """RFC 5322 §3.6.8: one or more printable ASCII characters other than ":"."""
    return bool(_FIELD_NAME.fullmatch(name))


def encode_value(name: str, value: str) -> bytes:
    """The field value as it goes on the wire: line breaks flattened, non-ASCII text as
    RFC 2047 UTF-8 encoded words, folded to stay within line limits (RFC 5322 §2.1.1)."""
    value = _CONTROLS.sub("", _BREAKS.sub(" ", value))
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return value.encode("ascii")
    if value.isascii():
        # Fold at blanks; a word with no blank to fold at stays as it is (≤ MAX_VALUE anyway).
        out: list[str] = []
        line = len(name) + 2
        for word in value.split(" "):
            if out and line + 1 + len(word) > 78:
                out.append("\r\n " + word)
                line = 1 + len(word)
            elif out:
                out.append(" " + word)
                line += 1 + len(word)
            else:
                out.append(word)
                line += len(word)
        return "".join(out).encode("ascii")
    h = Header(value, "utf-8", header_name=name)
    return h.encode(linesep="\r\n").encode("ascii")


def _name(ctx: Context, node: Node, arg: StringArg | StringListArg | None) -> str:
    name = ctx.string(arg)
    if not valid_field_name(name):
        raise ctx.error(f"{node.name}: '{name[:80]}' is not a valid header field name", node)
    return name


def _protected(ctx: Context, node: Node, name: str) -> bool:
    if name.lower() in PROTECTED:
        ctx.result.log.append(f"{node.name}: the {name} header field cannot be changed; ignored")
        return True
    return False


def _addheader(ctx: Context, node: Node) -> None:
    name = _name(ctx, node, node.positional[0])  # type: ignore[arg-type]
    value = ctx.string(node.positional[1])
    if _protected(ctx, node, name):
        return
    if len(value.encode("utf-8", "surrogateescape")) > MAX_VALUE:
        raise ctx.error(f"addheader: value longer than {MAX_VALUE} octets", node)
    st = ctx.state.setdefault("editheader", {"added": 0})
    st["added"] += 1
    if st["added"] > MAX_ADDED:
        raise SieveLimitError(f"addheader: more than {MAX_ADDED} fields added", node.line, node.column)
    last = ":last" in node.tags
    field = Field(name, encode_value(name, value), added=True)
    fields = ctx.msg.fields
    if last:
        fields.append(field)
    else:
        fields.insert(0, field)
    ctx.msg.touch()
    ctx.actions.append(AddHeader(name, value, last=last))


def _deleteheader(ctx: Context, node: Node) -> None:
    if node.positional[0] is None:  # only the name was given (it sits in the patterns slot)
        name_arg, patterns_arg = node.positional[1], None
    else:
        name_arg, patterns_arg = node.positional[0], node.positional[1]
    name = _name(ctx, node, name_arg)  # type: ignore[arg-type]
    if _protected(ctx, node, name):
        return
    low = name.lower()
    fields = ctx.msg.fields
    mine = [i for i, f in enumerate(fields) if f.name.lower() == low]
    if ":index" in node.tags:
        n = ctx.number(node.tags[":index"])
        if n > len(mine):
            mine = []
        else:
            mine = [mine[-n] if ":last" in node.tags else mine[n - 1]]
    patterns = ctx.strings(patterns_arg) if patterns_arg is not None else None
    if patterns is not None and mine:
        saved = ctx.match_vars  # a command: it must not change ${1}… (RFC 5229 §3.2 is about tests)
        values = ctx.msg.values(name)  # decoded, in field order: the k-th value is the k-th field
        all_idx = [i for i, f in enumerate(fields) if f.name.lower() == low]
        decoded = dict(zip(all_idx, values, strict=True))
        mine = [i for i in mine if ctx.match(node, [decoded[i]], patterns)]
        ctx.match_vars = saved
    if not mine:
        return
    drop = set(mine)
    fields[:] = [f for i, f in enumerate(fields) if i not in drop]
    ctx.msg.touch()
    idx = node.tags.get(":index")
    ctx.actions.append(DeleteHeader(name, index=idx.value if isinstance(idx, NumberArg) else None,
                                    last=":last" in node.tags, value_patterns=tuple(patterns or ())))


def _check_name(c: Checker, arg: object) -> None:
    v = c.constant(arg)  # type: ignore[arg-type]
    if v is not None and not valid_field_name(v):
        raise c.error(f"'{v[:80]}' is not a valid header field name", arg)  # type: ignore[arg-type]


def _check_add(c: Checker, node: Node) -> None:
    _check_name(c, node.positional[0])


def _check_delete(c: Checker, node: Node) -> None:
    if node.positional[0] is None:
        arg = node.positional[1]
        assert isinstance(arg, StringListArg)
        if len(arg.items) != 1:
            raise c.error("deleteheader: the field name must be one string", arg)
        _check_name(c, arg.items[0])
    else:
        _check_name(c, node.positional[0])
    if node.data.get("match") == "count":
        raise c.error("deleteheader: :count cannot be used (each field is matched alone)", node)
    idx = node.tags.get(":index")
    if isinstance(idx, NumberArg) and idx.value < 1:
        raise c.error(":index counts from 1", idx)


REGISTRY.extension("editheader")
REGISTRY.command(Spec("addheader", False, _addheader, extension="editheader", positional=(STRING, STRING),
                      tags={":last": TagSpec(":last")}, check=_check_add))
# deleteheader's patterns are optional and trailing; the registry only knows optional
# leading positionals, so a lone name lands in the second slot and _deleteheader moves it.
REGISTRY.command(Spec("deleteheader", False, _deleteheader, extension="editheader", positional=(STRING, STRINGS),
                      optional_leading=1, match=True, check=_check_delete, tags={
                          ":index": TagSpec(":index", NUMBER),
                          ":last": TagSpec(":last", requires=(":index",)),
                      }))
