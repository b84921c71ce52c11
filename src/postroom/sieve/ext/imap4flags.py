"""RFC 5232 imap4flags: setflag/addflag/removeflag, the hasflag test, ``:flags`` on keep
and fileinto, and the internal flag variable that implicit keep uses.

With the variables extension the commands may name a variable instead of the internal
one (``setflag "myflags" "\\\\Seen"``); its value is the space-separated flag list.
"""

from __future__ import annotations

from ..ast import Node
from ..core import normalize_flags
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker
from .variables import get_var, set_var


def _current(ctx: Context, var: str | None) -> list[str]:
    if var is None:
        return list(ctx.flags)
    return normalize_flags([get_var(ctx, var)])


def _store(ctx: Context, var: str | None, flags: list[str], node: Node) -> None:
    if var is None:
        ctx.flags = flags
    else:
        set_var(ctx, var, " ".join(flags), node)


def _flag_command(ctx: Context, node: Node) -> None:
    var_arg = node.positional[0]
    var = ctx.string(var_arg) if var_arg is not None else None
    new = normalize_flags(ctx.strings(node.positional[1]))
    if node.name == "setflag":
        flags = new
    elif node.name == "addflag":
        flags = normalize_flags([" ".join(_current(ctx, var) + new)])
    else:  # removeflag
        drop = {f.lower() for f in new}
        flags = [f for f in _current(ctx, var) if f.lower() not in drop]
    _store(ctx, var, flags, node)


def _hasflag(ctx: Context, node: Node) -> bool:
    var_arg = node.positional[0]
    if var_arg is None:
        values = list(ctx.flags)
    else:
        values = normalize_flags([get_var(ctx, v) for v in ctx.strings(var_arg)])
    keys = normalize_flags(ctx.strings(node.positional[1])) if node.data.get("match") != "matches" else [
        w for k in ctx.strings(node.positional[1]) for w in k.split()]
    return ctx.match(node, values, keys)


def _check_var(c: Checker, node: Node) -> None:
    if node.positional[0] is not None and "variables" not in c.required:
        raise c.error(f"'{node.name}' with a variable name needs require \"variables\"", node.positional[0])


REGISTRY.extension("imap4flags")
for _name in ("setflag", "addflag", "removeflag"):
    REGISTRY.command(Spec(_name, False, _flag_command, extension="imap4flags", positional=(STRING, STRINGS),
                          optional_leading=1, const=(0,), check=_check_var))
REGISTRY.test(Spec("hasflag", True, _hasflag, extension="imap4flags", positional=(STRINGS, STRINGS),
                   optional_leading=1, const=(0,), match=True, check=_check_var))
REGISTRY.add_tag(("keep", "fileinto"), TagSpec(":flags", STRINGS, extension="imap4flags"), tests=False)
