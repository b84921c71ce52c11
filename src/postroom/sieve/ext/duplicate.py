"""RFC 7352 ``duplicate``: has a message with this unique ID been seen before?

``duplicate [:handle <h>] [:header <name> / :uniqueid <value>] [:seconds <n>] [:last]``

- The ID is the Message-ID (§3: unfolded, outer blanks removed), or the first field
  named by ``:header``, or the ``:uniqueid`` string. No such field: the test is false
  and nothing is tracked (§3.1). An empty ``:uniqueid`` is still an ID.
- ``Host.duplicate_seen(id, seconds, handle)`` answers; the handle keeps different
  uses apart (§3.2). The engine records ``(id, seconds)`` in ``Result.duplicate_marks``
  and delivery tracks it only when the script succeeds (§3: "after the script
  successfully finished").
- Tracking (§3.3): an ID not seen before is tracked for ``:seconds`` (default
  :data:`DEFAULT_SECONDS`, capped at :data:`MAX_SECONDS`); a seen one is tracked again,
  restarting its expiry, only with ``:last``. Without ``:last`` the first delivery's
  expiry stands.
- Within one run the same (handle, ID) gives the same answer each time it is tested:
  the first answer is kept (a second test must not see the first test's own mark).
"""

from __future__ import annotations

from ..ast import Node
from ..interp import Context
from ..registry import NUMBER, REGISTRY, STRING, Spec, TagSpec
from ..validator import Checker
from .editheader import valid_field_name

__all__ = ["DEFAULT_SECONDS", "MAX_SECONDS"]

DEFAULT_SECONDS = 7 * 86400
MAX_SECONDS = 90 * 86400


def _unique_id(ctx: Context, node: Node) -> str | None:
    if ":uniqueid" in node.tags:
        return ctx.string(node.tags[":uniqueid"])
    name = ctx.string(node.tags[":header"]) if ":header" in node.tags else "message-id"
    values = ctx.msg.unfolded(name)
    return values[0] if values else None


def _duplicate(ctx: Context, node: Node) -> bool:
    handle = ctx.string(node.tags[":handle"]) if ":handle" in node.tags else ""
    key = _unique_id(ctx, node)
    if key is None:
        return False
    seconds = ctx.number(node.tags[":seconds"], DEFAULT_SECONDS) if ":seconds" in node.tags else DEFAULT_SECONDS
    seconds = min(max(seconds, 0), MAX_SECONDS)
    answers: dict[tuple[str, str], bool] = ctx.state.setdefault("duplicate", {})
    seen = answers.get((handle, key))
    if seen is None:
        seen = answers[(handle, key)] = bool(ctx.host.duplicate_seen(key, seconds, handle))
    if (not seen or ":last" in node.tags) and (key, seconds) not in ctx.result.duplicate_marks:
        ctx.result.duplicate_marks.append((key, seconds))
    return seen


def _check(c: Checker, node: Node) -> None:
    h = c.constant(node.tags.get(":header"))
    if h is not None and not valid_field_name(h):
        raise c.error(f"duplicate :header '{h[:80]}' is not a header field name", node.tags[":header"])  # type: ignore[arg-type]


REGISTRY.extension("duplicate")
REGISTRY.test(Spec("duplicate", True, _duplicate, extension="duplicate", check=_check, tags={
    ":handle": TagSpec(":handle", STRING),
    ":header": TagSpec(":header", STRING, group="id"),
    ":uniqueid": TagSpec(":uniqueid", STRING, group="id"),
    ":seconds": TagSpec(":seconds", NUMBER),
    ":last": TagSpec(":last"),
}))
