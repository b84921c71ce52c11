"""The ``[pop3]`` config section.

```toml
[pop3]
allow_plaintext_auth = false   # USER/PASS and AUTH PLAIN/LOGIN only over TLS (RFC 2595 §3.2)
idle_timeout = "10m"           # RFC 1939 §3: the autologout timer is at least 10 minutes
max_bad_commands = 20          # unknown or malformed commands before the server hangs up
max_auth_failures = 5          # failed logins on one connection before the server hangs up
```
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, parse_duration


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    allow_plaintext_auth: bool = False
    idle_timeout: float = 600.0
    max_bad_commands: int = 20
    max_auth_failures: int = 5


def read_settings(cfg: Config, problems: list[str]) -> Pop3Settings:
    sec = cfg.section("pop3", problems)
    d = Pop3Settings()
    s = Pop3Settings(
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        idle_timeout=sec.convert("idle_timeout", parse_duration, d.idle_timeout),
        max_bad_commands=sec.get("max_bad_commands", int, d.max_bad_commands),
        max_auth_failures=sec.get("max_auth_failures", int, d.max_auth_failures),
    )
    if s.idle_timeout <= 0:
        sec.problem("idle_timeout", "must be positive (RFC 1939 §3 asks for at least 10m)")
    for name in ("max_bad_commands", "max_auth_failures"):
        if getattr(s, name) < 1:
            sec.problem(name, "must be at least 1")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)
