"""RFC 8579 ``special-use``: ``fileinto :specialuse`` and the ``specialuse_exists`` test.

``fileinto :specialuse "\\Junk" "Spam"`` files into the account's mailbox that has the
``\\Junk`` use when there is one, else into "Spam" (created with that use when
``:create`` is given too, §4). The engine only records the attribute in
``FileInto.special_use``; delivery picks the mailbox.

``specialuse_exists [<mailbox>] <uses>`` (§3): without a mailbox, true when every use
is held by some mailbox of the account; with one, true when that mailbox exists and
holds every use.

A use is ``\\`` and an IMAP atom (RFC 6154 §2). A constant one that is not is refused
at compile time; one built from variables that is not makes ``fileinto`` a runtime
error (delivery then keeps the message) and ``specialuse_exists`` false (§3, §4).
"""

from __future__ import annotations

import re

from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker

__all__ = ["valid_use"]

# RFC 6154 §6 use-attr: "\" atom; atom-specials are ( ) { SP CTL % * " \ ].
_USE = re.compile(r"\\[^\x00-\x20\x7f(){%*\"\\\]]{1,64}")


def valid_use(s: str) -> bool:
    return bool(_USE.fullmatch(s))


def _specialuse_exists(ctx: Context, node: Node) -> bool:
    mailbox = ctx.string(node.positional[0]) if node.positional[0] is not None else None
    uses = ctx.strings(node.positional[1])
    bad = [u for u in uses if not valid_use(u)]
    if bad:
        ctx.result.log.append(f"specialuse_exists: invalid special-use attribute {bad[0][:64]!r}")
        return False
    if mailbox is not None and not ctx.host.mailbox_exists(mailbox):
        return False
    return ctx.host.special_use_exists(mailbox, uses)


def _check_exists(c: Checker, node: Node) -> None:
    arg = node.positional[1]
    for s in getattr(arg, "items", []):
        v = c.constant(s)
        if v is not None and not valid_use(v):
            raise c.error(f"'{v}' is not a special-use attribute (\\ and an atom, e.g. \\Junk)", s)


def check_use_tag(c: Checker, node: Node) -> None:
    """Compile-time check of a ``:specialuse`` argument (fileinto here, fcc elsewhere)."""
    arg = node.tags.get(":specialuse")
    v = c.constant(arg)
    if v is not None and not valid_use(v):
        assert arg is not None
        raise c.error(f"'{v}' is not a special-use attribute (\\ and an atom, e.g. \\Junk)", arg)


def _wrap_fileinto() -> None:
    """fileinto's own run fills ``FileInto.special_use`` from the tag; add the checks."""
    spec = REGISTRY.commands["fileinto"]
    run, check = spec.run, spec.check

    def fileinto(ctx: Context, node: Node) -> None:
        if ":specialuse" in node.tags:
            use = ctx.string(node.tags[":specialuse"])
            if not valid_use(use):
                raise ctx.error(f"fileinto: invalid special-use attribute {use[:64]!r}", node)
        run(ctx, node)

    def checks(c: Checker, node: Node) -> None:
        if check is not None:
            check(c, node)
        check_use_tag(c, node)

    spec.run, spec.check = fileinto, checks
    global WRAPPED_FILEINTO
    WRAPPED_FILEINTO = (fileinto, run)


#: fileinto's run as wrapped here and the run it wraps: the generated form
#: (:mod:`postroom.sieve.codegen`) files a node without ``:specialuse`` directly only when
#: the registered run is still exactly this wrapper (no other extension wrapped it since).
WRAPPED_FILEINTO: tuple[object, object] | None = None

REGISTRY.extension("special-use")
REGISTRY.add_tag(("fileinto",), TagSpec(":specialuse", STRING, extension="special-use"), tests=False)
_wrap_fileinto()
REGISTRY.test(Spec("specialuse_exists", True, _specialuse_exists, extension="special-use",
                   positional=(STRING, STRINGS), optional_leading=1, check=_check_exists))
