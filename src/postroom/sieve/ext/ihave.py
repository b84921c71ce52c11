"""RFC 5463 ``ihave`` test and ``error`` command.

The compile-time half (a block under ``if ihave`` may use what it names; a block whose
capabilities are missing is parsed but not validated and never runs) is in
:meth:`postroom.sieve.validator.Checker.check_command`."""

from __future__ import annotations

from ..api import SieveRuntimeError
from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Spec


def _ihave(ctx: Context, node: Node) -> bool:
    return all(c in ctx.script.extensions for c in ctx.strings(node.positional[0]))


def _error(ctx: Context, node: Node) -> None:
    # RFC 5463 §5: the script fails; delivery falls back to implicit keep.
    raise SieveRuntimeError(f"script error: {ctx.string(node.positional[0])}", node.line, node.column)


REGISTRY.extension("ihave")
REGISTRY.test(Spec("ihave", True, _ihave, extension="ihave", positional=(STRINGS,), const=(0,)))
REGISTRY.command(Spec("error", False, _error, extension="ihave", positional=(STRING,)))
