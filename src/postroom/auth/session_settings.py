"""The config keys that line protocols with a login share, read one way for all of them.

``[pop3]`` and ``[managesieve]`` hold the same four keys with the same meaning and the
same checks; only the idle timeout's default differs (each protocol's settings class
is a subclass that sets it). A protocol with more keys than these reads them itself.

```toml
allow_plaintext_auth = false   # passwords in the clear only over TLS
idle_timeout = "10m"           # after login; before it the [limits] pre-login timeouts apply
max_bad_commands = 20          # unknown or malformed commands before the server hangs up
max_auth_failures = 5          # failed logins on one connection before the server hangs up
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..config import Config, parse_duration

if TYPE_CHECKING:
    from ..context import ServerContext


@dataclass(frozen=True, slots=True)
class LoginSessionSettings:
    allow_plaintext_auth: bool = False
    idle_timeout: float = 600.0
    max_bad_commands: int = 20
    max_auth_failures: int = 5


S = TypeVar("S", bound=LoginSessionSettings)
T = TypeVar("T")


def read_login_session(cfg: Config, section: str, cls: type[S], problems: list[str], *,
                       idle_rule: str = "must be positive") -> S:
    """The ``[section]`` table as ``cls``; ``idle_rule`` is the problem text for a
    non-positive idle timeout (POP3 cites its RFC there)."""
    sec = cfg.section(section, problems)
    d = cls()
    s = cls(
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        idle_timeout=sec.convert("idle_timeout", parse_duration, d.idle_timeout),
        max_bad_commands=sec.get("max_bad_commands", int, d.max_bad_commands),
        max_auth_failures=sec.get("max_auth_failures", int, d.max_auth_failures),
    )
    if s.idle_timeout <= 0:
        sec.problem("idle_timeout", idle_rule)
    for name in ("max_bad_commands", "max_auth_failures"):
        if getattr(s, name) < 1:
            sec.problem(name, "must be at least 1")
    sec.finish()
    return s


def cached(ctx: ServerContext, key: str, cls: type[T], read: Callable[[Config, list[str]], T]) -> T:
    """A protocol's settings, read from the config once and kept in ``ctx.state[key]``
    (the runtime clears ``ctx.state`` on SIGHUP, so new connections see a reload).
    The config was checked at start, so problems found here are not reported again."""
    s = ctx.state.get(key)
    if not isinstance(s, cls):
        s = read(ctx.config, [])
        ctx.state[key] = s
    return s
