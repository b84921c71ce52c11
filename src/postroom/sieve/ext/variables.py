"""RFC 5229 variables: ``set`` with modifiers, ``${...}`` expansion (including match
variables ``${0}``…``${9}`` from the last successful :matches), and the ``string`` test.

Expansion is a single left-to-right pass: an expanded value is never expanded again
(§3), so a variable holding ``${x}`` stays literal. Values are cut to
``Limits.max_variable_size`` octets (on a character boundary) and a script may create
at most ``Limits.max_variables`` variables; more is a :class:`SieveLimitError`.
"""

from __future__ import annotations

import re

from ..api import SieveLimitError
from ..ast import Node, StringArg
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Modifier, Spec, TagSpec
from ..validator import Checker

__all__ = ["MAX_MATCH_VARS", "SCOPE", "apply_modifiers", "expand", "get_var", "quote_wildcard", "set_var"]

#: RFC 5229 §3.2: at least ${0}..${9} must be supported; more are not kept.
MAX_MATCH_VARS = 10

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: ``ctx.state`` key of an optional ``scope(name) -> (table, name)`` hook: include keeps
#: global variables (RFC 6609 §3.3, §3.5 ``global.`` namespace) in a table of its own.
SCOPE = "variables.scope"


def _table(ctx: Context, key: str) -> tuple[dict[str, str], str]:
    scope = ctx.state.get(SCOPE)
    return (ctx.variables, key) if scope is None else scope(key)


def get_var(ctx: Context, name: str) -> str:
    if name.isdigit():
        i = int(name)
        return ctx.match_vars[i] if i < len(ctx.match_vars) and i < MAX_MATCH_VARS else ""
    table, key = _table(ctx, name.lower())
    return table.get(key, "")


def _truncate(ctx: Context, value: str) -> str:
    limit = ctx.limits.max_variable_size
    data = value.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return value
    return data[:limit].decode("utf-8", "ignore")


def set_var(ctx: Context, name: str, value: str, at: Node | None = None) -> None:
    table, key = _table(ctx, name.lower())
    if key not in table and len(table) >= ctx.limits.max_variables:
        raise SieveLimitError(f"too many variables (limit {ctx.limits.max_variables})",
                              at.line if at else 0, at.column if at else 0)
    table[key] = _truncate(ctx, value)


def expand(ctx: Context, text: str) -> str:
    return _REF.sub(lambda m: get_var(ctx, m.group(1)), text)


def quote_wildcard(s: str) -> str:
    return re.sub(r"([*?\\])", r"\\\1", s)


def _lowerfirst(s: str) -> str:
    return s[:1].lower() + s[1:]


def _upperfirst(s: str) -> str:
    return s[:1].upper() + s[1:]


def apply_modifiers(node: Node, value: str) -> str:
    """The node's ``set`` modifiers applied, highest precedence first (§4.1); also used
    by extracttext (RFC 5703 §7)."""
    mods = node.data.get("_modifiers")
    if mods is None:  # once per node: its tags are fixed (a tuple, so threads may race to make it)
        mods = node.data["_modifiers"] = tuple(sorted(
            (REGISTRY.modifiers[t[1:]] for t in node.tags if t[1:] in REGISTRY.modifiers),
            key=lambda m: -m.precedence))
    for m in mods:
        value = m.fn(value)
    return value


def _set(ctx: Context, node: Node) -> None:
    value = apply_modifiers(node, ctx.string(node.positional[1]))
    set_var(ctx, ctx.string(node.positional[0]), value, node)


def _check_set(c: Checker, node: Node) -> None:
    arg = node.positional[0]
    assert isinstance(arg, StringArg)
    name = arg.value
    if "include" in c.required and name[:7].lower() == "global.":
        name = name[7:]  # RFC 6609 §3.5: the "global" namespace
    if not _NAME.fullmatch(name):
        raise c.error(f"'{arg.value}' is not a valid variable name", arg)


def _string(ctx: Context, node: Node) -> bool:
    sources = ctx.strings(node.positional[0])
    if node.data.get("match") == "count":
        # RFC 5229 §5: for :count an empty string counts as no value.
        sources = [s for s in sources if s != ""]
    return ctx.match(node, sources, ctx.strings(node.positional[1]))


def _start(ctx: Context) -> None:
    if "variables" in ctx.required:
        ctx.expander = expand


def _register() -> None:
    from ..interp import on_start

    REGISTRY.extension("variables")
    modifiers = (
        Modifier("lower", 40, str.lower), Modifier("upper", 40, str.upper),
        Modifier("lowerfirst", 30, _lowerfirst), Modifier("upperfirst", 30, _upperfirst),
        Modifier("quotewildcard", 20, quote_wildcard), Modifier("length", 10, lambda s: str(len(s))),
    )
    tags = {}
    for m in modifiers:
        REGISTRY.modifiers[m.name] = m
        # RFC 5229 §4.1: two modifiers of the same precedence are an error.
        tags[":" + m.name] = TagSpec(":" + m.name, group=f"modifier-{m.precedence}", extension=m.extension)
    REGISTRY.command(Spec("set", False, _set, extension="variables", positional=(STRING, STRING), const=(0,),
                          tags=tags, check=_check_set))
    REGISTRY.test(Spec("string", True, _string, extension="variables", positional=(STRINGS, STRINGS), match=True))
    on_start(_start)


def add_modifier(m: Modifier) -> None:
    """For other extensions (regex's :quoteregex, enotify's :encodeurl)."""
    REGISTRY.modifiers[m.name] = m
    REGISTRY.commands["set"].tags[":" + m.name] = TagSpec(":" + m.name, group=f"modifier-{m.precedence}",
                                                          extension=m.extension)


_register()
