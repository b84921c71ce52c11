"""RFC 5228 core: control commands (§3), actions (§4) and tests (§5), including the
optional-but-standard ``envelope`` test (§5.4, needs ``require "envelope"``).

Helpers shared with extensions live here too: :func:`pick_index` (RFC 5260 §6 ``:index``
on header/address/date), :func:`address_values`, :func:`action_flags` (imap4flags
``:flags`` on keep/fileinto) and :func:`valid_address`.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from postroom.mime.addresses import parse_address_list

from .api import Discard, Keep, Redirect
from .ast import Node
from .interp import IMAP_FLAG, Context, Stop
from .message import Addr, addresses_of
from .registry import NUMBER, REGISTRY, STRING, STRINGS, AddressPart, Spec, TagSpec
from .validator import Checker

__all__ = ["ADDRESS_HEADERS", "action_flags", "address_values", "normalize_flags", "pick_index", "valid_address"]

T = TypeVar("T")

#: Headers the address test accepts (RFC 5228 §5.1: "MUST restrict ... to headers that
#: contain addresses", at least From, To, Cc, Bcc, Sender, Resent-From, Resent-To).
ADDRESS_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "sender", "reply-to", "resent-from", "resent-to", "resent-cc",
    "resent-bcc", "resent-sender", "resent-reply-to", "return-path", "delivered-to", "errors-to",
    "disposition-notification-to", "x-original-to", "envelope-to", "original-recipient",
    "mail-followup-to", "mail-reply-to", "apparently-to", "x-envelope-to", "x-envelope-from",
})

_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")


# ----------------------------------------------------------------- shared helpers


def pick_index(ctx: Context, node: Node, items: list[T]) -> list[T]:
    """RFC 5260 §6: ``:index n`` keeps only the n-th field (from the end with ``:last``)."""
    if ":index" not in node.tags:
        return items
    n = ctx.number(node.tags[":index"])
    if n < 1 or n > len(items):
        return []
    return [items[-n] if ":last" in node.tags else items[n - 1]]


def part_of(ctx: Context, node: Node, a: Addr) -> str | None:
    ap = ctx.reg.address_parts[node.data.get("address_part", "all")]
    return ap.fn(a.local, a.domain)


def address_values(ctx: Context, node: Node, headers: list[str]) -> list[str]:
    """The address-part of every address in the named headers (RFC 5228 §5.1). Each
    header's addresses are parsed once per message (``MessageView.addresses``)."""
    part = ctx.reg.address_parts[node.data.get("address_part", "all")].fn
    out: list[str] = []
    for name in headers:
        for addrs in pick_index(ctx, node, ctx.msg.addresses(name)):
            for a in addrs:
                v = part(a.local, a.domain)
                if v is not None:
                    out.append(v)
    return out


def valid_address(s: str) -> bool:
    """An RFC 5321 mailbox we can send to (RFC 5228 §4.2 "MUST be a syntactically valid
    address"): exactly one address, with a local part and a domain."""
    if not s or "\n" in s or "\r" in s:
        return False
    addrs = parse_address_list(s.encode("utf-8", "surrogateescape"))
    if len(addrs) != 1:
        return False
    a = addrs[0]
    return bool(a.mailbox and a.host and a.mailbox != "MISSING_MAILBOX"
                and a.host not in ("MISSING_DOMAIN", "SYNTAX_ERROR"))


def bare_address(s: str) -> str:
    a = parse_address_list(s.encode("utf-8", "surrogateescape"))[0]
    return f"{a.mailbox}@{a.host}"


def normalize_flags(values: list[str]) -> list[str]:
    """RFC 5232 §3: a flag list is the space-separated words of all strings, each flag
    once (compared case-insensitively), in first-seen order."""
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        for f in v.split():
            k = f.lower()
            if k not in seen:
                seen.add(k)
                out.append(f)
    return out


def action_flags(ctx: Context, node: Node) -> tuple[str, ...]:
    """Flags for keep/fileinto: ``:flags`` when given, else the internal variable. Words
    that are not IMAP flags are left out with a note in the log (the store could not set
    them; RFC 5232 §3 leaves invalid names to the implementation)."""
    flags = normalize_flags(ctx.strings(node.tags[":flags"])) if ":flags" in node.tags else ctx.flags
    good = [f for f in flags if IMAP_FLAG.fullmatch(f)]
    if len(good) != len(flags):
        ctx.result.log.append(f"{node.name}: ignoring invalid flags {[f for f in flags if f not in good]}")
    return tuple(good)


def check_header_names(c: Checker, node: Node, arg_index: int) -> None:
    arg = node.positional[arg_index]
    for s in getattr(arg, "items", []):
        if not s.expand and not _FIELD_NAME.fullmatch(s.value):
            raise c.error(f"'{s.value}' is not a valid header field name", s)


# ----------------------------------------------------------------- control (§3)


def _noop(ctx: Context, node: Node) -> None:
    """if/elsif/else run in Context.run_block; require does its work at compile time."""


def _stop(ctx: Context, node: Node) -> None:
    raise Stop


# ----------------------------------------------------------------- actions (§4)


def _keep(ctx: Context, node: Node) -> None:
    ctx.add_action(Keep(flags=action_flags(ctx, node)), node)


def _discard(ctx: Context, node: Node) -> None:
    # RFC 5228 §4.4: discard only cancels the implicit keep.
    if Discard() not in ctx.actions:
        ctx.actions.append(Discard())
    ctx.implicit_keep = False


def _redirect(ctx: Context, node: Node) -> None:
    addr = ctx.string(node.positional[0])
    if not valid_address(addr):
        raise ctx.error(f"redirect: '{addr}' is not a valid address", node)
    copy = ":copy" in node.tags
    ctx.add_action(Redirect(bare_address(addr), copy=copy), node, cancels_keep=not copy)


def _check_redirect(c: Checker, node: Node) -> None:
    v = c.constant(node.positional[0])
    if v is not None and not valid_address(v):
        raise c.error(f"redirect: '{v}' is not a valid address", node.positional[0])  # type: ignore[arg-type]


# ----------------------------------------------------------------- tests (§5)


def _address(ctx: Context, node: Node) -> bool:
    values = address_values(ctx, node, ctx.strings(node.positional[0]))
    return ctx.match(node, values, ctx.strings(node.positional[1]))


def _check_address(c: Checker, node: Node) -> None:
    check_header_names(c, node, 0)
    for s in node.positional[0].items:  # type: ignore[union-attr]
        if not s.expand and s.value.lower() not in ADDRESS_HEADERS:
            raise c.error(f"address test: '{s.value}' is not a header that holds addresses", s)


def _header(ctx: Context, node: Node) -> bool:
    values: list[str] = []
    for name in ctx.strings(node.positional[0]):
        values += pick_index(ctx, node, ctx.msg.values(name))
    return ctx.match(node, values, ctx.strings(node.positional[1]))


def _exists(ctx: Context, node: Node) -> bool:
    return all(ctx.msg.has(n) for n in ctx.strings(node.positional[0]))


def _size(ctx: Context, node: Node) -> bool:
    limit = ctx.number(node.positional[0])
    return ctx.msg.size > limit if ":over" in node.tags else ctx.msg.size < limit


def _check_size(c: Checker, node: Node) -> None:
    if ":over" not in node.tags and ":under" not in node.tags:
        raise c.error("size needs :over or :under", node)


def _allof(ctx: Context, node: Node) -> bool:
    return all(ctx.test(t) for t in node.tests)


def _anyof(ctx: Context, node: Node) -> bool:
    return any(ctx.test(t) for t in node.tests)


def _not(ctx: Context, node: Node) -> bool:
    return not ctx.test(node.tests[0])


_ENVELOPE_PARTS = ("from", "to", "auth")


def envelope_addresses(envelope: Any, p: str) -> tuple[Addr, ...] | None:
    """The addresses of the envelope's part ``p`` (lowercased: "from", "to" or "auth"); None
    for the null reverse-path, which matches "" whatever the address part (RFC 5228 §5.4);
    none for a part that is absent or empty. Parsed once per process for the same path
    (the LRU that header values use too). Also called by generated code (codegen)."""
    raw = {"from": envelope.sender, "to": envelope.recipient, "auth": envelope.auth}.get(p)
    if p == "from" and raw in ("", "<>"):
        return None
    if not raw:
        return ()
    return addresses_of(raw.encode("utf-8", "surrogateescape"))


def _envelope(ctx: Context, node: Node) -> bool:
    values: list[str] = []
    for part in ctx.strings(node.positional[0]):
        addrs = envelope_addresses(ctx.envelope, part.lower())
        if addrs is None:
            values.append("")
            continue
        for a in pick_index(ctx, node, list(addrs)):
            v = part_of(ctx, node, a)
            if v is not None:
                values.append(v)
    return ctx.match(node, values, ctx.strings(node.positional[1]))


def _check_envelope(c: Checker, node: Node) -> None:
    for s in node.positional[0].items:  # type: ignore[union-attr]
        if not s.expand and s.value.lower() not in _ENVELOPE_PARTS:
            raise c.error(f"envelope part '{s.value}' is not supported (from, to, auth)", s)


def _localpart(local: str, domain: str | None) -> str | None:
    return local


def _domain(local: str, domain: str | None) -> str | None:
    return domain


def _all(local: str, domain: str | None) -> str | None:
    return local if domain is None else f"{local}@{domain}"


def _register() -> None:
    r = REGISTRY
    r.extension("envelope")
    for name, run, block, tests in (("if", _noop, True, 1), ("elsif", _noop, True, 1), ("else", _noop, True, 0)):
        r.command(Spec(name, False, run, block=block, tests=tests))
    r.command(Spec("require", False, _noop, positional=(STRINGS,), const=(0,)))
    r.command(Spec("stop", False, _stop))
    r.command(Spec("keep", False, _keep))
    r.command(Spec("discard", False, _discard))
    r.command(Spec("redirect", False, _redirect, positional=(STRING,), check=_check_redirect))
    r.test(Spec("address", True, _address, positional=(STRINGS, STRINGS), match=True, address_part=True,
                check=_check_address))
    # header/exists accept any name (a name no field can have simply never matches), as
    # Pigeonhole does; address restricts its names (§5.1).
    r.test(Spec("header", True, _header, positional=(STRINGS, STRINGS), match=True))
    r.test(Spec("exists", True, _exists, positional=(STRINGS,)))
    r.test(Spec("size", True, _size, positional=(NUMBER,), check=_check_size,
                tags={":over": TagSpec(":over", group="size"), ":under": TagSpec(":under", group="size")}))
    r.test(Spec("allof", True, _allof, tests="any"))
    r.test(Spec("anyof", True, _anyof, tests="any"))
    r.test(Spec("not", True, _not, tests=1))
    r.test(Spec("true", True, lambda ctx, node: True))
    r.test(Spec("false", True, lambda ctx, node: False))
    r.test(Spec("envelope", True, _envelope, extension="envelope", positional=(STRINGS, STRINGS),
                match=True, address_part=True, check=_check_envelope))
    r.address_parts["all"] = AddressPart("all", _all)
    r.address_parts["localpart"] = AddressPart("localpart", _localpart)
    r.address_parts["domain"] = AddressPart("domain", _domain)


_register()
