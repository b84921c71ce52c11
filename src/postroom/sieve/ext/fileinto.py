"""RFC 5228 §4.1 ``fileinto`` (needs ``require "fileinto"``) and RFC 3894 ``:copy`` on
fileinto and redirect (needs ``require "copy"``)."""

from __future__ import annotations

import re

from ..api import FileInto
from ..ast import Node, StringArg
from ..core import action_flags
from ..interp import Context
from ..registry import REGISTRY, STRING, Spec, TagSpec
from ..validator import Checker


def _fileinto(ctx: Context, node: Node) -> None:
    arg = node.positional[0]
    mailbox = ctx.string(arg)
    if not isinstance(arg, StringArg) or arg.expand:  # a constant name was checked at compile time (_check)
        _valid_mailbox(mailbox, ctx.error, node)
    copy = ":copy" in node.tags
    ctx.add_action(FileInto(mailbox, flags=action_flags(ctx, node), copy=copy,
                            create=":create" in node.tags,
                            special_use=ctx.string(node.tags[":specialuse"]) if ":specialuse" in node.tags else None),
                   node, cancels_keep=not copy)


#: Control characters and surrogates (lone, or escaped octets that are not UTF-8).
_BAD_MAILBOX_CHAR = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _valid_mailbox(name: str, error: object, at: object) -> None:
    """A mailbox name the store can take: not empty, no control characters (the store
    applies its own hierarchy rules when delivering)."""
    if not name or _BAD_MAILBOX_CHAR.search(name):
        raise error(f"fileinto: invalid mailbox name {name!r}", at)  # type: ignore[operator]


def _check(c: Checker, node: Node) -> None:
    v = c.constant(node.positional[0])
    if v is not None:
        _valid_mailbox(v, c.error, node.positional[0])


REGISTRY.extension("fileinto")
REGISTRY.extension("copy")
REGISTRY.command(Spec("fileinto", False, _fileinto, extension="fileinto", positional=(STRING,), check=_check))
_COPY = TagSpec(":copy", extension="copy")
REGISTRY.add_tag(("fileinto", "redirect"), _COPY, tests=False)
