"""RFC 5230 ``vacation`` and RFC 6131 ``:seconds`` (capability "vacation-seconds").

The engine decides whether a reply *may* be sent and, if so, returns a
:class:`~postroom.sieve.api.Vacation` action; the delivery stage applies the
once-per-period tracking. No reply (a line in ``Result.log`` says why) when:

- the envelope sender is null, or looks like a robot: MAILER-DAEMON, LISTSERV,
  majordomo, ``owner-*``, ``*-request`` (RFC 5230 §4.6, RFC 3834 §2);
- the message is an auto-reply (``Auto-Submitted`` other than "no", RFC 3834 §5),
  bulk/junk/list ``Precedence``, or from a list (``List-Id`` and the RFC 2369 ``List-*``
  fields);
- none of the user's addresses (envelope recipient, original recipient, ``:addresses``)
  is in To/Cc/Bcc/Resent-To/Resent-Cc/Resent-Bcc (RFC 5230 §4.5);
- the sender is one of the user's own addresses (replying to oneself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import Any

from ..api import Vacation
from ..ast import Node, StringArg, StringListArg
from ..core import valid_address
from ..interp import Context
from ..message import parse_addresses
from ..registry import NUMBER, REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker

DAY = 86400
#: RFC 5230 §4.1: sites may bound :days; RFC 6131 §2: :seconds 0 means "always reply".
MIN_DAYS, MAX_DAYS = 1, 365
MAX_SECONDS = MAX_DAYS * DAY

_LIST_HEADERS = ("list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
                 "list-archive")
_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
_ROBOT_LOCALPARTS = ("mailer-daemon", "listserv", "majordomo", "postmaster")


@lru_cache(maxsize=4096)
def _bare(addr: str) -> str | None:
    # Cached: the same few addresses (the user's own, frequent senders) come with every message.
    found = parse_addresses(addr.encode("utf-8", "surrogateescape"))
    if not found or found[0].domain is None:
        return None
    return f"{found[0].local}@{found[0].domain}".lower()


@lru_cache(maxsize=1024)
def _mine(addresses: tuple[str, ...]) -> frozenset[str]:
    """The user's bare addresses (lowercased): the same few for every message an account gets."""
    return frozenset(b for b in (_bare(a) for a in addresses if a) if b)


@lru_cache(maxsize=256)
def _auto_handle(seed: str) -> str:
    # A digest of the reply's text: the same for every message a script answers.
    return "auto-" + hashlib.sha256(seed.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def why_not(ctx: Context, mine: AbstractSet[str]) -> str | None:
    """The reason no reply may be sent, or None when one may."""
    sender = ctx.envelope.sender
    if not sender or sender == "<>":
        return "null envelope sender"
    bare = _bare(sender)
    if bare is None:
        return "envelope sender is not a valid address"
    local = bare.rsplit("@", 1)[0]
    if local in _ROBOT_LOCALPARTS or local.startswith("owner-") or local.endswith("-request"):
        return f"sender {bare} is a list or system address"
    if bare in mine:
        return "sender is the recipient"
    msg = ctx.msg
    for v in msg.values_of("auto-submitted"):
        if v.split(";", 1)[0].strip().lower() != "no":
            return "message is Auto-Submitted"
    for v in msg.values_of("precedence"):
        if v.strip().lower() in ("bulk", "junk", "list"):
            return f"Precedence: {v.strip().lower()}"
    index = msg.index()
    for h in _LIST_HEADERS:
        if h in index:
            return f"message has a {h} header (mailing list)"
    for v in msg.values_of("x-auto-response-suppress"):
        if any(w.strip().lower() in ("all", "oof", "autoreply") for w in v.split(",")):
            return "X-Auto-Response-Suppress asks for no auto-reply"
    for h in _RECIPIENT_HEADERS:
        if h in index:
            for addrs in msg.addresses(h):
                for a in addrs:
                    # Addr.raw is "local@domain" for an address with a domain.
                    if a.domain is not None and a.raw.lower() in mine:
                        return None
    return "the recipient is not in To, Cc or Bcc"


def _vacation(ctx: Context, node: Node) -> None:
    args = node.data.get("_vacation_args")
    if args is None:
        args = _arguments(ctx, node)
        if _constant(node):
            # No variable in any argument: the same for every run, made once per node (a
            # tuple, so threads may race to make it).
            node.data["_vacation_args"] = args
    reason, addresses, period, subject_given, subject, from_, note, mime, handle = args
    if note:
        ctx.result.log.append(note)
    _reply(ctx, node, reason, addresses, period, subject_given, subject, from_, mime, handle)


def _constant(node: Node) -> bool:
    """Whether no argument of ``node`` holds a variable to expand."""
    for a in (*node.positional, *node.tags.values()):
        if isinstance(a, StringArg) and a.expand:
            return False
        if isinstance(a, StringListArg) and any(s.expand for s in a.items):
            return False
    return True


def _arguments(ctx: Context, node: Node) -> tuple[Any, ...]:
    """The command's arguments as a reply needs them, with the note on an ignored ``:from``."""
    tags = node.tags
    reason = ctx.string(node.positional[0])
    addresses = tuple(ctx.strings(tags[":addresses"])) if ":addresses" in tags else ()
    if ":seconds" in tags:
        period = min(max(ctx.number(tags[":seconds"]), 0), MAX_SECONDS)
    else:
        days = ctx.number(tags[":days"], 7) if ":days" in tags else 7
        period = min(max(days, MIN_DAYS), MAX_DAYS) * DAY
    subject_given = ":subject" in tags
    subject = ctx.string(tags[":subject"]) if subject_given else ""
    from_ = ctx.string(tags[":from"]) if ":from" in tags else None
    note = ""
    if from_ is not None and not valid_address(from_):
        note = f"vacation: ignoring invalid :from {from_!r}"
        from_ = None
    mime = ":mime" in tags
    if ":handle" in tags:
        handle = ctx.string(tags[":handle"])
    else:
        # RFC 5230 §4.2: without :handle, replies with the same text share one period.
        seed = "\0".join((reason, subject, from_ or "", "mime" if mime else ""))
        handle = _auto_handle(seed)
    return reason, addresses, period, subject_given, subject, from_, note, mime, handle


def _reply(ctx: Context, node: Node, reason: str, addresses: tuple[str, ...], period: int, subject_given: bool,
           subject: str, from_: str | None, mime: bool, handle: str) -> None:
    mine = _mine((ctx.envelope.recipient, ctx.envelope.original_recipient, *addresses))
    no = why_not(ctx, mine)
    if no is not None:
        ctx.result.log.append(f"vacation: not replying: {no}")
        return
    if not subject_given:
        orig = (ctx.msg.values("subject") or [""])[0]
        subject = f"Auto: {orig}" if orig else "Automated reply"  # RFC 5230 §4.5
    ids = ctx.msg.unfolded("message-id")
    msgid = ids[0] if ids else None
    ctx.add_action(Vacation(sender=_bare(ctx.envelope.sender) or ctx.envelope.sender, subject=subject,
                            reason=reason, from_=from_, handle=handle, period_seconds=period, mime=mime,
                            addresses=addresses, in_reply_to=msgid), node, cancels_keep=False)


def _check(c: Checker, node: Node) -> None:
    f = c.constant(node.tags.get(":from"))
    if f is not None and not valid_address(f):
        raise c.error(f"vacation :from '{f}' is not a valid address", node.tags[":from"])  # type: ignore[arg-type]
    for a in (c.constants(node.tags.get(":addresses")) or []):
        if not valid_address(a):
            raise c.error(f"vacation :addresses '{a}' is not a valid address", node.tags[":addresses"])  # type: ignore[arg-type]


REGISTRY.extension("vacation")
REGISTRY.extension("vacation-seconds", implies=("vacation",))
REGISTRY.command(Spec("vacation", False, _vacation, extension="vacation", positional=(STRING,), check=_check, tags={
    ":days": TagSpec(":days", NUMBER, group="period"),
    ":seconds": TagSpec(":seconds", NUMBER, group="period", extension="vacation-seconds"),
    ":subject": TagSpec(":subject", STRING),
    ":from": TagSpec(":from", STRING),
    ":addresses": TagSpec(":addresses", STRINGS),
    ":mime": TagSpec(":mime"),
    ":handle": TagSpec(":handle", STRING),
}))
