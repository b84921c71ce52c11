"""RFC 5183 ``environment`` test. Items come from ``Host.environment``; the items the
engine itself knows (name, version, location, phase) have defaults so a host need only
supply domain, host, remote-host and remote-ip."""

from __future__ import annotations

from ... import __version__
from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Spec

#: RFC 5183 §4.1 items the engine can answer itself (Host.environment overrides them).
DEFAULTS = {"name": "Postroom", "version": __version__, "location": "MDA", "phase": "during"}


def _environment(ctx: Context, node: Node) -> bool:
    name = ctx.string(node.positional[0]).lower()
    value = ctx.host.environment(name)
    if value is None:
        value = DEFAULTS.get(name)
    if value is None:
        return False  # RFC 5183 §4: an unknown item never matches
    return ctx.match(node, [value], ctx.strings(node.positional[1]))


REGISTRY.extension("environment")
REGISTRY.test(Spec("environment", True, _environment, extension="environment", positional=(STRING, STRINGS),
                   match=True))
