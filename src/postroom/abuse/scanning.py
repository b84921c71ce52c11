"""What the end-of-DATA content checks of this package share (ClamAV, attachments).

Their sections read alike: an on/off condition, a ``listeners`` list that defaults to
every SMTP and submission listener, settings parsed once per configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..config import Config, Section

if TYPE_CHECKING:
    from ..context import ServerContext
    from .guard import ConnInfo

T = TypeVar("T")


def smtp_listeners(sec: Section, cfg: Config) -> tuple[str, ...] | None:
    """The ``listeners`` key: None (absent) means every SMTP and submission listener."""
    if "listeners" not in sec.data:
        sec.seen.add("listeners")
        return None
    names = sec.strings("listeners")
    smtp = {lst.name for lst in cfg.listeners if lst.protocol in ("smtp", "submission")}
    for name in names:
        if name not in smtp:
            sec.problem("listeners", f"no SMTP or submission listener named {name!r}")
    return names


def cached(ctx: ServerContext, key: str, kind: type[T], parse: Callable[[Config, list[str]], T]) -> T:
    """Settings parsed once per config (``ctx.state`` is cleared on SIGHUP); the server
    refused to start on problems, so they are not collected again here."""
    s = ctx.state.get(key)
    if not isinstance(s, kind):
        s = parse(ctx.config, [])
        ctx.state[key] = s
    return s


def applies(listeners: tuple[str, ...] | None, info: ConnInfo) -> bool:
    """Whether a check with this ``listeners`` setting runs on this connection
    (never for ``postroom sendmail``, which has no IP: local programs are trusted)."""
    return bool(info.ip) and (listeners is None or info.listener in listeners)
