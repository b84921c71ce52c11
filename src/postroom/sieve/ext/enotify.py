"""RFC 5435 ``enotify`` with the ``mailto`` method (RFC 5436): the ``notify`` action,
the ``valid_notify_method`` and ``notify_method_capability`` tests and the
``:encodeurl`` modifier of ``set``.

``notify [:from <addr>] [:importance "1"/"2"/"3"] [:options <list>] [:message <text>] <uri>``
returns a :class:`~postroom.sieve.api.Notify`; delivery writes and sends the message
(and skips it when the triggering message is itself ``Auto-Submitted``, RFC 5436 §2.7).
``notify`` does not cancel the implicit keep; identical notify actions collapse into
one (RFC 5435 §3.10).

- Only ``mailto:`` is supported. A URI is valid when it is RFC 3986 text (no blanks or
  controls, well-formed ``%XX``), names at least one recipient (in the path or a
  to/cc/bcc header) and every recipient is a valid address (RFC 6068). A constant
  invalid URI is a compile error; one built at run time is a runtime error (§3.8; a
  script can ask ``valid_notify_method`` first).
- ``:importance`` must be "1", "2" or "3" (§3.6); ``:from`` must be a valid address
  (RFC 5436 §2.2): both checked at compile time when constant; a bad ``:from`` built at
  run time is dropped with a note in ``Result.log``, a bad importance is an error.
- ``notify_method_capability <uri> "online" <keys>``: "maybe" for any valid mailto URI
  (RFC 5436 §2.5: mail cannot tell whether the recipient is online); any other
  capability, or an invalid URI, has no value and so never matches.
- ``:encodeurl`` (§4.1, precedence 15): percent-encodes every octet of the UTF-8 text
  except the RFC 3986 unreserved characters.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ..api import Notify
from ..ast import Node
from ..core import valid_address
from ..interp import Context
from ..registry import REGISTRY, STRING, STRINGS, Modifier, Spec, TagSpec
from ..vacation import parse_mailto
from ..validator import Checker
from .variables import add_modifier

__all__ = ["encode_url", "valid_method"]

# RFC 3986 §2: unreserved, sub-delims, ":" "@" "/" "?" and pct-encoded; "#" is not allowed
# in a mailto URI (RFC 6068 §2).
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
_MAX_URI = 4096
_IMPORTANCE = ("1", "2", "3")


def valid_method(uri: str) -> bool:
    """A mailto URI this server can send a notification to."""
    if len(uri) > _MAX_URI or uri[:7].lower() != "mailto:" or not _URI_CHARS.fullmatch(uri[7:]):
        return False
    target = parse_mailto(uri)
    if target is None:
        return False
    return all(valid_address(a) for a in (*target.to, *target.cc, *target.bcc))


def encode_url(s: str) -> str:
    """RFC 5435 §4.1: everything but unreserved characters percent-encoded (UTF-8)."""
    return quote(s.encode("utf-8", "surrogateescape"), safe="-._~")


def _notify(ctx: Context, node: Node) -> None:
    tags = node.tags
    method = ctx.string(node.positional[0])
    if not valid_method(method):
        raise ctx.error(f"notify: {method[:100]!r} is not a usable notification method (mailto: only)", node)
    importance = ctx.string(tags[":importance"]) if ":importance" in tags else "2"
    if importance not in _IMPORTANCE:
        raise ctx.error(f"notify: :importance must be 1, 2 or 3, not {importance[:20]!r}", node)
    from_ = ctx.string(tags[":from"]) if ":from" in tags else None
    if from_ is not None and not valid_address(from_):
        ctx.result.log.append(f"notify: ignoring invalid :from {from_[:100]!r}")
        from_ = None
    options = tuple(ctx.strings(tags[":options"])) if ":options" in tags else ()
    message = ctx.string(tags[":message"]) if ":message" in tags else None
    ctx.add_action(Notify(method=method, from_=from_, importance=importance, options=options, message=message),
                   node, cancels_keep=False)


def _check_notify(c: Checker, node: Node) -> None:
    m = c.constant(node.positional[0])
    if m is not None and not valid_method(m):
        raise c.error(f"notify: '{m[:100]}' is not a usable notification method (mailto: only)",
                      node.positional[0])  # type: ignore[arg-type]
    imp = node.tags.get(":importance")
    v = c.constant(imp)
    if v is not None and v not in _IMPORTANCE:
        raise c.error(":importance must be \"1\", \"2\" or \"3\"", imp)  # type: ignore[arg-type]
    f = node.tags.get(":from")
    v = c.constant(f)
    if v is not None and not valid_address(v):
        raise c.error(f"notify :from '{v[:100]}' is not a valid address", f)  # type: ignore[arg-type]


def _valid_notify_method(ctx: Context, node: Node) -> bool:
    return all(valid_method(u) for u in ctx.strings(node.positional[0]))


def _notify_method_capability(ctx: Context, node: Node) -> bool:
    uri = ctx.string(node.positional[0])
    capability = ctx.string(node.positional[1]).lower()
    values = ["maybe"] if capability == "online" and valid_method(uri) else []
    return ctx.match(node, values, ctx.strings(node.positional[2]))


REGISTRY.extension("enotify")
REGISTRY.command(Spec("notify", False, _notify, extension="enotify", positional=(STRING,), check=_check_notify,
                      tags={
                          ":from": TagSpec(":from", STRING),
                          ":importance": TagSpec(":importance", STRING),
                          ":options": TagSpec(":options", STRINGS),
                          ":message": TagSpec(":message", STRING),
                      }))
REGISTRY.test(Spec("valid_notify_method", True, _valid_notify_method, extension="enotify", positional=(STRINGS,)))
REGISTRY.test(Spec("notify_method_capability", True, _notify_method_capability, extension="enotify",
                   positional=(STRING, STRING, STRINGS), match=True))
add_modifier(Modifier("encodeurl", 15, encode_url, extension="enotify"))
