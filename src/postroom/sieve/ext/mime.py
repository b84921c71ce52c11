"""RFC 5703 ``mime``, ``foreverypart`` and ``extracttext``: MIME part tests, a loop over
the parts, and the text of a part into a variable (``replace`` and ``enclose`` are not
implemented and not advertised).

The parts come from the MIME tree parsed once at delivery (``ctx.msg.parsed``,
:mod:`postroom.mime`); nothing is parsed twice.

- ``foreverypart [:name <n>] { ... }`` (§3) runs its block once per MIME part, depth
  first in document order. At the top level that is every part of the message, the
  message itself first (a MIME entity too: a one-part message has one part, itself);
  a nested loop walks the parts below the enclosing loop's current part. Every
  iteration costs time and steps from the script's budget.
- ``break [:name <n>]`` (§3) leaves the innermost loop, or the enclosing loop with that
  name. Outside a loop, a name no enclosing loop has, or a loop reusing an enclosing
  loop's name, are compile errors.
- ``header``, ``address`` and ``exists`` take ``:mime`` (§4): inside a loop they look
  at the current part's header, outside it at the message's (with editheader's
  changes). ``:anychild`` widens that to every part below the current one (outside a
  loop: every part of the message) and is true when any of them matches. ``header``
  also takes one of ``:type``, ``:subtype``, ``:contenttype`` or ``:param <names>``
  (§4.1): the parts of a Content-Type–like value (Content-Disposition: its type and
  parameters). A part without a Content-Type header has the RFC 2045 §5.2 default
  (text/plain, or message/rfc822 in a multipart/digest) as the parser computed it.
- ``extracttext [modifiers] [:first <n>] <var>`` (§7, needs ``variables``, only inside
  ``foreverypart``) sets the variable to the decoded text of the current part when it
  is text/* (else to ""), cut to ``:first`` characters; ``set``'s modifiers apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from postroom.mime.decode import decode_header_value, part_text
from postroom.mime.headers import parse_content_type, parse_disposition, split_header
from postroom.mime.imapfmt import unfold_nolf
from postroom.mime.model import Part

from ..ast import Node, NumberArg, StringArg
from ..core import part_of, pick_index
from ..interp import Context
from ..message import parse_addresses
from ..registry import NUMBER, REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker
from .variables import apply_modifiers, set_var

__all__ = ["Break"]

_OPTIONS = (":type", ":subtype", ":contenttype", ":param")


class Break(Exception):
    """RFC 5703 §3 ``break``; ``name`` None leaves the innermost loop."""

    def __init__(self, name: str | None) -> None:
        super().__init__(name)
        self.name = name


@dataclass(slots=True)
class _State:
    loops: list[tuple[Part, str | None]] = field(default_factory=list)
    headers: dict[tuple[int, int], list[tuple[str, bytes]]] = field(default_factory=dict)


def _state(ctx: Context) -> _State:
    st = ctx.state.get("mime")
    if st is None:
        st = ctx.state["mime"] = _State()
    return st


# ------------------------------------------------------------------ the parts


def _parts(ctx: Context, anychild: bool) -> list[Part]:
    """The parts a :mime test looks at (see the module docstring)."""
    st = _state(ctx)
    if st.loops:
        current = st.loops[-1][0]
        return current.walk()[1:] if anychild else [current]
    root = ctx.msg.parsed.root
    return root.walk() if anychild else [root]


def _fields(ctx: Context, part: Part) -> list[tuple[str, bytes]]:
    """(lowercased name, raw value) of a part's header; the top level as edited."""
    if part is ctx.msg.parsed.root:
        return [(f.name.lower(), f.value) for f in ctx.msg.fields]
    st = _state(ctx)
    key = (part.header_start, part.body_start)
    got = st.headers.get(key)
    if got is None:
        found, _ = split_header(ctx.msg.raw, part.header_start, part.body_start)
        got = st.headers[key] = [(f.name.decode("utf-8", "replace").lower(), f.value) for f in found]
    return got


def _raw_values(ctx: Context, part: Part, name: str) -> list[bytes]:
    low = name.lower()
    return [v for n, v in _fields(ctx, part) if n == low]


def _option_values(part: Part, name: str, raw: list[bytes], option: str, params: list[str]) -> list[str]:
    """:type / :subtype / :contenttype / :param of a Content-Type–like header (§4.1)."""
    low = name.lower()
    out: list[str] = []
    items: list[tuple[str, str, dict[str, str]]] = []
    if low == "content-type" and not raw:
        items.append((part.type, part.subtype, dict(part.params)))
    for value in raw:
        v = unfold_nolf(value)
        if low == "content-disposition":
            disposition, _wire, dparams = parse_disposition(v)
            if disposition is not None:
                items.append((disposition, "", dict(dparams)))
        else:
            ct = parse_content_type(v)
            if ct.type:
                items.append((ct.type, ct.subtype, dict(ct.params)))
    for main, sub, found in items:
        if option == ":type":
            out.append(main)
        elif option == ":subtype":
            if sub:
                out.append(sub)
        elif option == ":contenttype":
            out.append(f"{main}/{sub}" if sub else main)
        else:
            out += [found[p.lower()] for p in params if p.lower() in found]
    return out


# ------------------------------------------------------------------ tests with :mime


def _any_part(ctx: Context, node: Node, values_of: Callable[[Part, str], list[str]]) -> bool:
    """True when, for some part the test looks at, the values of the named headers
    match (§4: with :anychild, any one part matching is enough)."""
    names = ctx.strings(node.positional[0])
    keys = ctx.strings(node.positional[1])
    for part in _parts(ctx, ":anychild" in node.tags):
        ctx.check_time(node)
        if ctx.match(node, [v for name in names for v in values_of(part, name)], keys):
            return True
    return False


def _header_mime(ctx: Context, node: Node) -> bool:
    option = next((o for o in _OPTIONS if o in node.tags), None)
    params = ctx.strings(node.tags[":param"]) if option == ":param" else []

    def values_of(part: Part, name: str) -> list[str]:
        raw = pick_index(ctx, node, _raw_values(ctx, part, name))
        if option is None:
            return [decode_header_value(v).strip(" \t") for v in raw]
        return _option_values(part, name, raw, option, params)

    return _any_part(ctx, node, values_of)


def _address_mime(ctx: Context, node: Node) -> bool:
    def values_of(part: Part, name: str) -> list[str]:
        return [v for raw in pick_index(ctx, node, _raw_values(ctx, part, name))
                for v in (part_of(ctx, node, a) for a in parse_addresses(raw)) if v is not None]

    return _any_part(ctx, node, values_of)


def _exists_mime(ctx: Context, node: Node) -> bool:
    names = ctx.strings(node.positional[0])
    return any(all(_raw_values(ctx, part, n) for n in names) for part in _parts(ctx, ":anychild" in node.tags))


def _wrap(name: str, mime_run: Callable[[Context, Node], bool]) -> None:
    spec = REGISTRY.tests[name]
    plain = spec.run

    def run(ctx: Context, node: Node) -> bool:
        if ":mime" in node.tags:
            return mime_run(ctx, node)
        return bool(plain(ctx, node))

    spec.run = run


# ------------------------------------------------------------------ foreverypart, break


def _foreverypart(ctx: Context, node: Node) -> None:
    st = _state(ctx)
    name = ctx.string(node.tags[":name"]) if ":name" in node.tags else None
    if st.loops:
        parts = st.loops[-1][0].walk()[1:]
    else:
        parts = ctx.msg.parsed.root.walk()
    assert node.block is not None
    for part in parts:
        ctx.step(node)
        st.loops.append((part, name))
        try:
            ctx.run_block(node.block)
        except Break as b:
            if b.name is None or b.name == name:
                return
            raise
        finally:
            st.loops.pop()


def _break(ctx: Context, node: Node) -> None:
    raise Break(ctx.string(node.tags[":name"]) if ":name" in node.tags else None)


def _loop_name(c: Checker, node: Node) -> str | None:
    arg = node.tags.get(":name")
    return arg.value if isinstance(arg, StringArg) else None


def _check_foreverypart(c: Checker, node: Node) -> None:
    """Mark the commands inside with the names of their enclosing loops, so ``break``
    and ``extracttext`` (checked after this) know where they are."""
    outer: tuple[str | None, ...] = node.data.get("in_loop", ())
    name = _loop_name(c, node)
    if name is not None and name in outer:
        raise c.error(f"foreverypart: the name '{name}' is already used by an enclosing loop", node)
    inside = (*outer, name)
    stack = list(node.block or [])
    while stack:
        n = stack.pop()
        n.data["in_loop"] = inside
        if n.block and n.name != "foreverypart":
            stack.extend(n.block)
        elif n.name == "foreverypart":
            continue  # it marks its own block when it is checked


def _check_break(c: Checker, node: Node) -> None:
    loops = node.data.get("in_loop")
    if loops is None:
        raise c.error("break is only allowed inside foreverypart", node)
    name = _loop_name(c, node)
    if name is not None and name not in loops:
        raise c.error(f"break: no enclosing foreverypart is named '{name}'", node)


# ------------------------------------------------------------------ extracttext


def _extracttext(ctx: Context, node: Node) -> None:
    st = _state(ctx)
    part = st.loops[-1][0]
    text = part_text(ctx.msg.raw, part) if part.type == "text" and not part.children else ""
    first = node.tags.get(":first")
    if isinstance(first, NumberArg):
        text = text[:first.value]
    set_var(ctx, ctx.string(node.positional[0]), apply_modifiers(node, text), node)


def _check_extracttext(c: Checker, node: Node) -> None:
    if "variables" not in c.required:
        raise c.error('extracttext needs require "variables"', node)
    if node.data.get("in_loop") is None:
        raise c.error("extracttext is only allowed inside foreverypart", node)
    REGISTRY.commands["set"].check(c, node)  # type: ignore[misc]  # the same variable-name rule


def _register() -> None:
    r = REGISTRY
    r.extension("mime")
    r.extension("foreverypart")
    r.extension("extracttext")
    mime = TagSpec(":mime", extension="mime")
    anychild = TagSpec(":anychild", extension="mime", requires=(":mime",))
    r.add_tag(("header", "address", "exists"), mime)
    r.add_tag(("header", "address", "exists"), anychild)
    for opt in (":type", ":subtype", ":contenttype"):
        r.add_tag(("header",), TagSpec(opt, group="mime-option", extension="mime", requires=(":mime",)))
    r.add_tag(("header",), TagSpec(":param", STRINGS, group="mime-option", extension="mime", requires=(":mime",)))
    _wrap("header", _header_mime)
    _wrap("address", _address_mime)
    _wrap("exists", _exists_mime)
    name = TagSpec(":name", STRING, const=True)
    r.command(Spec("foreverypart", False, _foreverypart, extension="foreverypart", block=True,
                   tags={":name": name}, check=_check_foreverypart))
    r.command(Spec("break", False, _break, extension="foreverypart", tags={":name": name}, check=_check_break))
    # extracttext takes set's modifiers (RFC 5703 §7), whichever extensions registered them.
    tags = dict(r.commands["set"].tags)
    tags[":first"] = TagSpec(":first", NUMBER)
    r.command(Spec("extracttext", False, _extracttext, extension="extracttext", positional=(STRING,), const=(0,),
                   tags=tags, check=_check_extracttext))


_register()
