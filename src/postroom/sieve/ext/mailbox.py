"""RFC 5490: the ``mailbox`` extension (``mailboxexists``, ``fileinto :create``) and the
``mboxmetadata`` / ``servermetadata`` extensions (``metadata``, ``metadataexists``,
``servermetadata``, ``servermetadataexists``) answered by ``Host.metadata``.

- ``mailboxexists`` is true only when every named mailbox exists (§3.1); the host
  answers from the account's mailboxes as they were when the run began.
- ``fileinto :create`` (§3.2) only sets ``FileInto.create``: delivery creates the
  mailbox (with its missing parents) when it has to.
- The metadata tests see an absent mailbox or entry as no value at all (§3.3/§4.1: the
  test is then false, and ``:count`` counts 0). Entry names must be RFC 5464 §3.2 names
  under ``/private/`` or ``/shared/``: a constant name that is not is refused when the
  script is compiled, a name built at run time reads as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker

__all__ = ["valid_entry"]

# RFC 5464 §3.2: entries are "/shared/..." or "/private/...", slash-separated, no "*" "%",
# no empty component, no trailing slash, no control characters.
_ENTRY = re.compile(r"/(?:private|shared)(?:/[^/*%\x00-\x1f\x7f]+)+", re.IGNORECASE)
_MAX_ENTRY = 1024


def valid_entry(name: str) -> bool:
    return len(name) <= _MAX_ENTRY and bool(_ENTRY.fullmatch(name))


def _mailboxexists(ctx: Context, node: Node) -> bool:
    return all(ctx.host.mailbox_exists(n) for n in ctx.strings(node.positional[0]))


def _entry_value(ctx: Context, mailbox: str | None, entry: str) -> str | None:
    if not valid_entry(entry):
        ctx.result.log.append(f"{'metadata' if mailbox is not None else 'servermetadata'}: "
                              f"invalid entry name {entry[:100]!r}")
        return None
    if mailbox is not None and not ctx.host.mailbox_exists(mailbox):
        return None
    return ctx.host.metadata(mailbox, entry)


def _metadata(ctx: Context, node: Node) -> bool:
    mailbox = ctx.string(node.positional[0])
    value = _entry_value(ctx, mailbox, ctx.string(node.positional[1]))
    return ctx.match(node, [] if value is None else [value], ctx.strings(node.positional[2]))


def _metadataexists(ctx: Context, node: Node) -> bool:
    mailbox = ctx.string(node.positional[0])
    return all(_entry_value(ctx, mailbox, e) is not None for e in ctx.strings(node.positional[1]))


def _servermetadata(ctx: Context, node: Node) -> bool:
    value = _entry_value(ctx, None, ctx.string(node.positional[0]))
    return ctx.match(node, [] if value is None else [value], ctx.strings(node.positional[1]))


def _servermetadataexists(ctx: Context, node: Node) -> bool:
    return all(_entry_value(ctx, None, e) is not None for e in ctx.strings(node.positional[0]))


def _check_entries(index: int) -> Callable[[Checker, Node], None]:
    def check(c: Checker, node: Node) -> None:
        arg = node.positional[index]
        items = getattr(arg, "items", None) or [arg]
        for s in items:
            v = c.constant(s)
            if v is not None and not valid_entry(v):
                raise c.error(f"'{v}' is not a metadata entry name (/private/... or /shared/...)", s)
    return check


REGISTRY.extension("mailbox")
REGISTRY.extension("mboxmetadata")
REGISTRY.extension("servermetadata")
REGISTRY.test(Spec("mailboxexists", True, _mailboxexists, extension="mailbox", positional=(STRINGS,)))
REGISTRY.add_tag(("fileinto",), TagSpec(":create", extension="mailbox"), tests=False)
REGISTRY.test(Spec("metadata", True, _metadata, extension="mboxmetadata", positional=(STRING, STRING, STRINGS),
                   match=True, check=_check_entries(1)))
REGISTRY.test(Spec("metadataexists", True, _metadataexists, extension="mboxmetadata",
                   positional=(STRING, STRINGS), check=_check_entries(1)))
REGISTRY.test(Spec("servermetadata", True, _servermetadata, extension="servermetadata",
                   positional=(STRING, STRINGS), match=True, check=_check_entries(0)))
REGISTRY.test(Spec("servermetadataexists", True, _servermetadataexists, extension="servermetadata",
                   positional=(STRINGS,), check=_check_entries(0)))
