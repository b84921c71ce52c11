"""The ``[pop3]`` config section.

```toml
[pop3]
allow_plaintext_auth = false   # USER/PASS and AUTH PLAIN/LOGIN only over TLS (RFC 2595 §3.2)
idle_timeout = "10m"           # RFC 1939 §3: the autologout timer is at least 10 minutes
max_bad_commands = 20          # unknown or malformed commands before the server hangs up
max_auth_failures = 5          # failed logins on one connection before the server hangs up
```

The keys are those every login protocol shares, read by :mod:`postroom.auth.session_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..auth.session_settings import LoginSessionSettings, read_login_session
from ..config import Config


@dataclass(frozen=True, slots=True)
class Pop3Settings(LoginSessionSettings):
    idle_timeout: float = 600.0


def read_settings(cfg: Config, problems: list[str]) -> Pop3Settings:
    return read_login_session(cfg, "pop3", Pop3Settings, problems,
                              idle_rule="must be positive (RFC 1939 §3 asks for at least 10m)")


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)
