"""The ``[managesieve]`` config section (the script limits are in ``[sieve]``).

```toml
[managesieve]
allow_plaintext_auth = false   # AUTHENTICATE PLAIN/LOGIN only over TLS (RFC 5804 §2.1, §5)
idle_timeout = "30m"           # after login; before it the [limits] pre-login timeouts apply
max_bad_commands = 20          # unknown or malformed commands before the server says BYE
max_auth_failures = 5          # failed logins on one connection before the server says BYE
```

The keys are those every login protocol shares, read by :mod:`postroom.auth.session_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..auth.session_settings import LoginSessionSettings, read_login_session
from ..config import Config


@dataclass(frozen=True, slots=True)
class ManageSieveSettings(LoginSessionSettings):
    # Clients such as Roundcube keep a session open while the user edits a script.
    idle_timeout: float = 1800.0


def read_settings(cfg: Config, problems: list[str]) -> ManageSieveSettings:
    return read_login_session(cfg, "managesieve", ManageSieveSettings, problems)
