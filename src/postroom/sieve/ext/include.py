"""RFC 6609 ``include``: ``include``, ``return`` and ``global``.

``include [:personal / :global] [:once] [:optional] <name>`` runs another script at that
point. ``Host.include(name, global_)`` returns its text (personal scripts are the
account's stored scripts; global ones the administrator's); it is compiled with the same
limits and the same allowed extensions as the including script, and costs steps and time
from the same budget. Actions, the implicit keep, imap4flags' internal flags and
``stop`` (which ends everything, §3.1) are shared; each script has its own ``require``
list, its own local variables and its own match variables.

- The name is taken literally (§3.1: never variable-expanded) and must be a ManageSieve
  script name (RFC 5804 §1.6: no control characters) without ``/`` (a name, not a path).
- Including a script that is already being run, directly or through others, is a
  runtime error (§3.1, "recursion"); so is going deeper than ``Limits.max_include_depth``.
- ``:once`` skips a script already included in this run (§3.1); ``:optional`` makes a
  missing script a no-op instead of an error (§3.1). A script that does not compile is a
  runtime error either way (delivery then keeps the message).
- ``return`` (§3.2) ends the current included script; in the top-level script it is
  ``stop``.
- ``global <names>`` (§3.3, needs ``variables``) makes those names refer to one shared
  table in every script that declares them; ``${global.name}`` (§3.5) reaches that table
  from any script without declaring it. A name declared global keeps its global value
  even when the script had a local one before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..api import SieveError, SieveLimitError, SieveRuntimeError
from ..ast import Node, Script, StringArg
from ..interp import Context, Stop, on_start
from ..registry import REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker
from . import variables

__all__ = ["Return", "valid_script_name"]

# RFC 5804 §1.6: no CTL (U+0000-001F, U+007F-009F), no U+2028/U+2029; plus no "/".
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029/]")
_MAX_NAME = 255
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Return(Exception):
    """RFC 6609 §3.2 ``return`` out of an included script."""


def valid_script_name(name: str) -> bool:
    return 0 < len(name) <= _MAX_NAME and not _BAD_NAME.search(name)


@dataclass(slots=True)
class _Frame:
    key: tuple[bool, str]  # (global_, name); (False, "") for the top-level script
    declared: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _State:
    frames: list[_Frame]
    globals: dict[str, str] = field(default_factory=dict)
    included: set[tuple[bool, str]] = field(default_factory=set)
    compiled: dict[tuple[bool, str], Script] = field(default_factory=dict)

    def scope(self, key: str) -> tuple[dict[str, str], str] | None:
        if key.startswith("global."):
            return self.globals, key[7:]
        if key in self.frames[-1].declared:
            return self.globals, key
        return None


def _start(ctx: Context) -> None:
    if "include" not in ctx.required:
        return
    st = _State([_Frame((False, ""))])
    ctx.state["include"] = st

    def scope(key: str) -> tuple[dict[str, str], str]:
        return st.scope(key) or (ctx.variables, key)

    ctx.state[variables.SCOPE] = scope


def _load(ctx: Context, node: Node, st: _State, key: tuple[bool, str]) -> Script | None:
    got = st.compiled.get(key)
    if got is not None:
        return got
    global_, name = key
    where = "global" if global_ else "personal"
    text = ctx.host.include(name, global_)
    if text is None:
        if ":optional" in node.tags:
            return None
        raise ctx.error(f"include: {where} script '{name}' does not exist", node)
    from ..engine import compile_script  # the engine imports this module while it loads

    try:
        script = compile_script(text, limits=ctx.limits, extensions=ctx.script.extensions)
    except SieveError as e:
        raise SieveRuntimeError(f"include: {where} script '{name}': {e}", node.line, node.column) from None
    st.compiled[key] = script
    return script


def _include(ctx: Context, node: Node) -> None:
    st: _State = ctx.state["include"]
    arg = node.positional[0]
    assert isinstance(arg, StringArg)
    key = (":global" in node.tags, arg.value)
    if ":once" in node.tags and key in st.included:
        return
    if any(f.key == key for f in st.frames):
        raise ctx.error(f"include: script '{key[1]}' includes itself (recursion)", node)
    if len(st.frames) > ctx.limits.max_include_depth:
        raise SieveLimitError(f"include: nested deeper than {ctx.limits.max_include_depth} scripts",
                              node.line, node.column)
    script = _load(ctx, node, st, key)
    if script is None:
        return
    st.included.add(key)
    saved = (ctx.script, ctx.required, ctx.variables, ctx.match_vars, ctx.expander)
    st.frames.append(_Frame(key))
    ctx.script, ctx.required, ctx.variables, ctx.match_vars = script, script.required, {}, []
    if "variables" in script.required:
        ctx.expander = variables.expand
    try:
        ctx.run_block(script.commands)
    except Return:
        pass
    finally:
        st.frames.pop()
        ctx.script, ctx.required, ctx.variables, ctx.match_vars, ctx.expander = saved


def _return(ctx: Context, node: Node) -> None:
    st: _State | None = ctx.state.get("include")
    if st is None or len(st.frames) == 1:
        raise Stop  # §3.2: in the top-level script, return is stop
    raise Return


def _global(ctx: Context, node: Node) -> None:
    st: _State = ctx.state["include"]
    for name in ctx.strings(node.positional[0]):
        st.frames[-1].declared.add(name.lower())


def _check_include(c: Checker, node: Node) -> None:
    arg = node.positional[0]
    assert isinstance(arg, StringArg)
    if not valid_script_name(arg.value):
        raise c.error(f"include: '{arg.value[:80]}' is not a valid script name", arg)


def _check_global(c: Checker, node: Node) -> None:
    if "variables" not in c.required:
        raise c.error('global needs require "variables"', node)
    for s in getattr(node.positional[0], "items", []):
        if not _IDENT.fullmatch(s.value):
            raise c.error(f"global: '{s.value[:80]}' is not a variable name", s)


REGISTRY.extension("include")
REGISTRY.command(Spec("include", False, _include, extension="include", positional=(STRING,), const=(0,),
                      check=_check_include, tags={
                          ":personal": TagSpec(":personal", group="location"),
                          ":global": TagSpec(":global", group="location"),
                          ":once": TagSpec(":once"),
                          ":optional": TagSpec(":optional"),
                      }))
REGISTRY.command(Spec("return", False, _return, extension="include"))
REGISTRY.command(Spec("global", False, _global, extension="include", positional=(STRINGS,), const=(0,),
                      check=_check_global))
on_start(_start)
