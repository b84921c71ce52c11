"""RFC 5429 ``reject`` and ``ereject``. Conflicts with keep/fileinto/redirect/vacation
and with each other are enforced in :func:`postroom.sieve.interp._check_conflicts`."""

from __future__ import annotations

from ..api import Reject
from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, Spec


def _reject(ctx: Context, node: Node) -> None:
    ctx.add_action(Reject(ctx.string(node.positional[0]), extended=node.name == "ereject"), node)


REGISTRY.extension("reject")
REGISTRY.extension("ereject")
REGISTRY.command(Spec("reject", False, _reject, extension="reject", positional=(STRING,)))
REGISTRY.command(Spec("ereject", False, _reject, extension="ereject", positional=(STRING,)))
