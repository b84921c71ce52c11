"""RFC 8580 ``fcc``: ``:fcc <mailbox>`` on ``vacation`` and ``notify`` files a copy of
the message sent, with optional ``:flags`` (imap4flags), ``:create`` (mailbox) and
``:specialuse`` (special-use) that apply to that copy (§3).

The tags go on the existing commands; after the command ran, its
:class:`~postroom.sieve.api.Vacation` / :class:`~postroom.sieve.api.Notify` action gets
``fcc``, ``fcc_flags``, ``fcc_create`` and ``fcc_special_use``. Delivery files the copy
(``\\Seen`` plus the flags).

- ``:flags``, ``:create`` and ``:specialuse`` without ``:fcc`` are compile errors (§3:
  they are only defined after ``:fcc``), as is each without its own extension.
- The mailbox name follows fileinto's rules (not empty, no controls); a bad constant is
  a compile error, a bad name built at run time a runtime error. ``:flags`` words that
  are not IMAP flags are dropped with a note, as for fileinto (RFC 5232 §3).
- When vacation decides not to reply, nothing is sent and so nothing is filed.
"""

from __future__ import annotations

import dataclasses

from ..api import Notify, Vacation
from ..ast import Node
from ..core import normalize_flags
from ..interp import IMAP_FLAG, Context
from ..registry import REGISTRY, STRING, STRINGS, TagSpec
from ..validator import Checker
from . import enotify as _enotify  # noqa: F401 - registers notify, which gets :fcc too
from .fileinto import _valid_mailbox
from .special_use import check_use_tag, valid_use

__all__: list[str] = []

_SUBTAGS = (":flags", ":create", ":specialuse")


def _fcc_fields(ctx: Context, node: Node) -> dict[str, object]:
    tags = node.tags
    mailbox = ctx.string(tags[":fcc"])
    _valid_mailbox(mailbox, ctx.error, node)
    flags: tuple[str, ...] = ()
    if ":flags" in tags:
        words = normalize_flags(ctx.strings(tags[":flags"]))
        flags = tuple(f for f in words if IMAP_FLAG.fullmatch(f))
        if len(flags) != len(words):
            ctx.result.log.append(f"{node.name} :fcc: ignoring invalid flags {[f for f in words if f not in flags]}")
    use = ctx.string(tags[":specialuse"]) if ":specialuse" in tags else None
    if use is not None and not valid_use(use):
        raise ctx.error(f"{node.name} :fcc: invalid special-use attribute {use[:64]!r}", node)
    return {"fcc": mailbox, "fcc_flags": flags, "fcc_create": ":create" in tags, "fcc_special_use": use}


#: Each wrapper made here and the run it wraps: for a node without ``:fcc`` the wrapper
#: only calls that run, so the generated form (:mod:`postroom.sieve.codegen`) calls it itself.
BARE_RUN: dict[object, object] = {}


def _wrap(command: str, kind: type[Vacation | Notify]) -> None:
    spec = REGISTRY.commands[command]
    run, check = spec.run, spec.check

    def with_fcc(ctx: Context, node: Node) -> None:
        if ":fcc" not in node.tags:
            run(ctx, node)
            return
        fields = _fcc_fields(ctx, node)  # checked first: a bad name fails even when no reply goes
        before = len(ctx.actions)
        run(ctx, node)
        for i in range(before, len(ctx.actions)):
            a = ctx.actions[i]
            if isinstance(a, kind):
                ctx.actions[i] = dataclasses.replace(a, **fields)  # type: ignore[arg-type]

    def checks(c: Checker, node: Node) -> None:
        if check is not None:
            check(c, node)
        if ":fcc" not in node.tags:
            for t in _SUBTAGS:
                if t in node.tags:
                    raise c.error(f"{command}: {t} needs :fcc", node)
            return
        v = c.constant(node.tags[":fcc"])
        if v is not None:
            _valid_mailbox(v, c.error, node.tags[":fcc"])
        check_use_tag(c, node)

    spec.run, spec.check = with_fcc, checks
    BARE_RUN[with_fcc] = run
    spec.tags[":fcc"] = TagSpec(":fcc", STRING, extension="fcc")
    spec.tags.setdefault(":flags", TagSpec(":flags", STRINGS, extension="imap4flags"))
    spec.tags.setdefault(":create", TagSpec(":create", extension="mailbox"))
    spec.tags.setdefault(":specialuse", TagSpec(":specialuse", STRING, extension="special-use"))


REGISTRY.extension("fcc")
_wrap("vacation", Vacation)
_wrap("notify", Notify)
